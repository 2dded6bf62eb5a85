"""Ansible callback for the compat harness: one JSON line per task result, per host.

Enabled through ANSIBLE_CALLBACKS_ENABLED=compat_record; writes to $COMPAT_RECORD_FILE.
Runs inside ansible-playbook's venv (ansible-core 2.19), not in provision's.
"""
from __future__ import annotations

import json
import os

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: compat_record
type: aggregate
short_description: record each task's status per host as JSON lines
description: used by provision's tests/compat harness
requirements: [enable in configuration]
"""


def _item_status(r):
    if r.get("skipped"):
        return "skipped"
    if r.get("failed"):
        return "failed"
    return "changed" if r.get("changed") else "ok"


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "compat_record"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self):
        super().__init__()
        self._path = os.environ["COMPAT_RECORD_FILE"]
        self._handlers = set()

    def _write(self, result, status, ignored=False):
        task = result._task
        data = result._result
        items = data.get("results") if isinstance(data.get("results"), list) else None
        rec = {
            "host": result._host.get_name(),
            "task": task.get_name(),
            "action": task.action,
            "status": status,
            "ignored": bool(ignored),
            "handler": task._uuid in self._handlers,
            "items": [_item_status(r) for r in items if isinstance(r, dict)] if items is not None else None,
        }
        with open(self._path, "a", encoding="utf-8") as out:
            out.write(json.dumps(rec) + "\n")

    def v2_playbook_on_handler_task_start(self, task):
        self._handlers.add(task._uuid)

    def v2_runner_on_ok(self, result):
        self._write(result, "changed" if result._result.get("changed") else "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._write(result, "failed", ignored=ignore_errors)

    def v2_runner_on_skipped(self, result):
        self._write(result, "skipped")

    def v2_runner_on_unreachable(self, result):
        self._write(result, "unreachable")
