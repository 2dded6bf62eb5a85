"""The executor's story, told on this machine: several inventory hosts, all `ansible_connection: local`.

Each test writes a playbook into a temp dir, runs `provision apply` in-process with
`--report`, and reads the exit code, the printed output and the JSON report. Hosts are
different names for the same machine, so files are kept apart by `inventory_hostname`.
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from provisioner.cli import main

HOSTS = ("h1", "h2", "h3")


@dataclass
class Run:
    rc: int
    out: str
    report: dict[str, Any]

    def recap(self, host: str) -> dict[str, int]:
        return self.report["recap"][host]

    def results(self, task: str | None = None, host: str | None = None) -> list[dict[str, Any]]:
        return [r for r in self.report["results"]
                if (task is None or r["task"] == task) and (host is None or r["host"] == host)]

    def result(self, task: str, host: str = "h1") -> dict[str, Any]:
        [found] = self.results(task, host)
        return found

    def tasks_run(self, host: str = "h1") -> list[str]:
        return [r["task"] for r in self.results(host=host) if r["task"] != "Gathering Facts"
                and r["status"] != "skipped"]

    def total(self, key: str) -> int:
        return sum(s[key] for s in self.report["recap"].values())


class Project:
    """A temp dir with an inventory of local hosts; `apply(playbook)` runs it."""

    def __init__(self, root: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.root = root
        self.capsys = capsys
        self.inventory(HOSTS)

    def inventory(self, hosts: tuple[str, ...] | dict[str, Any]) -> Path:
        spec = hosts if isinstance(hosts, dict) else {h: {"ansible_connection": "local"} for h in hosts}
        return self.write("inventory.yml", {"all": {"hosts": spec}})

    def write(self, name: str, data: Any) -> Path:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        text = data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False)
        path.write_text(text.replace("%D%", str(self.root)))
        return path

    def apply(self, playbook: str | list[Any], *args: str, name: str = "site.yml") -> Run:
        path = self.write(name, playbook)
        report = self.root / "report.json"
        report.unlink(missing_ok=True)
        rc = main(["apply", str(path), "-i", str(self.root / "inventory.yml"), "--report", str(report),
                   "-f", "5", *args])
        out, err = self.capsys.readouterr()
        assert "Traceback" not in out + err
        return Run(rc, out + err, json.loads(report.read_text()) if report.exists() else {})


@pytest.fixture
def project(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Project:
    return Project(tmp_path, capsys)


def playbook(tasks: str, **keywords: Any) -> str:
    """A play on all hosts without fact gathering. `tasks` is the YAML under `tasks:` (items indented by
    four spaces; a `handlers:` section may follow); `keywords` are more play keywords, written as JSON."""
    head = "".join(f"  {key}: {json.dumps(value)}\n" for key, value in keywords.items())
    return f"- hosts: all\n  gather_facts: false\n{head}  tasks:\n{tasks}"


# -- idempotence, check mode, diff ---------------------------------------------------------
FILES_PLAY = playbook("""\
    - name: directory
      file: {path: "%D%/{{ inventory_hostname }}/etc", state: directory, mode: "0755"}
    - name: copy content
      copy: {content: "node={{ inventory_hostname }}\\n", dest: "%D%/{{ inventory_hostname }}/etc/node.conf"}
    - name: template
      template: {src: motd.j2, dest: "%D%/{{ inventory_hostname }}/etc/motd", mode: "0600"}
    - name: line
      lineinfile: {path: "%D%/{{ inventory_hostname }}/etc/gpu.conf", line: "gpu=yes", create: true}
""")


def test_apply_twice_second_run_changes_nothing(project: Project) -> None:
    project.write("templates/motd.j2", "Welcome to {{ inventory_hostname }}\n")
    first = project.apply(FILES_PLAY)
    assert first.rc == 0
    for host in HOSTS:
        assert first.recap(host)["changed"] == 4
        assert (project.root / host / "etc/node.conf").read_text() == f"node={host}\n"
        assert (project.root / host / "etc/gpu.conf").read_text() == "gpu=yes\n"
        assert (project.root / host / "etc/motd").read_text() == f"Welcome to {host}\n"
        assert (project.root / host / "etc/motd").stat().st_mode & 0o777 == 0o600
    second = project.apply(FILES_PLAY)
    assert second.rc == 0
    assert second.total("changed") == 0
    assert "nothing changed" in second.out


def test_gather_facts_false_prints_no_fact_gathering_task(project: Project) -> None:
    run = project.apply(playbook("    - name: hello\n      debug: {msg: hi}\n"))
    assert run.rc == 0
    assert "Gathering Facts" not in run.out and "TASK [hello]" in run.out
    assert [r["task"] for r in run.results(host="h1")] == ["hello"]
    assert run.recap("h1")["ok"] == 1  # as Ansible's recap: the one task
    gathered = project.apply("- hosts: all\n  tasks:\n    - name: hello\n      debug: {msg: hi}\n")
    assert gathered.out.count("TASK [Gathering Facts]") == 1
    assert [r["task"] for r in gathered.results(host="h1")] == ["Gathering Facts", "hello"]
    assert gathered.recap("h1")["ok"] == 2


def test_check_mode_changes_nothing_but_reports_what_would(project: Project) -> None:
    project.write("templates/motd.j2", "Welcome\n")
    before = sorted([*(p.name for p in project.root.iterdir()), "site.yml"])
    run = project.apply(playbook("""\
    - name: directory
      file: {path: "%D%/{{ inventory_hostname }}.d", state: directory}
    - name: copy content
      copy: {content: "x", dest: "%D%/{{ inventory_hostname }}.conf"}
    - name: template
      template: {src: motd.j2, dest: "%D%/{{ inventory_hostname }}.motd"}
    - name: line
      lineinfile: {path: "%D%/{{ inventory_hostname }}.line", line: "x", create: true}
    - name: command
      command: touch %D%/{{ inventory_hostname }}.cmd
"""), "--check")
    assert run.rc == 0, run.out
    assert run.report["check_mode"] is True
    assert all(run.recap(h)["changed"] >= 4 for h in HOSTS)
    assert all(r["status"] == "changed" for t in ("directory", "copy content", "template", "line")
               for r in run.results(t))
    assert sorted(p.name for p in project.root.iterdir() if p.name != "report.json") == before


def test_diff_shows_the_change_to_a_file(project: Project) -> None:
    project.inventory(("h1",))
    conf = project.write("h1.conf", "alpha\nbeta\n")
    play = [{"hosts": "all", "gather_facts": False, "tasks": [
        {"name": "edit", "lineinfile": {"path": str(conf), "regexp": "^beta", "line": "gamma"}}]}]
    run = project.apply(play, "--diff")
    assert run.rc == 0
    assert "-beta" in run.out and "+gamma" in run.out
    assert run.result("edit")["diff"], "the report carries the diff too"
    assert conf.read_text() == "alpha\ngamma\n"
    again = project.apply(play, "--diff", "--check")
    assert again.total("changed") == 0 and "+gamma" not in again.out


# -- handlers ------------------------------------------------------------------------------
def test_handlers_run_once_at_the_end_and_only_when_notified(project: Project) -> None:
    run = project.apply(playbook("""\
    - name: change one
      copy: {content: "1", dest: "%D%/{{ inventory_hostname }}-1"}
      notify: restart
    - name: change two
      copy: {content: "2", dest: "%D%/{{ inventory_hostname }}-2"}
      notify: [restart]
    - name: no change
      command: "true"
      changed_when: false
      notify: never notified
    - name: last task
      debug: msg=last
  handlers:
    - name: restart
      debug: msg=restarting
    - name: never notified
      debug: msg=never
"""))
    assert run.rc == 0
    for host in HOSTS:
        assert run.tasks_run(host) == ["change one", "change two", "no change", "last task", "restart"]
        assert run.result("restart", host).get("handler") is True


def test_flush_handlers_runs_them_where_it_stands(project: Project) -> None:
    project.inventory(("h1",))
    run = project.apply(playbook("""\
    - name: change
      copy: {content: "x", dest: "%D%/f"}
      notify: restart
    - meta: flush_handlers
    - name: after flush
      debug: msg=after
  handlers:
    - name: restart
      debug: msg=restarting
"""))
    assert run.tasks_run() == ["change", "restart", "after flush"]


def test_handlers_are_not_run_on_a_failed_host_unless_forced(project: Project) -> None:
    project.inventory(("h1", "h2"))
    tasks = """\
    - name: change
      command: "true"
      changed_when: true
      notify: restart
    - name: boom
      fail: msg=boom
      when: inventory_hostname == 'h2'
  handlers:
    - name: restart
      debug: msg=restarting
"""
    run = project.apply(playbook(tasks, force_handlers=False))
    assert run.rc == 1
    assert run.tasks_run("h1") == ["change", "restart"]
    assert run.tasks_run("h2") == ["change", "boom"]
    forced = project.apply(playbook(tasks, force_handlers=True))
    assert forced.tasks_run("h2") == ["change", "boom", "restart"]
    assert forced.rc == 1


# -- errors: blocks, ignore_errors, failed_when / changed_when, until ----------------------
def test_block_rescue_always(project: Project) -> None:
    project.inventory(("h1",))
    run = project.apply(playbook("""\
    - block:
        - name: breaks
          command: "false"
        - name: never reached
          debug: msg=no
      rescue:
        - name: rescue
          debug: msg="rescued {{ ansible_failed_task.name }} rc={{ ansible_failed_result.rc }}"
      always:
        - name: always
          debug: msg=always
    - name: after the block
      debug: msg=after
"""))
    assert run.rc == 0, run.out
    assert run.tasks_run() == ["breaks", "rescue", "always", "after the block"]
    assert run.recap("h1")["rescued"] == 1
    assert run.recap("h1")["failed"] == 0
    assert run.result("rescue")["result"]["msg"] == "rescued breaks rc=1"


def test_block_without_rescue_runs_always_then_the_host_fails(project: Project) -> None:
    project.inventory(("h1",))
    run = project.apply(playbook("""\
    - block:
        - name: breaks
          command: "false"
      always:
        - name: always
          debug: msg=always
    - name: not reached
      debug: msg=no
"""))
    assert run.rc == 1
    assert run.tasks_run() == ["breaks", "always"]
    assert run.recap("h1")["failed"] == 1


def test_ignore_errors_counts_ignored_and_goes_on(project: Project) -> None:
    project.inventory(("h1",))
    run = project.apply(playbook("""\
    - name: breaks
      command: "false"
      ignore_errors: true
    - name: goes on
      debug: msg=on
"""))
    assert run.rc == 0
    assert run.tasks_run() == ["breaks", "goes on"]
    assert run.recap("h1")["ignored"] == 1 and run.recap("h1")["failed"] == 0
    assert run.result("breaks")["ignored"] is True


def test_failed_when_and_changed_when(project: Project) -> None:
    project.inventory(("h1",))
    run = project.apply(playbook("""\
    - name: looks at output
      command: echo "status ok"
      register: out
      changed_when: "'changed' in out.stdout"
      failed_when: "'error' in out.stdout"
    - name: a non-zero exit that is fine
      command: "false"
      failed_when: false
      changed_when: true
    - name: output says error
      command: echo error
      register: bad
      failed_when: "'error' in bad.stdout"
"""))
    assert run.rc == 1
    assert run.result("looks at output")["status"] == "ok"
    assert run.result("a non-zero exit that is fine")["status"] == "changed"
    assert run.result("output says error")["status"] == "failed"


def test_until_retries_until_the_condition_holds(project: Project) -> None:
    project.inventory(("h1",))
    run = project.apply(playbook("""\
    - name: third time lucky
      shell: echo x >> %D%/count; wc -l < %D%/count
      register: r
      until: r.stdout | int >= 3
      retries: 5
      delay: 0
    - name: never true
      command: "true"
      register: n
      until: n.rc == 1
      retries: 2
      delay: 0
"""))
    assert run.result("third time lucky")["result"]["attempts"] == 3
    never = run.result("never true")
    assert never["status"] == "failed" and never["result"]["attempts"] == 3
    assert run.rc == 1


# -- loops ---------------------------------------------------------------------------------
def test_loop_with_label_and_registered_results(project: Project) -> None:
    project.inventory(("h1",))
    users = [{"name": "alice", "secret": "s1"}, {"name": "bob", "secret": "s2"}]
    run = project.apply(playbook("""\
    - name: per user
      debug: msg={{ item.name }}-{{ index }}
      loop: "{{ users }}"
      loop_control: {label: "{{ item.name }}", index_var: index}
      register: out
    - name: collect
      debug:
        msg: "{{ out.results | map(attribute='msg') | list }}"
""", vars={"users": users}))
    assert run.rc == 0
    assert run.result("collect")["result"]["msg"] == ["alice-0", "bob-1"]
    assert "items: alice, bob" in run.out
    assert "s1" not in run.out, "the label is shown, not the whole item"


def test_with_items_flattens_and_with_dict_gives_key_value(project: Project) -> None:
    project.inventory(("h1",))
    run = project.apply(playbook("""\
    - name: items
      debug: msg="{{ item }}"
      with_items: [[a, b], c]
      register: items
    - name: dict
      debug: msg="{{ item.key }}={{ item.value }}"
      with_dict: {x: 1, y: 2}
      register: pairs
    - name: show
      debug:
        msg: "{{ items.results | map(attribute='msg') | join(',') }} {{ pairs.results | map(attribute='msg') | join(',') }}"
"""))
    assert run.result("show")["result"]["msg"] == "a,b,c x=1,y=2"


def test_when_is_checked_per_loop_item(project: Project) -> None:
    project.inventory(("h1",))
    run = project.apply(playbook("""\
    - name: even only
      copy: {content: "{{ item }}", dest: "%D%/n{{ item }}"}
      loop: [1, 2, 3, 4]
      when: item is divisibleby 2
      register: r
"""))
    assert run.rc == 0
    assert sorted(p.name for p in project.root.glob("n*")) == ["n2", "n4"]
    assert [x.get("skipped", False) for x in run.result("even only")["result"]["results"]] == [True, False, True, False]


# -- tags ----------------------------------------------------------------------------------
TAGS_PLAY = playbook("""\
    - {name: untagged, debug: msg=u}
    - {name: tagged a, debug: msg=a, tags: a}
    - {name: tagged b, debug: msg=b, tags: [b, other]}
    - {name: always, debug: msg=al, tags: always}
    - {name: never, debug: msg=n, tags: never}
    - {name: never but debug, debug: msg=nd, tags: [never, debug]}
    - block:
        - {name: in block c, debug: msg=c}
      tags: c
""")


@pytest.mark.parametrize(("args", "expected"), [
    ((), ["untagged", "tagged a", "tagged b", "always", "in block c"]),
    (("-t", "a"), ["tagged a", "always"]),
    (("-t", "a,c"), ["tagged a", "always", "in block c"]),
    (("-t", "debug"), ["always", "never but debug"]),
    (("--skip-tags", "b"), ["untagged", "tagged a", "always", "in block c"]),
    (("--skip-tags", "always"), ["untagged", "tagged a", "tagged b", "in block c"]),
    (("-t", "c", "--skip-tags", "always"), ["in block c"]),
])
def test_tags(project: Project, args: tuple[str, ...], expected: list[str]) -> None:
    project.inventory(("h1",))
    run = project.apply(TAGS_PLAY, *args)
    assert run.rc == 0
    assert run.tasks_run() == expected


# -- includes, imports, roles, facts --------------------------------------------------------
def test_include_tasks_import_tasks_and_loops(project: Project) -> None:
    project.inventory(("h1",))
    project.write("tasks/one.yml", [{"name": "in one", "debug": {"msg": "one {{ item | default('-') }}"}}])
    project.write("tasks/two.yml", [{"name": "in two", "debug": {"msg": "two {{ which }}"}}])
    run = project.apply(playbook("""\
    - import_tasks: tasks/one.yml
    - include_tasks: tasks/one.yml
    - include_tasks: "tasks/{{ which }}.yml"
    - include_tasks: tasks/one.yml
      loop: [x, y]
""", vars={"which": "two"}))
    assert run.rc == 0, run.out
    msgs = [r["result"]["msg"] for r in run.results() if r["task"] in ("in one", "in two")]
    assert msgs == ["one -", "one -", "two two", "one x", "one y"]


def test_an_include_in_a_loop_runs_its_tasks_per_item_and_registers_only_what_it_says(project: Project) -> None:
    """The included tasks travel back to the strategy as TaskResult.includes, not inside the result:
    `register` and the report see the include's own fields (msg, include, item) and nothing else."""
    project.inventory(("h1",))
    project.write("tasks/one.yml", [{"name": "in one", "debug": {"msg": "one {{ item }}"}}])
    run = project.apply(playbook("""\
    - name: include
      include_tasks: tasks/one.yml
      loop: [x, y]
      register: inc
    - name: show
      debug: {msg: "{{ inc.results | map('dict2items') | map('map', attribute='key') | map('sort') | list }}"}
"""))
    assert run.rc == 0, run.out
    assert [r["result"]["msg"] for r in run.results("in one")] == ["one x", "one y"]
    keys = ["ansible_loop_var", "changed", "failed", "include", "item", "msg"]
    assert run.result("show")["result"]["msg"] == [keys, keys]
    included = run.result("include")["result"]
    assert [{k: v for k, v in r.items() if k != "_label"} for r in included["results"]] == [
        {"changed": False, "msg": "included", "include": "tasks/one.yml", "failed": False, "item": item,
         "ansible_loop_var": "item"} for item in ("x", "y")]
    assert not [k for k in included if k.startswith("_")]


def test_include_tasks_when_decides_once_import_tasks_when_applies_to_each_task(project: Project) -> None:
    project.inventory(("h1",))
    project.write("tasks/once.yml", [{"set_fact": {"done": True}}, {"name": "second", "debug": {"msg": "2"}}])
    play = playbook("""\
    - %KIND%: tasks/once.yml
      when: done is not defined
""")
    assert "second" in project.apply(play.replace("%KIND%", "include_tasks")).tasks_run()
    assert "second" not in project.apply(play.replace("%KIND%", "import_tasks")).tasks_run()


def test_registering_a_skipped_task(project: Project) -> None:
    project.inventory(("h1",))
    run = project.apply(playbook("""\
    - name: skipped
      command: "true"
      when: false
      register: r
    - name: check
      assert: {that: [r is skipped, r is not failed, "r.stdout | default('none') == 'none'"]}
"""))
    assert run.rc == 0, run.out


def test_include_role_and_import_role_with_tasks_from_and_vars(project: Project) -> None:
    project.inventory(("h1",))
    project.write("roles/web/defaults/main.yml", {"port": 80, "greeting": "hi"})
    project.write("roles/web/tasks/main.yml", [{"name": "main", "debug": {"msg": "main {{ port }}"}}])
    project.write("roles/web/tasks/extra.yml", [{"name": "extra", "debug": {"msg": "{{ greeting }} {{ port }}"}}])
    run = project.apply(playbook("""\
    - import_role: {name: web}
    - include_role:
        name: web
        tasks_from: extra
      vars: {port: 8080}
    - import_role: {name: web, tasks_from: extra}
      vars: {greeting: hello}
"""))
    assert run.rc == 0, run.out
    assert [r["result"]["msg"] for r in run.results() if r["action"] == "debug"] == [
        "main 80", "hi 8080", "hello 80"]


def test_set_fact_and_include_vars_then_use(project: Project) -> None:
    project.inventory(("h1", "h2"))
    project.write("vars/gpu.yml", {"driver": 550})
    run = project.apply(playbook("""\
    - set_fact:
        who: "{{ inventory_hostname | upper }}"
    - include_vars: vars/gpu.yml
    - name: use
      debug: msg="{{ who }} {{ driver + 1 }}"
- hosts: h1
  gather_facts: false
  tasks:
    - name: a later play still sees them
      debug: msg="{{ who }} {{ hostvars['h2'].who }}"
"""))
    assert run.rc == 0, run.out
    assert run.result("use", "h2")["result"]["msg"] == "H2 551"
    assert run.result("a later play still sees them")["result"]["msg"] == "H1 H2"


# -- many hosts: serial, any_errors_fatal, max_fail_percentage, limit ------------------------
def test_serial_one_runs_hosts_one_batch_at_a_time(project: Project) -> None:
    run = project.apply(playbook("""\
    - {name: first, debug: msg=1}
    - {name: second, debug: msg=2}
""", serial=1))
    assert run.rc == 0
    order = [(r["host"], r["task"]) for r in run.results() if r["task"] != "Gathering Facts"]
    assert order == [(h, t) for h in HOSTS for t in ("first", "second")]


FAIL_ON_H2 = """\
    - name: h2 fails
      fail: msg=down
      when: inventory_hostname == 'h2'
    - name: next
      debug: msg=next
"""


def test_any_errors_fatal_stops_every_host(project: Project) -> None:
    run = project.apply(playbook(FAIL_ON_H2, any_errors_fatal=True))
    assert run.rc == 1
    assert run.results("next") == []
    assert "any_errors_fatal" in run.out


def test_without_any_errors_fatal_the_others_go_on(project: Project) -> None:
    run = project.apply(playbook(FAIL_ON_H2))
    assert run.rc == 1
    assert [r["host"] for r in run.results("next")] == ["h1", "h3"]
    assert run.recap("h2")["failed"] == 1 and run.recap("h1")["failed"] == 0


@pytest.mark.parametrize(("percent", "stopped"), [(50, False), (34, False), (33, True), (0, True)])
def test_max_fail_percentage(project: Project, percent: int, stopped: bool) -> None:
    """One host of three fails (33.3%): the play stops only when that exceeds the limit."""
    run = project.apply(playbook(FAIL_ON_H2, max_fail_percentage=percent))
    assert run.rc == 1
    assert [r["host"] for r in run.results("next")] == ([] if stopped else ["h1", "h3"])


def test_limit(project: Project) -> None:
    run = project.apply(playbook("    - {name: t, debug: msg=x}\n"), "-l", "h1,h3")
    assert sorted(run.report["recap"]) == ["h1", "h3"]
    assert [r["host"] for r in run.results("t")] == ["h1", "h3"]


def test_a_templated_hosts_pattern(project: Project) -> None:
    play = "- hosts: \"{{ target | default('all') }}\"\n  gather_facts: false\n  tasks: [{name: t, debug: msg=x}]\n"
    assert sorted(project.apply(play, "-e", "target=h2:h3").report["recap"]) == ["h2", "h3"]
    assert sorted(project.apply(play).report["recap"]) == list(HOSTS)


def test_extra_vars_win(project: Project) -> None:
    project.inventory({"h1": {"ansible_connection": "local", "v": "inventory"}})
    project.write("vars.yml", {"w": "file"})
    run = project.apply(playbook("""\
    - set_fact: {w: fact}
    - name: show
      debug: msg="{{ v }} {{ w }} {{ n + 1 }}"
      vars: {v: task}
""", vars={"v": "play"}), "-e", "v=cli", "-e", "@" + str(project.root / "vars.yml"), "-e", '{"n": 41}')
    assert run.result("show")["result"]["msg"] == "cli file 42"


# -- become, secrets, exit codes, unreachable -----------------------------------------------
def test_become_locally_as_root(project: Project) -> None:
    """Run as root this cannot tell whether become happened: tests/fleet/test_become_fleet.py has an
    unprivileged user become another one and reads the owners on the host."""
    import os
    if os.geteuid() != 0:
        pytest.skip("needs root: become without sudo only works when already root")
    project.inventory(("h1",))
    run = project.apply(playbook("""\
    - name: who
      command: id -u
      register: who
      changed_when: false
    - name: as root
      copy: {content: x, dest: "%D%/root-owned", owner: root, mode: "0600"}
      become: true
""", become=True))
    assert run.rc == 0, run.out
    assert run.result("who")["result"]["stdout"] == "0"
    assert (project.root / "root-owned").stat().st_uid == 0


def test_no_log_hides_the_secret_from_output_and_report(project: Project) -> None:
    project.inventory(("h1",))
    secret = "hunter2-s3cr3t"
    run = project.apply(playbook("""\
    - name: write secret
      copy: {content: "{{ token }}", dest: "%D%/token"}
      no_log: true
    - name: show secret
      debug: msg="{{ token }}"
      no_log: true
    - name: register secret
      command: echo {{ token }}
      register: out
      no_log: true
    - name: failing secret
      command: "sh -c 'echo {{ token }} >&2; exit 3'"
      no_log: true
      ignore_errors: true
""", vars={"token": secret}), "-vv", "--diff")
    assert (project.root / "token").read_text() == secret
    report_text = (project.root / "report.json").read_text()
    assert secret not in run.out
    assert secret not in report_text
    assert run.recap("h1")["ignored"] == 1


def test_exit_code_is_zero_only_when_nothing_failed(project: Project) -> None:
    project.inventory(("h1",))
    ok = project.apply(playbook("    - {command: 'true'}\n"))
    failed = project.apply(playbook("    - {command: 'false'}\n"))
    assert (ok.rc, failed.rc) == (0, 1)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_host_is_reported_and_the_others_finish(project: Project) -> None:
    project.inventory({
        "h1": {"ansible_connection": "local"},
        "down": {"ansible_connection": "ssh", "ansible_host": "127.0.0.1", "ansible_port": _closed_port()},
        "h3": {"ansible_connection": "local"},
    })
    run = project.apply(playbook("""\
    - name: work
      copy: {content: x, dest: "%D%/{{ inventory_hostname }}"}
"""), "-T", "3")
    assert run.rc == 1
    assert run.recap("down")["unreachable"] == 1
    assert run.recap("h1")["changed"] == 1 and run.recap("h3")["changed"] == 1
    assert (project.root / "h1").exists() and not (project.root / "down").exists()


def test_a_missing_templated_vars_file_fails_that_host_not_the_run(project: Project) -> None:
    project.inventory(("h1", "h2"))
    project.write("vars/h1.yml", {"v": 1})
    run = project.apply(playbook("""\
    - name: t
      debug: msg="{{ v }}"
""", vars_files=["vars/{{ inventory_hostname }}.yml"]))
    assert run.rc == 1
    assert run.result("t", "h1")["status"] == "ok"
    assert run.recap("h2")["failed"] == 1
    assert "vars file not found" in run.out
