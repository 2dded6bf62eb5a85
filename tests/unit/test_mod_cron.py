"""cron with cron_file on real files: the `#Ansible: name` format, env lines, disabled, special_time, removal.

User crontabs need the `crontab` program and change a real spool: they are proven on the fleet
(tests/fleet/test_modules_fleet.py).
"""

from __future__ import annotations

from pathlib import Path

from tests.unit.modhelp import run_module


def test_job_written_as_ansible_writes_it_then_no_change(tmp_path: Path) -> None:
    f = tmp_path / "backup"
    args = {"name": "nightly backup", "cron_file": str(f), "user": "root", "minute": "30", "hour": "2",
            "job": "/usr/local/bin/backup.sh"}
    res = run_module("cron", **args)
    assert res["changed"] and res["jobs"] == ["nightly backup"] and res["cron_file"] == str(f)
    assert f.read_text() == "#Ansible: nightly backup\n30 2 * * * root /usr/local/bin/backup.sh\n"
    assert f.stat().st_mode & 0o777 == 0o644
    assert run_module("cron", **args)["changed"] is False


def test_changed_schedule_replaces_the_line_after_the_marker(tmp_path: Path) -> None:
    f = tmp_path / "jobs"
    f.write_text("#Ansible: a\n* * * * * root true\n#Ansible: b\n@daily root b\n")
    run_module("cron", name="a", cron_file=str(f), user="root", job="true", weekday="1", disabled=True)
    assert f.read_text() == "#Ansible: a\n#* * * * 1 root true\n#Ansible: b\n@daily root b\n"


def test_special_time_and_env_variables(tmp_path: Path) -> None:
    f = tmp_path / "jobs"
    run_module("cron", name="reboot job", cron_file=str(f), user="root", special_time="reboot", job="echo hi")
    run_module("cron", name="PATH", env=True, job="/usr/bin:/bin", cron_file=str(f), user="root")
    res = run_module("cron", name="MAILTO", env=True, value="ops@example.com", cron_file=str(f), user="root",
                     insertafter="PATH")
    assert f.read_text() == ('PATH="/usr/bin:/bin"\nMAILTO="ops@example.com"\n'
                             "#Ansible: reboot job\n@reboot root echo hi\n")
    assert res["envs"] == ["PATH", "MAILTO"] and res["jobs"] == ["reboot job"]


def test_an_unnamed_identical_job_gets_its_marker(tmp_path: Path) -> None:
    f = tmp_path / "jobs"
    f.write_text("5 * * * * root run\n")
    res = run_module("cron", name="run", minute="5", job="run", user="root", cron_file=str(f))
    assert res["changed"] and f.read_text() == "#Ansible: run\n5 * * * * root run\n"


def test_absent_removes_the_job_and_the_then_empty_file(tmp_path: Path) -> None:
    f = tmp_path / "jobs"
    f.write_text("#Ansible: a\n* * * * * root true\n")
    res = run_module("cron", check=True, diff=True, name="a", cron_file=str(f), state="absent")
    assert res["changed"] and f.exists() and res["diff"]["after"] == ""
    assert run_module("cron", name="a", cron_file=str(f), state="absent")["changed"] and not f.exists()
    assert run_module("cron", name="a", cron_file=str(f), state="absent")["changed"] is False


def test_check_mode_and_diff(tmp_path: Path) -> None:
    f = tmp_path / "jobs"
    res = run_module("cron", check=True, diff=True, name="x", cron_file=str(f), user="root", job="ls")
    assert res["changed"] and not f.exists()
    assert res["diff"] == {"path": str(f), "before": "", "after": "#Ansible: x\n* * * * * root ls\n"}


def test_a_missing_final_newline_is_a_change(tmp_path: Path) -> None:
    f = tmp_path / "jobs"
    f.write_text("#Ansible: x\n* * * * * root ls")
    assert run_module("cron", name="x", cron_file=str(f), user="root", job="ls")["changed"]
    assert f.read_text().endswith("ls\n")


def test_errors(tmp_path: Path) -> None:
    f = str(tmp_path / "jobs")
    assert run_module("cron", name="x", cron_file=f, job="ls")["msg"] == \
        "To use cron_file=... parameter you must specify user=... as well"
    assert run_module("cron", name="x", cron_file=f, user="root")["msg"] == \
        "You must specify 'job' to install a new cron job or variable"
    assert "cannot combine special_time" in run_module("cron", name="x", cron_file=f, user="root", job="ls",
                                                       special_time="daily", hour="1")["msg"]
    assert run_module("cron", name="x", cron_file="/etc/crontab", user="root", job="ls")["failed"]
    assert run_module("cron", name="A B", env=True, cron_file=f, user="root", job="1")["msg"] == \
        "Invalid name for environment variable"
