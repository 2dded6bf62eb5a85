"""Facts that stand in for a host's own: what-if plans of hardware or an OS this host is not.

Only for runs that change nothing (`provision plan`, `provision apply --check`): a real apply acts
on the facts it gathers, so one with fake facts (a `provision_fake_facts` host variable, a typo
away in an inventory, or `--facts-from`) is refused before any host is touched.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from provisioner.errors import Position, UserError

FAKE_FACTS_VAR = "provision_fake_facts"
WHAT_IF_ONLY = "fake facts are for `provision plan` and `provision apply --check` only"


def load_facts_file(path: str | Path) -> dict[str, Any]:
    """A JSON file of facts: one host's (`facts.gather()`'s keys), or `{host: facts}` as
    `provision facts` prints them."""
    p = Path(path).expanduser()
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UserError(f"cannot read facts: {exc.strerror}", Position(str(p))) from None
    except ValueError as exc:
        raise UserError(f"facts are not valid JSON: {exc}", Position(str(p))) from None
    if not isinstance(data, dict):
        raise UserError("facts must be a JSON object", Position(str(p)))
    return data


def facts_for_host(facts_file: Mapping[str, Any], host: str) -> dict[str, Any]:
    """This host's facts from a file given with --facts-from: its entry when the file is keyed by
    host, else the one set of facts the file holds."""
    if "os_family" in facts_file or "distribution" in facts_file:
        return dict(facts_file)
    entry = facts_file.get(host)
    if not isinstance(entry, dict):
        raise UserError(f"--facts-from: no facts for host {host!r} (the file has {sorted(facts_file)[:5]})")
    return entry


def fake_facts(facts_from: Mapping[str, Any] | None, host: str, var_value: Any, check: bool) -> dict[str, Any] | None:
    """The facts to use instead of the gathered ones, or None; UserError outside check mode."""
    if facts_from is None and not var_value:
        return None
    if not check:
        raise UserError(f"{FAKE_FACTS_VAR} is set for host {host}: {WHAT_IF_ONLY}")
    if facts_from is not None:
        return facts_for_host(facts_from, host)
    return load_facts_file(str(var_value))


def refuse_in_real_apply(host_vars: Iterable[tuple[str, Mapping[str, Any]]], extra_vars: Mapping[str, Any],
                         facts_from: str | None) -> None:
    """Before a real apply touches anything: one clear error when any fake facts are given."""
    if facts_from:
        raise UserError(f"--facts-from {facts_from}: {WHAT_IF_ONLY}; a real apply acts on each host's own facts")
    if extra_vars.get(FAKE_FACTS_VAR):
        raise UserError(f"-e {FAKE_FACTS_VAR}: {WHAT_IF_ONLY}; a real apply acts on each host's own facts")
    faked = [name for name, variables in host_vars if variables.get(FAKE_FACTS_VAR)]
    if faked:
        shown = ", ".join(faked[:5]) + (f" and {len(faked) - 5} more" if len(faked) > 5 else "")
        raise UserError(f"{FAKE_FACTS_VAR} is set for {shown}: {WHAT_IF_ONLY}; "
                        "a real apply acts on each host's own facts (remove the variable, or add --check)")
