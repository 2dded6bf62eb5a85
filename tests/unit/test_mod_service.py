"""service/systemd decisions against FAKE systemctl, service and update-rc.d programs.

systemd cannot run on this machine (no init), so small shell scripts stand in for the three
programs, put first on the host's PATH: they keep each unit's state in files next to them and
log every call. The module runs them for real through the host, exactly as it would the real ones.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from provisioner.host.dispatch import execute_module
from provisioner.host.runtime import Host
from provisioner.modules import host_modules, validate_args
from provisioner.modules import service as mod

FAKE_SYSTEMCTL = r"""#!/bin/sh
# FAKE systemctl (systemd cannot run here): unit states live in files next to this script.
dir=$(dirname "$0"); echo "systemctl $*" >> "$dir/calls"
[ "$1" = "--user" ] && shift; [ "$1" = "--no-block" ] && shift
verb=$1; st="$dir/state.$2"
case $verb in
  show) if [ ! -f "$st.file" ]; then
          printf 'LoadState=not-found\nActiveState=inactive\nUnitFileState=\n'; exit 0
        fi
        printf 'LoadState=loaded\nActiveState=%s\nSubState=x\nUnitFileState=%s\n' \
               "$(cat "$st.active" 2>/dev/null || echo inactive)" "$(cat "$st.file")" ;;
  start|restart|reload)
        if [ "$(cat "$st.file")" = masked ]; then echo "Unit $2.service is masked." >&2; exit 1; fi
        echo active > "$st.active" ;;
  stop) echo inactive > "$st.active" ;;
  enable) echo enabled > "$st.file" ;;
  disable|unmask) echo disabled > "$st.file" ;;
  mask) echo masked > "$st.file" ;;
  daemon-reload)
        for f in "$dir"/pending.*; do [ -e "$f" ] && mv "$f" "$dir/state.${f##*/pending.}.file"; done ;;
  *) echo "unknown verb $verb" >&2; exit 1 ;;
esac
"""

FAKE_SERVICE = r"""#!/bin/sh
# FAKE sysvinit `service`: script states live in files next to this script.
dir=$(dirname "$0"); echo "service $*" >> "$dir/calls"
[ -f "$dir/sysv.$1" ] || { echo "$1: unrecognized service" >&2; exit 1; }
case $2 in
  status) [ "$(cat "$dir/sysv.$1")" = running ] && exit 0; exit 3 ;;
  start|restart|reload) echo running > "$dir/sysv.$1" ;;
  stop) echo stopped > "$dir/sysv.$1" ;;
esac
"""

FAKE_UPDATE_RC_D = r"""#!/bin/sh
# FAKE update-rc.d: S/K links in rc?.d directories next to this script.
dir=$(dirname "$0"); echo "update-rc.d $*" >> "$dir/calls"
for l in 2 3 4 5; do
  case $2 in
    defaults) ln -sf ../init.d/$1 "$dir/rc$l.d/S01$1" ;;
    enable) mv "$dir/rc$l.d/K01$1" "$dir/rc$l.d/S01$1" ;;
    disable) mv "$dir/rc$l.d/S01$1" "$dir/rc$l.d/K01$1" ;;
  esac
done
"""


@pytest.fixture
def fakes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    programs = {"systemctl": FAKE_SYSTEMCTL, "service": FAKE_SERVICE, "update-rc.d": FAKE_UPDATE_RC_D}
    for name, text in programs.items():
        (tmp_path / name).write_text(text)
        (tmp_path / name).chmod(0o755)
    for level in "2345":
        (tmp_path / f"rc{level}.d").mkdir()
    monkeypatch.setattr(mod, "RC_DIRS", (str(tmp_path / "rc{}.d"),))
    monkeypatch.setattr(mod, "INIT_D", str(tmp_path / "init.d"))
    return tmp_path


def service(fakes: Path, manager: str = "systemd", module: str = "service", check: bool = False,
            **raw: Any) -> dict[str, Any]:
    host = Host(facts={"service_mgr": manager}, check_mode=check,
                env={"PATH": f"{fakes}:{os.environ.get('PATH', '')}"})
    spec = host_modules()[module]
    return execute_module(spec.module, validate_args(spec, raw), host)


def calls(fakes: Path) -> list[str]:
    log = fakes / "calls"
    lines = log.read_text().splitlines() if log.exists() else []
    log.unlink(missing_ok=True)
    return lines


def unit(fakes: Path, name: str, active: str, file_state: str) -> None:
    (fakes / f"state.{name}.active").write_text(active + "\n")
    (fakes / f"state.{name}.file").write_text(file_state + "\n")


def test_started_and_enabled_once(fakes: Path) -> None:
    unit(fakes, "nginx", "inactive", "disabled")
    planned = service(fakes, check=True, name="nginx", state="started", enabled=True)
    assert planned["changed"] and planned["msg"] == "would enable start nginx"
    assert calls(fakes) == ["systemctl show nginx -p LoadState,ActiveState,SubState,UnitFileState"]

    assert service(fakes, name="nginx", state="started", enabled=True)["changed"]
    assert calls(fakes)[1:] == ["systemctl enable nginx", "systemctl start nginx"]
    again = service(fakes, name="nginx", state="started", enabled=True)
    assert again["changed"] is False and again["status"]["ActiveState"] == "active"
    assert len(calls(fakes)) == 1                                   # one systemctl show, nothing else


def test_stop_restart_reload(fakes: Path) -> None:
    unit(fakes, "cron", "active", "enabled")
    assert service(fakes, module="systemd", unit="cron", state="reloaded")["changed"]
    assert calls(fakes)[-1] == "systemctl reload cron"
    assert service(fakes, module="systemd_service", name="cron", state="restarted", no_block=True)["changed"]
    assert calls(fakes)[-1] == "systemctl --no-block restart cron"
    assert service(fakes, name="cron", state="stopped", enabled=False)["changed"]
    assert calls(fakes)[1:] == ["systemctl disable cron", "systemctl stop cron"]
    assert service(fakes, name="cron", state="stopped", enabled=False)["changed"] is False


def test_mask_and_unmask(fakes: Path) -> None:
    unit(fakes, "bluetooth", "inactive", "enabled")
    assert service(fakes, name="bluetooth", masked=True)["changed"]
    assert service(fakes, name="bluetooth", masked=True)["changed"] is False
    assert service(fakes, name="bluetooth", masked=False, state="started")["changed"]
    assert calls(fakes)[-2:] == ["systemctl unmask bluetooth", "systemctl start bluetooth"]


def test_unknown_unit_fails_unless_a_reload_brings_it(fakes: Path) -> None:
    result = service(fakes, name="ghost", state="started")
    assert result["failed"] and result["msg"] == "Could not find the requested service ghost: host"
    (fakes / "pending.ghost").write_text("disabled\n")
    assert service(fakes, name="ghost", state="started", daemon_reload=True)["changed"]
    assert calls(fakes)[-3:] == ["systemctl daemon-reload",
                                 "systemctl show ghost -p LoadState,ActiveState,SubState,UnitFileState",
                                 "systemctl start ghost"]
    reload_only = service(fakes, daemon_reload=True)
    assert reload_only["changed"] is False and calls(fakes) == ["systemctl daemon-reload"]


def test_sysvinit_fallback(fakes: Path) -> None:
    (fakes / "sysv.ssh").write_text("stopped\n")
    assert service(fakes, "sysvinit", name="ssh", state="started", enabled=True)["changed"]
    assert calls(fakes)[1:] == ["update-rc.d ssh defaults", "service ssh start"]
    assert (fakes / "rc2.d" / "S01ssh").is_symlink()
    assert service(fakes, "sysvinit", name="ssh", state="started", enabled=True)["changed"] is False
    assert service(fakes, "sysvinit", name="ssh", enabled=False, state="stopped")["changed"]
    assert calls(fakes)[-2:] == ["update-rc.d ssh disable", "service ssh stop"]
    unknown = service(fakes, "sysvinit", name="nope", state="started")
    assert unknown["failed"] and unknown["msg"] == "Could not find the requested service nope: host"
    assert "masked needs systemd" in service(fakes, "sysvinit", name="ssh", masked=True)["msg"]


def test_neither_systemd_nor_sysvinit_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mod, "INIT_D", str(tmp_path / "init.d"))
    empty = tmp_path / "bin"
    empty.mkdir()
    host = Host(facts={"service_mgr": "sysvinit"}, env={"PATH": str(empty)})
    spec = host_modules()["service"]
    result = execute_module(spec.module, validate_args(spec, {"name": "nginx", "state": "started"}), host)
    assert result["failed"] and "\n" not in result["msg"]
    assert result["msg"].startswith(
        "cannot manage service nginx: systemd is not running here (service_mgr=sysvinit)")
