"""Run one module on this host: decide with `plan`, then `apply` unless in check mode.

Shipped to the host with the modules; also used in-process by the local unit tests.
"""

from __future__ import annotations

from provisioner.host.runtime import Host, ModuleError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Dict


def execute_module(module: Any, args: Any, host: Host) -> Dict[str, Any]:
    """Return a result dict: changed, msg, failed, diff (when asked), skipped, and module data."""
    if host.check_mode and not getattr(module, "CHECK_MODE", True):
        return {"changed": False, "skipped": True, "msg": "skipped in check mode"}
    try:
        change = module.plan(args, host)
        result: Dict[str, Any] = dict(change.data)
        result["changed"] = bool(change.changed)
        result["msg"] = change.msg
        if change.diff is not None and host.diff_mode and change.changed:
            result["diff"] = change.diff
        if change.changed and not host.check_mode:
            extra = module.apply(args, change, host) or {}
            result.update(extra)
            result["changed"] = bool(extra.get("changed", True))
        result.setdefault("failed", False)
        return result
    except ModuleError as exc:
        out = dict(exc.data)
        out.update({"failed": True, "changed": False, "msg": exc.msg})
        return out
    except Exception as exc:  # a bug in a module: keep the traceback for -vvv
        import traceback  # only now: importing it costs the host ~10 ms on every run
        return {"failed": True, "changed": False, "msg": "module crashed: %s: %s" % (type(exc).__name__, exc),
                "exception": traceback.format_exc()}
