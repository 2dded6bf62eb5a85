"""Hosts that pull, on the real test fleet (one fleet of 6 Debian 13 hosts for the whole story).

host1 serves the lab's git repository over SSH (git from Debian's mirror, a `git` user with
git-shell, a bare repository); the admin pushes to it from the controller. The `provision_pull`
role, applied from the controller, puts provision on host2..host6 (a wheel built from this
checkout, installed with pip --no-index --no-deps into a virtualenv that sees the distribution's
python3-yaml/jinja2/paramiko/pydantic/rich: what a lab without its own index does), the deploy
key and the git server's host key, and the systemd units. Then each host runs `provision pull`
as its timer would: they converge; a rerun without a commit runs no playbook; a new commit is
applied; a run that finds another one running waits for it, or gives up with exit 4 and the reason;
`provision status` shows the five results over one SSH session per host.

No systemd runs in the fleet (sshd is PID 1): the role is applied with
provision_pull_enable_timer=false, the pulls are started the way the service's ExecStart would
start them, and the rendered unit files are checked by `systemd-analyze verify` inside a fleet
host (systemd 257 is in the image, not running: the analyzer loads the units offline and checks
that ExecStart's binary, the host's provision, exists).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.fleet.fleet import Fleet, FleetHost, _gen_ed25519
from tests.unit.test_wheel_install import _build_wheel, _copy_checkout

pytestmark = pytest.mark.fleet

REPO = Path(__file__).resolve().parents[2]
STATE = "/var/lib/provision/pull/state.json"
LOCAL_YML = """\
- name: the lab's workstation
  hosts: all
  tasks:
    - name: the lab's release file
      copy:
        content: "lab {release} on {{{{ ansible_hostname }}}}\\n"
        dest: /etc/lab-release
        mode: "0644"
"""
SLOW_YML = """\
- hosts: all
  gather_facts: false
  tasks:
    - name: a long step (a big install, say)
      command: sleep 4
"""


def provision(*args: str, timeout: float = 600) -> tuple[int, str]:
    proc = subprocess.run([sys.executable, "-m", "provisioner.cli", *args], cwd=REPO, check=False,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
    return proc.returncode, proc.stdout


def sh(fleet: Fleet, h: FleetHost, *argv: str) -> subprocess.CompletedProcess:
    done = fleet.host_exec(h, list(argv), timeout=300)
    assert done.returncode == 0, (argv, done.stdout.decode(), done.stderr.decode())
    return done


def git_server(fleet: Fleet, h: FleetHost, admin_pub: str, deploy_pub: str) -> str:
    """git from Debian on host1, a git-shell user, an empty bare repository; returns its ssh URL."""
    sh(fleet, h, "env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-q",
       "--no-install-recommends", "git")
    sh(fleet, h, "useradd", "--create-home", "--shell", "/usr/bin/git-shell", "git")
    ssh_dir = h.path("/home/git/.ssh")
    ssh_dir.mkdir(mode=0o700)
    (ssh_dir / "authorized_keys").write_text(f"{admin_pub}\n{deploy_pub}\n")
    sh(fleet, h, "chown", "-R", "git:git", "/home/git/.ssh")
    sh(fleet, h, "install", "-d", "-o", "git", "-g", "git", "/srv/git")
    sh(fleet, h, "runuser", "-u", "git", "--", "git", "init", "-q", "--bare", "-b", "main", "/srv/git/lab.git")
    return f"ssh://git@{h.address}:{h.port}/srv/git/lab.git"


class Admin:
    """The admin's clone on the controller, pushing over SSH with the fleet's key."""

    def __init__(self, fleet: Fleet, url: str, work: Path) -> None:
        self.work = work
        ssh = (f"ssh -i {fleet.key_path} -o IdentitiesOnly=yes -o BatchMode=yes "
               f"-o UserKnownHostsFile={fleet.known_hosts_path} -o StrictHostKeyChecking=yes")
        self.env = {**os.environ, "GIT_SSH_COMMAND": ssh, "GIT_AUTHOR_NAME": "admin",
                    "GIT_AUTHOR_EMAIL": "admin@lab", "GIT_COMMITTER_NAME": "admin",
                    "GIT_COMMITTER_EMAIL": "admin@lab"}
        self.git("init", "-q", "-b", "main", str(work))
        self.git("-C", str(work), "remote", "add", "origin", url)

    def git(self, *args: str) -> str:
        done = subprocess.run(["git", *args], env=self.env, capture_output=True, text=True, timeout=60,
                              check=False)
        assert done.returncode == 0, (args, done.stderr)
        return done.stdout.strip()

    def commit(self, release: str) -> str:
        (self.work / "local.yml").write_text(LOCAL_YML.format(release=release))
        (self.work / "slow.yml").write_text(SLOW_YML)
        self.git("-C", str(self.work), "add", "-A")
        self.git("-C", str(self.work), "commit", "-q", "-m", f"lab {release}")
        self.git("-C", str(self.work), "push", "-q", "origin", "HEAD:main")
        return self.git("-C", str(self.work), "rev-parse", "HEAD")


def pull_all(fleet: Fleet, hosts: list[FleetHost], url: str, *extra: str) -> dict[str, tuple[int, str]]:
    """`provision pull` on every host at once, as their timers would start it (root, no terminal)."""
    def one(h: FleetHost) -> tuple[str, tuple[int, str]]:
        done = fleet.host_exec(h, ["env", "--chdir=/", "provision", "pull", url, "--private-key", "/etc/provision/pull/deploy_key",
                                   *extra], timeout=300)
        return h.name, (done.returncode, (done.stdout + done.stderr).decode(errors="replace"))

    with ThreadPoolExecutor(len(hosts)) as pool:
        return dict(pool.map(one, hosts))


def state(h: FleetHost) -> dict:
    return json.loads(h.path(STATE).read_text())


def test_hosts_pull_the_lab_repository(fleet_factory, tmp_path: Path) -> None:
    t0 = time.monotonic()
    fleet = fleet_factory(6, name="pull")
    server, clients = fleet.hosts[0], fleet.hosts[1:]
    deploy_priv, deploy_pub = _gen_ed25519("lab-deploy-key")
    admin_pub = Path(str(fleet.key_path) + ".pub").read_text().strip()
    url = git_server(fleet, server, admin_pub, deploy_pub)
    admin = Admin(fleet, url, tmp_path / "lab")
    first = admin.commit("v1")
    wheel = _build_wheel(_copy_checkout(tmp_path / "src"), tmp_path / "dist")
    setup_s = time.monotonic() - t0

    # -- the role: provision, the deploy key, the git server's host key, the units ------------
    known = [ln for ln in fleet.known_hosts_path.read_text().splitlines()
             if ln.startswith(server.known_hosts_name + " ")]
    assert len(known) == 1
    inventory = fleet.write_inventory(tmp_path / "lab.yml", hosts=clients, extra_vars={
        "provision_pull_url": url, "provision_pull_wheel": str(wheel),
        # the dependencies come from Debian (vars/Debian.yml); pip's resolver cannot be asked to check
        # them: Debian's python3-nacl needs the cffi backend without cffi's metadata
        "provision_pull_pip_extra_args": "--no-index --no-deps",
        "provision_pull_deploy_key": deploy_priv.decode(), "provision_pull_known_hosts": known,
        "provision_pull_on_unit_active_sec": "15min", "provision_pull_enable_timer": False})
    site = tmp_path / "site.yml"
    site.write_text("- hosts: all\n  roles: [provision_pull]\n")
    t1 = time.monotonic()
    rc, out = provision("apply", str(site), "-i", str(inventory), "-v")
    role_s = time.monotonic() - t1
    assert rc == 0, out
    assert "OPENSSH PRIVATE KEY" not in out and deploy_priv.decode().splitlines()[1] not in out
    for h in clients:
        key = h.path("/etc/provision/pull/deploy_key")
        st = key.stat()
        assert (st.st_mode & 0o777, st.st_uid, st.st_gid) == (0o600, 0, 0)
        assert key.read_bytes().strip() == deploy_priv.strip()
        assert h.path("/etc/provision/pull").stat().st_mode & 0o777 == 0o700
        assert known[0] in h.path("/etc/ssh/ssh_known_hosts").read_text()
        unit = h.path("/etc/systemd/system/provision-pull.service").read_text()
        assert f"ExecStart=/opt/provision-pull/bin/provision pull {url} --state-dir" in unit
        assert "--private-key /etc/provision/pull/deploy_key" in unit
        timer = h.path("/etc/systemd/system/provision-pull.timer").read_text()
        assert "OnBootSec=2min\n" in timer and "OnUnitActiveSec=15min\n" in timer
        assert "RandomizedDelaySec=5min\n" in timer
    rc, out = provision("apply", str(site), "-i", str(inventory))
    assert rc == 0 and all(f"{h.name}" in out for h in clients), out
    assert " changed=0 " in out and " changed=1" not in out, out  # the role converged: second apply changes nothing

    # -- systemd-analyze verify, inside a fleet host (the image has systemd's files; it does not run) --
    units = ["/etc/systemd/system/provision-pull.service", "/etc/systemd/system/provision-pull.timer"]
    done = fleet.host_exec(clients[0], ["systemd-analyze", "verify", *units], timeout=60)
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr.decode()
    broken = clients[0].path("/etc/systemd/system/broken-pull.service")  # the check has teeth
    broken.write_text(clients[0].path(units[0]).read_text().replace("/opt/provision-pull/bin/", "/opt/nowhere/"))
    done = fleet.host_exec(clients[0], ["systemd-analyze", "verify", "/etc/systemd/system/broken-pull.service"])
    assert done.returncode != 0 and b"/opt/nowhere/provision is not executable" in done.stderr, done.stderr
    broken.unlink()

    # -- five hosts pull and converge ------------------------------------------------------------
    t2 = time.monotonic()
    results = pull_all(fleet, clients, url)
    first_pull_s = time.monotonic() - t2
    for h in clients:
        rc, out = results[h.name]
        assert rc == 0, out
        assert h.path("/etc/lab-release").read_text() == f"lab v1 on {h.name}\n"
        s = state(h)
        assert (s["commit"], s["result"], s["exit_code"], s["playbook"]) == (first, "changed", 0, "local.yml")
        assert s["counts"]["changed"] == 1 and s["counts"]["failed"] == 0
        assert s["logged_to"] == "stderr" and "provision-pull: " in out  # no syslog in the fleet
    stamps = {h.name: h.path("/etc/lab-release").stat().st_mtime_ns for h in clients}

    # -- a rerun with no new commit does nothing ------------------------------------------------
    t3 = time.monotonic()
    results = pull_all(fleet, clients, url)
    noop_s = time.monotonic() - t3
    for h in clients:
        rc, out = results[h.name]
        assert rc == 0 and f"commit {first[:12]} already applied" in out, out
        assert "PLAY" not in out and "TASK" not in out  # no playbook ran
        assert state(h)["result"] == "unchanged" and "counts" not in state(h)
        assert h.path("/etc/lab-release").stat().st_mtime_ns == stamps[h.name]

    # -- a new commit is applied ------------------------------------------------------------------
    second = admin.commit("v2")
    results = pull_all(fleet, clients, url)
    for h in clients:
        rc, out = results[h.name]
        assert rc == 0, out
        assert h.path("/etc/lab-release").read_text() == f"lab v2 on {h.name}\n"
        assert (state(h)["commit"], state(h)["result"]) == (second, "changed")
        assert state(h)["last_success"]["commit"] == second

    # -- overlapping runs: one waits for the running one, one gives up with the reason -----------
    h = clients[0]
    lock = h.path("/var/lib/provision/pull/pull.lock")
    box: dict[str, tuple[int, str]] = {}
    slow = threading.Thread(target=lambda: box.update(pull_all(fleet, [h], url, "slow.yml", "--always")))
    slow.start()
    deadline = time.monotonic() + 30
    while not lock.read_text().startswith("pid ") and time.monotonic() < deadline:
        time.sleep(0.05)
    holder = lock.read_text().split()[1]
    impatient = pull_all(fleet, [h], url, "--lock-timeout", "1")[h.name]
    patient = pull_all(fleet, [h], url, "--always", "--lock-timeout", "60")[h.name]
    slow.join()
    assert box[h.name][0] == 0, box[h.name][1]
    assert impatient[0] == 4, impatient[1]
    assert f"another pull holds /var/lib/provision/pull/pull.lock (pid {holder} since" in impatient[1]
    assert "gave up after --lock-timeout 1 s" in impatient[1]
    assert patient[0] == 0 and "waited" in patient[1] and "for the previous run to finish" in patient[1]
    # the patient one ran last: local.yml again, already converged
    assert (state(h)["result"], state(h)["playbook"], state(h)["counts"]["changed"]) == ("ok", "local.yml", 0)

    # -- provision status: the five results in one table, one SSH session per host ---------------
    fleet.reset_log()
    rc, out = provision("status", "-i", str(inventory))
    assert rc == 0, out
    print("\n" + out)
    lines = out.strip().splitlines()
    assert lines[0].split()[:5] == ["HOST", "LAST", "RUN", "AGE", "COMMIT"]
    assert [ln.split()[0] for ln in lines[1:]] == [h.name for h in clients]
    for line, c in zip(lines[1:], clients):
        assert line.split()[3:5] == [second[:12], "ok" if c is h else "changed"], line
    for c in clients:
        counts = fleet.session_counts(c)
        assert (counts["connections"], counts["exec"]) == (1, 1), counts
    rc, out = provision("status", "-i", str(inventory), "--json")
    data = json.loads(out)
    assert rc == 0 and sorted(data) == sorted(h.name for h in clients)
    assert {d["commit"] for d in data.values()} == {second}

    # a host that never pulled is named with the reason, and the status exits 1
    everyone = fleet.write_inventory(tmp_path / "all.yml")
    rc, out = provision("status", "-i", str(everyone))
    assert rc == 1 and f"{server.name}  never pulled (no such file: {STATE})" in out, out
    print(f"\nsetup {setup_s:.1f} s, role {role_s:.1f} s, first pull x5 {first_pull_s:.1f} s, "
          f"no-op pull x5 {noop_s:.1f} s, total {time.monotonic() - t0:.1f} s")
