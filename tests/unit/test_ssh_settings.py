"""Which SSH settings a host gets: inventory variables over ssh options over ssh_config over defaults.

Resolution only (no connection is opened); tests/fleet/test_jump.py connects through real bastions.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from provisioner.cli import main
from provisioner.connection.factory import ConnectionFactory, ConnectionSettingError
from provisioner.connection.ssh_args import SshArgsError, ssh_args_to_config
from provisioner.executor.context import RunOptions

SSH_CONFIG = """\
Host lab-*
  User labuser
  IdentityFile {key}
  IdentityFile /nonexistent/skipped_key
  UserKnownHostsFile {known} /etc/other_known_hosts

Host lab-gpu1
  HostName 10.250.0.11
  Port 2201
  ProxyJump admin@bastion:2222

Host bastion
  HostName 127.0.0.1
  User jumper
  StrictHostKeyChecking accept-new

Host deep
  HostName 10.250.1.5
  ProxyJump outer2

Host outer2
  HostName 10.250.0.9
  ProxyJump bastion

Host piped
  ProxyCommand nc %h %p

Host careless
  StrictHostKeyChecking no
"""


@pytest.fixture()
def factory(tmp_path: Path) -> ConnectionFactory:
    key = tmp_path / "id_lab"
    key.write_text("not read here\n")
    cfg = tmp_path / "ssh_config"
    cfg.write_text(SSH_CONFIG.format(key=key, known=tmp_path / "known"))
    return ConnectionFactory(RunOptions(ssh_config=cfg))


def test_ssh_config_alias_gives_address_port_user_key_and_jump(factory: ConnectionFactory, tmp_path: Path) -> None:
    t = factory.ssh_target("gpu1", {"ansible_host": "lab-gpu1"})
    assert (t.hostname, t.port, t.user) == ("10.250.0.11", 2201, "labuser")
    assert t.key_files == (str(tmp_path / "id_lab"),)   # the missing IdentityFile is skipped, as ssh does
    assert t.known_hosts[:2] == (tmp_path / "known", Path("/etc/other_known_hosts"))
    assert t.host_keys == "strict"
    (hop,) = t.jumps
    # user and port as written in ProxyJump; HostName and host-key policy from the bastion's own block
    assert (hop.name, hop.hostname, hop.port, hop.user, hop.host_keys) == (
        "admin@bastion:2222", "127.0.0.1", 2222, "admin", "accept-new")
    # the bastion has no IdentityFile or UserKnownHostsFile of its own: it uses the target's
    assert hop.key_files == t.key_files
    assert hop.known_hosts == t.known_hosts


def test_inventory_name_is_the_alias_when_there_is_no_ansible_host(factory: ConnectionFactory) -> None:
    t = factory.ssh_target("lab-gpu1", {})
    assert (t.hostname, t.port, len(t.jumps)) == ("10.250.0.11", 2201, 1)


def test_inventory_variables_win_over_ssh_options_which_win_over_ssh_config(factory: ConnectionFactory) -> None:
    opts = "-o Port=2300 -o User=fromargs -o ProxyJump=none"
    t = factory.ssh_target("gpu1", {"ansible_host": "lab-gpu1", "ansible_ssh_common_args": opts})
    assert (t.port, t.user, t.jumps) == (2300, "fromargs", ())
    t = factory.ssh_target("gpu1", {"ansible_host": "lab-gpu1", "ansible_ssh_common_args": opts,
                                    "ansible_port": 2400, "ansible_user": "frominventory",
                                    "ansible_ssh_private_key_file": "/k"})
    assert (t.port, t.user, t.key_files) == (2400, "frominventory", ("/k",))


def test_ssh_options_alone_jump_two_hops_each_hop_resolved(factory: ConnectionFactory, tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text("")
    t = factory.ssh_target("x", {"ansible_host": "10.250.9.9",
                                 "ansible_ssh_extra_args": f"-J root@127.0.0.1:2022,bastion -i {key} -p 23"})
    assert [(h.user, h.hostname, h.port) for h in t.jumps] == [("root", "127.0.0.1", 2022),
                                                                ("jumper", "127.0.0.1", 22)]
    assert (t.hostname, t.port, t.key_files) == ("10.250.9.9", 23, (str(key),))


def test_a_hops_own_proxyjump_comes_first(factory: ConnectionFactory) -> None:
    t = factory.ssh_target("deep", {})
    assert [h.hostname for h in t.jumps] == ["127.0.0.1", "10.250.0.9"]
    assert t.hostname == "10.250.1.5"


def test_proxycommand_is_expanded(factory: ConnectionFactory) -> None:
    t = factory.ssh_target("piped", {"ansible_ssh_common_args": "-p 2222"})
    assert t.proxy_command == "nc piped 2222" and t.jumps == ()
    # the inventory's port and user are what ssh would see first, so %p and %r are theirs
    t = factory.ssh_target("piped", {"ansible_port": 2301, "ansible_ssh_common_args": "-p 2222"})
    assert t.proxy_command == "nc piped 2301" and t.port == 2301


def test_strict_host_key_checking_no_is_refused_unless_allowed(tmp_path: Path, factory: ConnectionFactory) -> None:
    with pytest.raises(ConnectionSettingError, match="StrictHostKeyChecking=no would skip the host key check"):
        factory.ssh_target("careless", {})
    with pytest.raises(ConnectionSettingError, match="--insecure-no-host-key-check"):
        factory.ssh_target("h", {"ansible_ssh_common_args": "-o StrictHostKeyChecking=no"})
    allowed = ConnectionFactory(RunOptions(ssh_config=factory.options.ssh_config, insecure_no_host_key_check=True))
    assert allowed.ssh_target("careless", {}).host_keys == "off"
    t = factory.ssh_target("h", {"ansible_ssh_common_args": "-o StrictHostKeyChecking=accept-new"})
    assert t.host_keys == "accept-new"


def test_no_key_file_means_agent_and_default_keys(tmp_path: Path) -> None:
    t = ConnectionFactory(RunOptions(ssh_config=tmp_path / "none")).ssh_target
    (tmp_path / "none").write_text("")
    target = t("h", {"ansible_host": "127.0.0.1"})
    assert target.key_files == () and not target.identities_only


@pytest.mark.parametrize("args,pairs", [
    ("-o UserKnownHostsFile=/kh -o StrictHostKeyChecking=yes",
     [("UserKnownHostsFile", "/kh"), ("StrictHostKeyChecking", "yes")]),
    ("-o ProxyJump bastion -oIdentitiesOnly=yes", [("ProxyJump", "bastion"), ("IdentitiesOnly", "yes")]),
    ("-o 'ConnectTimeout 5' -J a,b -p2222 -l me -i '/my key' -C -q",
     [("ConnectTimeout", "5"), ("ProxyJump", "a,b"), ("Port", "2222"), ("User", "me"), ("IdentityFile", "/my key"),
      ("Compression", "yes")]),
    ("-o ControlMaster=auto -o ControlPersist=60s", [("ControlMaster", "auto"), ("ControlPersist", "60s")]),
])
def test_ssh_args_forms(args: str, pairs: list[tuple[str, str]]) -> None:
    assert ssh_args_to_config(args) == pairs


@pytest.mark.parametrize("args,message", [
    ("-o ForwardX11Trusted=yes", "-o ForwardX11Trusted is not supported"),
    ("-o PubkeyAcceptedKeyTypes=+ssh-rsa", "-o PubkeyAcceptedKeyTypes is not supported"),
    ("-L 8080:localhost:80", "'-L' is not supported"),
    ("-o", "-o needs a value"),
    ("-o 'unterminated", "cannot split"),
])
def test_ssh_args_not_understood_are_errors(args: str, message: str) -> None:
    with pytest.raises(SshArgsError, match=message):
        ssh_args_to_config(args)


def test_unknown_ssh_option_stops_the_run_before_any_host_exit_2(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    marker = tmp_path / "touched"
    pb = tmp_path / "pb.yml"
    pb.write_text(f"- hosts: all\n  gather_facts: false\n  tasks:\n    - file: {{path: {marker}, state: touch}}\n")
    inv = tmp_path / "inv.yml"
    inv.write_text("all:\n  hosts:\n    here: {ansible_connection: local}\n"
                   "    there: {ansible_host: 127.0.0.1, ansible_ssh_common_args: '-o Foo=bar -o Port=22'}\n")
    rc = main(["apply", str(pb), "-i", str(inv)])
    err = capsys.readouterr().err
    assert rc == 2
    assert "host there: ssh option -o Foo is not supported (in ansible_ssh_common_args)" in err
    assert not marker.exists()


def test_missing_ssh_config_file_is_a_user_error(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    pb = tmp_path / "pb.yml"
    pb.write_text("- hosts: all\n  tasks: []\n")
    inv = tmp_path / "inv.yml"
    inv.write_text("all:\n  hosts:\n    there: {ansible_host: 127.0.0.1}\n")
    rc = main(["check", str(pb), "-i", str(inv), "-F", str(tmp_path / "nope")])
    assert rc == 2
    assert "cannot read ssh config" in capsys.readouterr().err


def test_connect_timeout_and_server_alive_interval(factory: ConnectionFactory) -> None:
    args = {"ansible_ssh_common_args": "-o ConnectTimeout=3 -o ServerAliveInterval=7"}
    t = factory.ssh_target("h", args)
    assert (t.timeout, t.keepalive) == (3.0, 7)
    assert factory.ssh_target("h", {**args, "ansible_timeout": 20}).timeout == 20.0
    assert factory.ssh_target("h", {}).timeout == 10.0   # the -T/--timeout default


def test_a_jump_host_on_the_targets_address_is_no_loop_but_a_real_loop_is_said(tmp_path: Path) -> None:
    cfg = tmp_path / "cfg"
    cfg.write_text("Host a\n  ProxyJump b\nHost b\n  ProxyJump a\n")
    factory = ConnectionFactory(RunOptions(ssh_config=cfg))
    t = factory.ssh_target("h", {"ansible_host": "127.0.0.1", "ansible_port": 2201,
                                 "ansible_ssh_common_args": "-o ProxyJump=root@127.0.0.1:2200"})
    assert [(j.hostname, j.port) for j in t.jumps] == [("127.0.0.1", 2200)]
    with pytest.raises(ConnectionSettingError, match="ProxyJump loops through"):
        factory.ssh_target("a", {})


def test_settings_written_as_templates_are_checked_when_the_host_connects(factory: ConnectionFactory) -> None:
    factory.check_host("h", {"ansible_ssh_common_args": "{{ lab_ssh_args }}"})   # the play's vars decide later
    with pytest.raises(ConnectionSettingError, match="-o Foo is not supported"):
        factory.check_host("h", {"ansible_ssh_common_args": "-o Foo=1"})
    factory.check_host("h", {"ansible_connection": "local", "ansible_ssh_common_args": "-o Foo=1"})
