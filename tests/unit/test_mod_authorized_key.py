"""authorized_key with `path` under tmp: keys added in Ansible's format, options, exclusive, absent, file:// keys."""

from __future__ import annotations

import getpass
from pathlib import Path

from tests.unit.modhelp import run_module

K1 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBvH7sK5w3lZ2pp8Ko6vPBrpDbeTZ8M7QKcIWoTcdK8X alice@lab"
K2 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFaQ5rZJ2aPqC6pxLu0gW6rYv7m3mYkU9CqYV1Hj7bN2"
USER = getpass.getuser()


def test_two_keys_added_in_order_then_no_change(tmp_path: Path) -> None:
    path = tmp_path / "ssh" / "authorized_keys"
    res = run_module("authorized_key", user=USER, key=f"{K1}\n# a comment line\n{K2}\n", path=str(path))
    assert res["changed"] and res["keyfile"] == str(path)
    assert path.read_text() == f"{K1}\n{K2} \n"  # Ansible's trailing space when a key has no comment
    assert path.stat().st_mode & 0o777 == 0o600 and path.parent.stat().st_mode & 0o777 == 0o700
    assert run_module("authorized_key", user=USER, key=f"{K1}\n{K2}", path=str(path))["changed"] is False


def test_options_and_comment_are_part_of_the_key(tmp_path: Path) -> None:
    path = tmp_path / "ak"
    path.write_text(f"{K1}\n")
    res = run_module("authorized_key", user=USER, key=K1, path=str(path), key_options='from="10.0.0.0/8",no-pty',
                     diff=True)
    assert res["changed"] and path.read_text() == f'from="10.0.0.0/8",no-pty {K1}\n'
    assert res["diff"]["before"] == f"{K1}\n"
    assert run_module("authorized_key", user=USER, key=K1, path=str(path),
                      key_options='from="10.0.0.0/8",no-pty')["changed"] is False
    run_module("authorized_key", user=USER, key=K1, path=str(path), comment="renamed")
    assert path.read_text() == f'{K1.rsplit(" ", 1)[0]} renamed\n'


def test_exclusive_keeps_only_the_given_keys(tmp_path: Path) -> None:
    path = tmp_path / "ak"
    path.write_text(f"{K1}\n{K2} old\n")
    assert run_module("authorized_key", user=USER, key=K2 + " old", path=str(path), exclusive=True)["changed"]
    assert path.read_text() == f"{K2} old\n"


def test_absent_removes_a_key_whatever_its_options(tmp_path: Path) -> None:
    path = tmp_path / "ak"
    path.write_text(f"no-pty {K1}\n{K2} x\n")
    assert run_module("authorized_key", user=USER, key=K1, path=str(path), state="absent")["changed"]
    assert path.read_text() == f"{K2} x\n"
    assert run_module("authorized_key", user=USER, key=K1, path=str(path), state="absent")["changed"] is False


def test_key_from_a_file_url_and_check_mode(tmp_path: Path) -> None:
    src = tmp_path / "id.pub"
    src.write_text(K1 + "\n")
    path = tmp_path / "ak"
    assert run_module("authorized_key", check=True, user=USER, key=f"file://{src}", path=str(path))["changed"]
    assert not path.exists()
    run_module("authorized_key", user=USER, key=f"file://{src}", path=str(path))
    assert path.read_text() == K1 + "\n"


def test_errors(tmp_path: Path) -> None:
    path = str(tmp_path / "ak")
    assert run_module("authorized_key", user=USER, key="not a key", path=path)["msg"] == "invalid key specified: not a key"
    assert run_module("authorized_key", user="no-such-user-x", key=K1)["msg"].startswith("Failed to lookup user no-such-user-x")
    assert run_module("authorized_key", user=USER, key="file:///nope", path=path)["msg"] == \
        "Path to a key file not found: /nope"
