"""The two output modes fed the executor's events directly: the compact live view (one line per
task, redrawn in place) and the per-host lines; the recap's order and colours."""

from __future__ import annotations

import io
import re

from provisioner.executor.results import CHANGED, FAILED, OK, SKIPPED, UNREACHABLE, HostStats, TaskResult
from provisioner.output.events import Output, natural_key
from provisioner.output.live import CompactOutput
from tests.terminal import screen

SGR = re.compile(r"\x1b\[[0-9;]*m")


def step(out: Output, task: str, results: list[TaskResult]) -> None:
    out.step_start(len(results))
    out.task_start(task, None)
    for r in results:
        out.host_finished(r)
    for r in results:
        out.host_result(r)
    out.step_end()


def results(task: str, statuses: dict[str, str]) -> list[TaskResult]:
    return [TaskResult(h, task, "file", s, "boom" if s in (FAILED, UNREACHABLE) else "")
            for h, s in statuses.items()]


def test_compact_view_counts_hosts_and_shows_only_changed_failed_unreachable() -> None:
    stream = io.StringIO()
    out = CompactOutput(stream=stream, colour=False, live=True, width=200, min_redraw=0)
    statuses = {f"node{i}": OK for i in range(1, 11)}
    statuses.update(node3=CHANGED, node4=FAILED, node5=UNREACHABLE, node6=SKIPPED)
    step(out, "Install tools", results("Install tools", statuses))
    raw = stream.getvalue()
    shown = [line for line in screen(raw) if line]
    assert shown == ["changed: [node3]", "failed: [node4] => boom", "unreachable: [node5] => boom",
                     shown[3]]
    assert re.fullmatch(r"TASK \[Install tools\] ok=6 changed=1 failed=1 skipped=1 unreachable=1 "
                        r"\(10 hosts, \d+\.\ds\)", shown[3])
    # while hosts finished, the task's line was redrawn in place with a bar and done/total
    assert "\rTASK [Install tools] ok=0 changed=0 failed=0 skipped=0 unreachable=0 [--------------------] 0/10" in raw
    assert re.search(r"\rTASK \[Install tools\] ok=5 changed=1 failed=1 skipped=1 unreachable=1 "
                     r"\[#{18}--\] 9/10 \d+\.\ds\x1b\[K", raw)


def test_verbose_compact_view_brings_back_every_host_line() -> None:
    stream = io.StringIO()
    out = CompactOutput(verbosity=1, stream=stream, colour=False, live=True, width=200, min_redraw=0)
    step(out, "t", results("t", {"a": OK, "b": SKIPPED, "c": CHANGED}))
    shown = [line for line in screen(stream.getvalue()) if line]
    assert shown[:3] == ["ok: [a]", "skipped: [b]", "changed: [c]"]


def test_progress_of_a_host_shows_on_the_task_line_until_it_finishes() -> None:
    stream = io.StringIO()
    out = CompactOutput(stream=stream, colour=False, live=True, width=200, min_redraw=0)
    out.step_start(3)
    out.task_start("Install CUDA", None)
    out.host_progress("host07", {"tool": "apt", "phase": "download", "percent": 43.2})
    assert screen(stream.getvalue())[-1].endswith("0/3 0.0s apt download 43% host07")
    out.host_progress("host08", {"tool": "apt", "phase": "install", "percent": 7})
    assert screen(stream.getvalue())[-1].endswith("0/3 0.0s apt install 7% host08 (+1)")
    out.host_finished(TaskResult("host08", "Install CUDA", "apt", CHANGED))
    assert screen(stream.getvalue())[-1].endswith("1/3 0.0s apt download 43% host07")
    out.host_finished(TaskResult("host07", "Install CUDA", "apt", CHANGED))
    assert "host07" not in screen(stream.getvalue())[-1]
    out.step_end()


def test_a_long_line_is_cut_to_the_terminal_width() -> None:
    out = CompactOutput(stream=io.StringIO(), colour=False, live=True, width=200, min_redraw=0)
    out.step_start(2)
    out.task_start("x" * 200, None)
    line = out._line(final=False, width=60)
    assert len(line) <= 59 and line.endswith("…")


def test_compact_view_when_piped_prints_each_task_once() -> None:
    stream = io.StringIO()
    out = CompactOutput(stream=stream, colour=False, live=False)
    step(out, "a", results("a", {"h1": OK, "h2": CHANGED}))
    assert "\r" not in stream.getvalue()
    lines = stream.getvalue().splitlines()
    assert lines[0] == "changed: [h2]" and lines[1].startswith("TASK [a] ok=1 changed=1 failed=0")


def test_lines_mode_is_unchanged_by_the_step_events() -> None:
    stream = io.StringIO()
    out = Output(stream=stream, colour=False)
    step(out, "a", results("a", {"h1": OK, "h2": CHANGED, "h3": FAILED}))
    assert stream.getvalue() == "TASK [a]\nok: [h1]\nchanged: [h2]\nfailed: [h3] => boom\n"


def test_recap_is_in_natural_host_order() -> None:
    stream = io.StringIO()
    out = Output(stream=stream, colour=False)
    out.recap({h: HostStats(ok=1) for h in ("host10", "host2", "host1")}, 1.0)
    names = [line.split()[0] for line in stream.getvalue().splitlines() if line.startswith("host")]
    assert names == ["host1", "host2", "host10"]
    assert sorted(["b10", "b9", "a100"], key=natural_key) == ["a100", "b9", "b10"]
    assert "host1   : ok=1    changed=0    unreachable=0    failed=0    skipped=0    rescued=0    ignored=0   " \
        in stream.getvalue()


def test_recap_colours_each_count_as_ansible_does() -> None:
    stream = io.StringIO()
    out = Output(stream=stream, colour=True)
    out.recap({"web1": HostStats(ok=3, changed=1, skipped=2), "web2": HostStats(ok=1, failed=1),
               "web3": HostStats(unreachable=1)}, 1.0)
    lines = {line.split()[0]: line for line in SGR.sub("", stream.getvalue()).splitlines() if line.startswith("web")}
    raw = {SGR.sub("", line).split()[0]: line for line in stream.getvalue().splitlines() if "web" in line}
    assert "\x1b[33mweb1" in raw["web1"] and "\x1b[32mok=3   \x1b[0m" in raw["web1"]
    assert "\x1b[33mchanged=1   \x1b[0m" in raw["web1"] and "\x1b[36mskipped=2   \x1b[0m" in raw["web1"]
    assert "\x1b[31mweb2" in raw["web2"] and "\x1b[31mfailed=1   \x1b[0m" in raw["web2"]
    assert "\x1b[31munreachable=1   \x1b[0m" in raw["web3"]
    assert "changed=0    " in raw["web2"] and "\x1b[33mchanged=0" not in raw["web2"]  # a 0 stays plain
    assert lines["web1"].startswith("web1  : ok=3    changed=1")


def test_an_interrupt_leaves_the_running_task_line_with_what_finished() -> None:
    stream = io.StringIO()
    out = CompactOutput(stream=stream, colour=False, live=True, width=200, min_redraw=0)
    out.step_start(3)
    out.task_start("Install CUDA", None)
    out.host_finished(TaskResult("a", "Install CUDA", "apt", CHANGED))
    out.interrupted()
    shown = [line for line in screen(stream.getvalue()) if line]
    assert shown[0] == "changed: [a]"
    assert re.fullmatch(r"TASK \[Install CUDA\] ok=0 changed=1 failed=0 skipped=0 unreachable=0 \(1/3 hosts, .*\)",
                        shown[1])
    assert shown[2].startswith("Interrupted: stopping now")


def test_many_hosts_finishing_at_once_cost_few_redraws() -> None:
    stream = io.StringIO()
    out = CompactOutput(stream=stream, colour=False, live=True, width=200)   # at most 20 redraws a second
    step(out, "t", results("t", {f"h{i}": OK for i in range(200)}))
    drawn = stream.getvalue().count("\rTASK [t]")
    assert drawn <= 5, drawn
    assert "] 0/200 " in stream.getvalue() and "] 200/200 " in stream.getvalue()  # first and last always drawn
    assert screen(stream.getvalue())[0].startswith("TASK [t] ok=200 changed=0 failed=0 skipped=0 unreachable=0 (200 hosts")
