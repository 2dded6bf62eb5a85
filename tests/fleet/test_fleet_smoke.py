"""Smoke tests of the real SSH test fleet itself (tests/fleet/fleet.py)."""
from __future__ import annotations

import os
import socket
import threading

import paramiko
import pytest

from tests.fleet import fleet as fleetmod

pytestmark = pytest.mark.fleet

APT = "DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends -q "


def test_two_hosts_isolated(fleet_factory):
    fleet = fleet_factory(2, name="smoke")
    a, b = fleet.hosts
    assert a.port != b.port
    # hostnames over plain paramiko (host keys checked against the fleet's known_hosts)
    names = [fleet.run(h, "hostname")[1].strip() for h in fleet.hosts]
    assert names == ["host01", "host02"]
    ta, tb = fleet.testinfra(a), fleet.testinfra(b)
    assert ta.check_output("hostname") == "host01"
    assert tb.check_output("hostname") == "host02"
    assert ta.system_info.distribution == "debian"
    assert ta.file("/etc/os-release").contains("trixie")
    assert ta.user("admin").exists
    # only loopback listeners
    assert ta.socket("tcp://127.0.0.1:%d" % a.port).is_listening
    assert not ta.socket("tcp://0.0.0.0:%d" % a.port).is_listening

    before_b = fleet.snapshot(b)
    before_a = fleet.snapshot(a)
    rc, out, err = fleet.run(a, APT + "hello")
    assert rc == 0, out + err
    assert ta.package("hello").is_installed
    assert ta.file("/usr/bin/hello").exists
    assert ta.check_output("hello") == "Hello, world!"
    assert not tb.package("hello").is_installed
    assert not tb.file("/usr/bin/hello").exists
    # snapshots: b unchanged, a gained /usr/bin/hello and dpkg state
    assert fleet.snapshot(b) == before_b
    after_a = fleet.snapshot(a)
    assert "/usr/bin/hello" in after_a and "/usr/bin/hello" not in before_a
    assert after_a["/var/lib/dpkg/status"] != before_a["/var/lib/dpkg/status"]
    # the .deb landed in the shared cache
    assert list(fleet.archives_dir.glob("hello_*.deb"))


def test_sudo_needs_password(fleet_factory):
    fleet = fleet_factory(1, name="sudo")
    h = fleet.hosts[0]
    rc, out, err = fleet.run(h, "id -un", user="admin")
    assert (rc, out.strip()) == (0, "admin")
    rc, out, err = fleet.run(h, "sudo -S -p '' id -u", user="admin", stdin="admin-pass\n")
    assert (rc, out.strip()) == (0, "0"), err
    rc, out, err = fleet.run(h, "sudo -k; sudo -S -p '' id -u", user="admin", stdin="wrong\n")
    assert rc != 0 and out.strip() != "0"
    rc, out, err = fleet.run(h, "sudo -n true", user="admin")
    assert rc != 0 and "password" in err
    t = fleet.testinfra(h, user="admin")
    assert t.user().name == "admin"
    # password authentication is off: only the key gets in
    with pytest.raises(paramiko.AuthenticationException):
        c = paramiko.SSHClient()
        c.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        try:
            c.connect("127.0.0.1", port=h.port, username="admin", password="admin-pass",
                      allow_agent=False, look_for_keys=False)
        finally:
            c.close()


def test_exec_counting(fleet_factory):
    fleet = fleet_factory(1, name="count")
    h = fleet.hosts[0]
    fleet.reset_log(h)
    assert fleet.count_exec_sessions(h) == 0
    client = fleet.ssh(h)
    try:
        for _ in range(3):
            _, out, _ = client.exec_command("true")
            out.channel.recv_exit_status()
        sftp = client.open_sftp()
        sftp.listdir("/")
        sftp.close()
    finally:
        client.close()
    counts = fleet.session_counts(h)
    assert fleet.count_exec_sessions(h) == 3, counts
    assert counts["subsystem"] == 1, counts
    assert counts["channels"] == 4, counts
    assert counts["accepted"] == 1 and counts["connections"] == 1, counts
    fleet.reset_log(h)
    assert fleet.count_exec_sessions(h) == 0
    # host_exec does not go through sshd
    assert fleet.host_exec(h, ["hostname"]).stdout.decode().strip() == "host01"
    assert fleet.count_exec_sessions(h) == 0


def test_kill_restart_keeps_state(fleet_factory):
    fleet = fleet_factory(2, name="faults")
    h = fleet.hosts[0]
    fleet.run(h, "echo kept > /root/marker")
    port, key = h.port, h.host_key_pub
    client = fleet.ssh(h)
    fleet.kill_sshd(h)
    assert not h.running
    # the open connection is dead, and nothing listens
    with pytest.raises((paramiko.SSHException, EOFError, OSError)):
        client.exec_command("true", timeout=5)[1].read()
    client.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    assert (h.root / "root/marker").read_text() == "kept\n"     # snapshot works while down
    assert "/root/marker" in fleet.snapshot(h, ["/root"])
    fleet.start(h)
    assert (h.port, h.host_key_pub) == (port, key)
    assert fleet.run(h, "cat /root/marker")[1] == "kept\n"      # known_hosts still matches
    assert fleet.run(fleet.hosts[1], "test -e /root/marker")[0] == 1
    fleet.stop(fleet.hosts[1])
    assert not fleet.hosts[1].running


def test_parallel_installs_share_archive(fleet_factory):
    """Hosts installing the same package at once: per-host apt lock and partial dir, shared debs."""
    fleet = fleet_factory(3, name="par")
    results = {}

    def go(h):
        results[h.name] = fleet.run(h, "apt-get update -qq >/dev/null; " + APT + "tree && tree --version")

    threads = [threading.Thread(target=go, args=(h,)) for h in fleet.hosts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for name, (rc, out, err) in results.items():
        assert rc == 0, (name, out, err)
    assert list(fleet.archives_dir.glob("tree_*.deb"))
    assert not any(fleet.archives_dir.glob("partial/*"))


def test_teardown_leaves_nothing(fleet_image):
    fl = fleetmod.Fleet(3, name="teardown")
    with fl:
        pids = [h.pid for h in fl.hosts] + [h.init_pid for h in fl.hosts]
        assert all(pids)
        assert all(fleetmod._pid_alive(p) for p in pids)
        assert fl.leftover_processes()
        fl.run(fl.hosts[0], "sleep 1000 >/dev/null 2>&1 &")   # an orphan inside the host
        fl.stop(fl.hosts[1])
        fdir = fl.dir
        assert fleetmod.mounts_under(fdir)
    assert not any(fleetmod._pid_alive(p) for p in pids)
    assert fl.leftover_processes() == []
    assert fleetmod.mounts_under(fdir) == []
    assert not os.path.exists(fdir)
    assert fl.id not in [s["id"] for s in fleetmod.list_fleets()]
