"""yum_repository writes a .repo ini in a tmp reposdir (its own argument), once, in Ansible's format."""

from __future__ import annotations

import configparser
from pathlib import Path
from typing import Any

from provisioner.host.dispatch import execute_module
from provisioner.host.runtime import Host
from provisioner.modules import host_modules, validate_args


def yum_repository(check: bool = False, diff: bool = False, **raw: Any) -> dict[str, Any]:
    spec = host_modules()["yum_repository"]
    return execute_module(spec.module, validate_args(spec, raw), Host(check_mode=check, diff_mode=diff))


EPEL: dict[str, Any] = {"name": "epel", "description": "EPEL YUM repo", "gpgcheck": True, "enabled": True,
        "baseurl": "https://download.fedoraproject.org/pub/epel/$releasever/$basearch/",
        "gpgkey": "https://download.fedoraproject.org/pub/epel/RPM-GPG-KEY-EPEL-9"}


def test_written_once_in_ansibles_format(tmp_path: Path) -> None:
    dest = tmp_path / "epel.repo"
    planned = yum_repository(check=True, diff=True, reposdir=str(tmp_path), **EPEL)
    assert planned["changed"] and not dest.exists() and "[epel]" in planned["diff"]["after"]
    assert yum_repository(reposdir=str(tmp_path), **EPEL)["changed"]
    assert dest.read_text() == (
        "[epel]\n"
        "baseurl = https://download.fedoraproject.org/pub/epel/$releasever/$basearch/\n"
        "enabled = 1\ngpgcheck = 1\n"
        "gpgkey = https://download.fedoraproject.org/pub/epel/RPM-GPG-KEY-EPEL-9\n"
        "name = EPEL YUM repo\n\n")
    assert yum_repository(reposdir=str(tmp_path), **EPEL)["changed"] is False
    assert yum_repository(reposdir=str(tmp_path), **{**EPEL, "enabled": False})["changed"]
    assert "enabled = 0\n" in dest.read_text()


def test_sections_share_a_file_and_the_last_one_removes_it(tmp_path: Path) -> None:
    testing = {**EPEL, "name": "epel-testing", "description": "EPEL testing", "enabled": False}
    assert yum_repository(reposdir=str(tmp_path), file="external", **EPEL)["changed"]
    assert yum_repository(reposdir=str(tmp_path), file="external", **testing)["changed"]
    ini = configparser.ConfigParser(interpolation=None)
    ini.read(tmp_path / "external.repo")
    assert ini.sections() == ["epel", "epel-testing"] and ini["epel-testing"]["enabled"] == "0"

    assert yum_repository(reposdir=str(tmp_path), file="external", name="epel", state="absent")["changed"]
    assert "[epel]" not in (tmp_path / "external.repo").read_text()
    gone = yum_repository(reposdir=str(tmp_path), file="external", name="epel-testing", state="absent")
    assert gone["changed"] and not (tmp_path / "external.repo").exists()
    again = yum_repository(reposdir=str(tmp_path), file="external", name="epel", state="absent")
    assert again["changed"] is False


def test_mode_multiple_urls_and_required_args(tmp_path: Path) -> None:
    args = {**EPEL, "baseurl": ["https://a.example/el9", "https://b.example/el9"], "mode": "0600",
            "validate_certs": False}
    assert yum_repository(reposdir=str(tmp_path), **args)["changed"]
    text = (tmp_path / "epel.repo").read_text()
    assert "baseurl = https://a.example/el9\n\thttps://b.example/el9\n" in text and "sslverify = 0\n" in text
    assert oct((tmp_path / "epel.repo").stat().st_mode & 0o777) == "0o600"
    assert yum_repository(reposdir=str(tmp_path), **{**args, "mode": "0644"})["changed"]
    assert yum_repository(reposdir=str(tmp_path), **{**args, "mode": "0644"})["changed"] is False
    assert "description" in yum_repository(reposdir=str(tmp_path), name="x", baseurl="http://x")["msg"]
    assert "does not exist" in yum_repository(reposdir=str(tmp_path / "nope"), **EPEL)["msg"]
