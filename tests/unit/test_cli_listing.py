"""ansible-playbook's listing options on `provision apply`: --list-hosts, --list-tasks, --list-tags,
--syntax-check (list or check, run nothing) and --start-at-task (run from the first matching task).

The expected listings are ansible-playbook 2.19.14's output for the same playbook and inventory
(run once by hand, with the hosts in our inventory's order: Ansible orders a group's hosts its own way).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from provisioner.cli import main

ROLE_TASKS = """\
- name: role task one
  copy: {content: "r1\\n", dest: "%D%/ran/role_task_one"}
  tags: [rt]
- block:
    - name: in block
      copy: {content: "b\\n", dest: "%D%/ran/in_block"}
      tags: [bt]
  tags: [blk]
"""

SITE = """\
- name: First play
  hosts: all
  gather_facts: false
  tags: [playtag]
  pre_tasks:
    - name: pre one
      copy: {content: "p\\n", dest: "%D%/ran/pre_one"}
      tags: [always]
  roles:
    - role: r1
      tags: [roletag]
  tasks:
    - name: plain task
      copy: {content: "x\\n", dest: "%D%/ran/plain_task"}
    - debug: msg=unnamed
      tags: [t1, t2]
  post_tasks:
    - name: post one
      copy: {content: "x\\n", dest: "%D%/ran/post_one"}
  handlers:
    - name: h1
      debug: msg=h
- hosts: web:db
  gather_facts: false
  tasks:
    - name: second play task
      copy: {content: "y\\n", dest: "%D%/ran/second_play_task"}
      tags: never
- name: Third play
  hosts: localhost
  gather_facts: false
  tasks:
    - name: third play task
      copy: {content: "y\\n", dest: "%D%/ran/third_play_task"}
"""

INVENTORY = """\
all:
  hosts:
    localhost: {ansible_connection: local}
  children:
    web:
      hosts:
        w1: {ansible_host: 127.0.0.1, ansible_port: 1}   # nothing listens: contacting it would fail
        w2: {ansible_host: 127.0.0.1, ansible_port: 1}
    db:
      hosts:
        d1: {ansible_host: 127.0.0.1, ansible_port: 1}
"""


class Lab:
    def __init__(self, root: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.root, self.capsys = root, capsys
        for name, text in (("roles/r1/tasks/main.yml", ROLE_TASKS), ("site.yml", SITE), ("inv.yml", INVENTORY)):
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text.replace("%D%", str(root)))
        (root / "ran").mkdir()  # each task that runs writes its file here

    def run(self, *args: str) -> tuple[int, str, str]:
        rc = main(["apply", str(self.root / "site.yml"), "-i", str(self.root / "inv.yml"), *args])
        out, err = self.capsys.readouterr()
        assert "Traceback" not in out + err
        return rc, out.replace(str(self.root), "LAB"), err

    def ran(self) -> set[str]:
        return {p.name for p in (self.root / "ran").iterdir()}


@pytest.fixture
def lab(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Lab:
    return Lab(tmp_path, capsys)


LIST_TASKS = """
playbook: LAB/site.yml

  play #1 (all): First play\tTAGS: [playtag]
    tasks:
      pre one\tTAGS: [always, playtag]
      r1 : role task one\tTAGS: [playtag, roletag, rt]
      r1 : in block\tTAGS: [blk, bt, playtag, roletag]
      plain task\tTAGS: [playtag]
      debug\tTAGS: [playtag, t1, t2]
      post one\tTAGS: [playtag]

  play #2 (web:db): web:db\tTAGS: []
    tasks:

  play #3 (localhost): Third play\tTAGS: []
    tasks:
      third play task\tTAGS: []
"""


def test_list_tasks_shows_each_play_s_tasks_with_inherited_tags_and_runs_nothing(lab: Lab) -> None:
    rc, out, _ = lab.run("--list-tasks")
    assert (rc, out) == (0, LIST_TASKS)
    assert lab.ran() == set()


def test_list_tasks_lists_only_what_tags_select(lab: Lab) -> None:
    rc, out, _ = lab.run("--list-tasks", "-t", "rt")
    assert rc == 0
    tasks = [line.strip() for line in out.splitlines() if "\tTAGS" in line and "play #" not in line]
    assert tasks == ["pre one\tTAGS: [always, playtag]", "r1 : role task one\tTAGS: [playtag, roletag, rt]"]
    rc, out, _ = lab.run("--list-tasks", "-t", "never")
    assert "second play task\tTAGS: [never]" in out


LIST_HOSTS = """
playbook: LAB/site.yml

  play #1 (all): First play\tTAGS: [playtag]
    pattern: ['all']
    hosts (4):
      localhost
      w1
      w2
      d1

  play #2 (web:db): web:db\tTAGS: []
    pattern: ['web:db']
    hosts (3):
      w1
      w2
      d1

  play #3 (localhost): Third play\tTAGS: []
    pattern: ['localhost']
    hosts (1):
      localhost
"""


def test_list_hosts_shows_each_play_s_pattern_and_hosts_without_contacting_them(lab: Lab) -> None:
    rc, out, _ = lab.run("--list-hosts")
    assert (rc, out) == (0, LIST_HOSTS)  # w1, w2, d1 have nothing listening: none was contacted
    rc, out, _ = lab.run("--list-hosts", "-l", "w*")
    assert rc == 0
    assert "    hosts (2):\n      w1\n      w2\n\n  play #2" in out
    assert out.endswith("  play #3 (localhost): Third play\tTAGS: []\n    pattern: ['localhost']\n    hosts (0):\n")


def test_list_tags_shows_each_play_s_task_tags(lab: Lab) -> None:
    rc, out, _ = lab.run("--list-tags")
    assert rc == 0
    assert [line for line in out.splitlines() if "TASK TAGS" in line] == [
        "      TASK TAGS: [always, blk, bt, playtag, roletag, rt, t1, t2]",
        "      TASK TAGS: [never]",       # as Ansible: without -t/--skip-tags, every task's tags
        "      TASK TAGS: []",
    ]
    rc, out, _ = lab.run("--list-tags", "-t", "rt")
    assert "TASK TAGS: [always, playtag, roletag, rt]" in out
    rc, out, _ = lab.run("--list-tags", "--skip-tags", "t1")
    assert [line.strip() for line in out.splitlines() if "TASK TAGS" in line] == [
        "TASK TAGS: [always, blk, bt, playtag, roletag, rt]", "TASK TAGS: []", "TASK TAGS: []"]


def test_listing_options_combine_in_ansible_s_order(lab: Lab) -> None:
    rc, out, _ = lab.run("--list-hosts", "--list-tasks", "--list-tags", "-l", "localhost")
    assert rc == 0
    first_play = out.split("\n\n")[1]
    assert first_play.splitlines() == [
        "  play #1 (all): First play\tTAGS: [playtag]", "    pattern: ['all']", "    hosts (1):", "      localhost",
        "    tasks:", "      pre one\tTAGS: [always, playtag]", "      r1 : role task one\tTAGS: [playtag, roletag, rt]",
        "      r1 : in block\tTAGS: [blk, bt, playtag, roletag]", "      plain task\tTAGS: [playtag]",
        "      debug\tTAGS: [playtag, t1, t2]", "      post one\tTAGS: [playtag]",
        "      TASK TAGS: [always, blk, bt, playtag, roletag, rt, t1, t2]"]


def test_syntax_check_validates_like_provision_check_and_touches_nothing(lab: Lab) -> None:
    rc, out, _ = lab.run("--syntax-check")
    assert (rc, out) == (0, "LAB/site.yml: ok (3 play(s))\n")
    assert lab.ran() == set()
    (lab.root / "site.yml").write_text("- hosts: all\n  taks: []\n")
    rc, out, err = lab.run("--syntax-check")
    assert rc == 2 and out == ""
    assert err.splitlines() == [f"error: {lab.root}/site.yml:2:3: unknown play keyword 'taks' "
                                "(did you mean 'tasks'?)"]


def test_start_at_task_runs_from_the_first_matching_task_on(lab: Lab) -> None:
    rc, out, _ = lab.run("--start-at-task", "plain task", "-l", "localhost")
    assert rc == 0
    # earlier tasks (even `always` ones) are skipped; later ones and later plays run
    assert lab.ran() == {"plain_task", "post_one", "third_play_task"}
    assert "TASK [pre one]" not in out and "TASK [plain task]" in out


def test_start_at_task_matches_a_pattern_a_role_task_and_a_task_inside_a_block(lab: Lab) -> None:
    lab.run("--start-at-task", "r1 : in bl*", "-l", "localhost")
    assert lab.ran() == {"in_block", "plain_task", "post_one", "third_play_task"}
    for p in (lab.root / "ran").iterdir():
        p.unlink()
    lab.run("--start-at-task", "role task one", "-l", "localhost")  # the name without the role prefix
    assert lab.ran() == {"role_task_one", "in_block", "plain_task", "post_one", "third_play_task"}


def test_start_at_task_in_a_later_play_drops_the_plays_before_it(lab: Lab) -> None:
    rc, out, _ = lab.run("--start-at-task", "third*", "-l", "localhost")
    assert rc == 0
    assert lab.ran() == {"third_play_task"}
    assert "First play" not in out


def test_start_at_task_considers_only_the_tasks_tags_select(lab: Lab) -> None:
    # `plain task` is not tagged rt: the first match among the selected tasks is none, so an error
    rc, _, err = lab.run("--start-at-task", "plain task", "-t", "rt", "-l", "localhost")
    assert rc == 2 and "no task of the playbook has that name" in err
    assert lab.ran() == set()
    lab.run("--start-at-task", "*task*", "-t", "playtag", "-l", "localhost")
    assert lab.ran() == {"role_task_one", "in_block", "plain_task", "post_one"}


def test_start_at_task_without_a_match_is_one_line_exit_2_and_nothing_runs(lab: Lab) -> None:
    rc, out, err = lab.run("--start-at-task", "no such task", "-l", "localhost")
    assert rc == 2 and out == ""
    assert err.splitlines() == ["error: --start-at-task 'no such task': no task of the playbook has that name "
                                "(a name or a pattern such as 'Install*'; tasks of an include_tasks with a "
                                "loop or `when` are not searched)"]
    assert lab.ran() == set()


def test_list_tasks_sees_into_includes_read_ahead_and_lists_a_looped_include_as_one_task(lab: Lab) -> None:
    (lab.root / "inc.yml").write_text("- name: included one\n  debug: msg=i\n")
    (lab.root / "site.yml").write_text("""\
- hosts: localhost
  gather_facts: false
  tasks:
    - name: inc loop
      include_tasks: inc.yml
      loop: [1, 2]
    - import_tasks: inc.yml
    - include_role: {name: r1}
      tags: [viarole]
""")
    rc, out, _ = lab.run("--list-tasks")
    assert rc == 0
    assert [line.strip() for line in out.splitlines()[5:]] == [
        "inc loop\tTAGS: []", "included one\tTAGS: []", "r1 : role task one\tTAGS: [rt, viarole]",
        "r1 : in block\tTAGS: [blk, bt, viarole]"]
