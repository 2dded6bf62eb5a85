"""Ansible Vault, as a lab admin uses it: files and `!vault` strings made by the real
ansible-vault are read here, files made here are read by ansible-vault, and a decrypted
value never shows in the output or the report.

Runs on this machine: local hosts (`ansible_connection: local`) and the real ansible-core
2.19 from a cached venv (tests/ansible_core.py).
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from provisioner import vault
from provisioner.cli import main
from tests.ansible_core import ansible_bin
from tests.unit.test_executor_local import Project, playbook

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "tok-7f3a9c-wolfram"
BECOME = "Corr3ct-Horse-Battery"


@pytest.fixture
def project(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Project:
    p = Project(tmp_path, capsys)
    p.inventory(("h1",))
    return p


@pytest.fixture
def pwfile(tmp_path: Path) -> Path:
    path = tmp_path / "vault-pass.txt"
    path.write_text("open sesame\n")
    return path


def ansible_vault(*args: str, stdin: str | None = None, cwd: Path | None = None) -> str:
    proc = subprocess.run([str(ansible_bin("ansible-vault")), *args], input=stdin, capture_output=True,
                          text=True, cwd=cwd, check=False, env={**os.environ, "ANSIBLE_NOCOLOR": "1"})
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def provision(*args: str, stdin: str | None = None, env: dict[str, str] | None = None,
              cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The CLI as a user runs it: a new process, no controlling terminal (a prompt reads stdin)."""
    return subprocess.run([sys.executable, "-m", "provisioner.cli", *args], input=stdin, capture_output=True,
                          text=True, cwd=cwd, check=False, start_new_session=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})})


# -- the format ----------------------------------------------------------------------------------
def test_format_round_trip_and_wrong_password() -> None:
    for label in (None, "prod"):
        text = vault.encrypt(b"gpu: h100\n", b"pw", label)
        header = text.splitlines()[0]
        assert header == ("$ANSIBLE_VAULT;1.2;AES256;prod" if label else "$ANSIBLE_VAULT;1.1;AES256")
        assert all(len(line) <= 80 for line in text.splitlines())
        envelope = vault.parse(text)
        assert envelope.label == label and len(envelope.salt) == 32 and len(envelope.mac) == 32
        assert vault.decrypt_with(envelope, b"pw") == b"gpu: h100\n"
        assert vault.decrypt_with(envelope, b"wrong") is None
    with pytest.raises(ValueError, match="damaged"):
        vault.parse("$ANSIBLE_VAULT;1.1;AES256\nzz12\n")
    with pytest.raises(ValueError, match="not supported"):
        vault.parse("$ANSIBLE_VAULT;1.0;AES\n3132\n")


# -- interop: ansible-vault → provision ----------------------------------------------------------------
def test_files_and_strings_from_ansible_vault_are_read_in_a_run(project: Project, pwfile: Path,
                                                                 tmp_path: Path) -> None:
    labpw = tmp_path / "lab-pass.txt"
    labpw.write_text("lab password\n")
    # a 1.1 vars_files file, a 1.2 (vault-id) group_vars file, an inline !vault in host_vars/h1/
    project.write("secrets.yml", f"api_token: {TOKEN}\n")
    ansible_vault("encrypt", "--vault-password-file", str(pwfile), str(tmp_path / "secrets.yml"))
    project.write("group_vars/all.yml", "lab_secret: from-group-vars-1234\n")
    ansible_vault("encrypt", "--vault-id", f"lab@{labpw}", str(tmp_path / "group_vars/all.yml"))
    assert (tmp_path / "group_vars/all.yml").read_text().startswith("$ANSIBLE_VAULT;1.2;AES256;lab\n")
    inline = ansible_vault("encrypt_string", "--vault-password-file", str(pwfile), "--name", "host_pin",
                           "pin-from-host-vars")
    project.write("host_vars/h1/vault.yml", "plain: yes-plain\n" + inline)
    run = project.apply(playbook(f"""\
    - copy: {{content: "{{{{ api_token }}}} {{{{ lab_secret }}}} {{{{ host_pin }}}} {{{{ plain }}}}\\n",
             dest: "{tmp_path}/out.txt"}}
""", vars_files=["secrets.yml"]), "--vault-password-file", str(pwfile), "--vault-id", f"lab@{labpw}")
    assert run.rc == 0, run.out
    assert (tmp_path / "out.txt").read_text() == f"{TOKEN} from-group-vars-1234 pin-from-host-vars yes-plain\n"
    out = provision("vault", "view", "--vault-id", f"lab@{labpw}", str(tmp_path / "group_vars/all.yml"))
    assert out.returncode == 0 and out.stdout == "lab_secret: from-group-vars-1234\n"


def test_include_vars_reads_a_file_from_ansible_vault(project: Project, pwfile: Path, tmp_path: Path) -> None:
    project.write("vars/creds.yml", f"db_password: {TOKEN}\n")
    ansible_vault("encrypt", "--vault-password-file", str(pwfile), str(tmp_path / "vars/creds.yml"))
    run = project.apply(playbook(f"""\
    - include_vars: creds.yml
    - copy: {{content: "{{{{ db_password }}}}", dest: "{tmp_path}/db.txt"}}
"""), "--vault-password-file", str(pwfile), "-vv")
    assert run.rc == 0, run.out
    assert (tmp_path / "db.txt").read_text() == TOKEN
    assert TOKEN not in run.out and TOKEN not in str(run.report)
    assert run.result("include_vars")["result"]["censored"]


# -- interop: provision → ansible-vault ----------------------------------------------------------------
def test_files_and_strings_made_here_are_read_by_ansible_vault(pwfile: Path, tmp_path: Path) -> None:
    plain = tmp_path / "a.yml"
    plain.write_text("a: 1\nsecret: s3cr3t\n")
    plain.chmod(0o640)
    done = provision("vault", "encrypt", "--vault-password-file", str(pwfile), str(plain))
    assert done.returncode == 0, done.stderr
    assert plain.read_text().startswith("$ANSIBLE_VAULT;1.1;AES256\n")
    assert stat.S_IMODE(plain.stat().st_mode) == 0o640  # in place, mode kept
    assert ansible_vault("view", "--vault-password-file", str(pwfile), str(plain)) == "a: 1\nsecret: s3cr3t\n"

    labelled = tmp_path / "b.yml"
    labelled.write_text("b: 2\n")
    out = tmp_path / "b.vault"
    done = provision("vault", "encrypt", "--vault-id", f"prod@{pwfile}", str(labelled), "--output", str(out))
    assert done.returncode == 0, done.stderr
    assert labelled.read_text() == "b: 2\n" and out.read_text().startswith("$ANSIBLE_VAULT;1.2;AES256;prod\n")
    assert ansible_vault("view", "--vault-id", f"prod@{pwfile}", str(out)) == "b: 2\n"
    assert provision("vault", "decrypt", "--vault-id", f"prod@{pwfile}", str(out)).returncode == 0
    assert out.read_text() == "b: 2\n"

    # encrypt_string, with --name: a variable ansible itself reads back
    block = provision("vault", "encrypt_string", "--vault-id", f"prod@{pwfile}", "--name", "tok", TOKEN)
    assert block.returncode == 0, block.stderr
    assert block.stdout.startswith("tok: !vault |\n          $ANSIBLE_VAULT;1.2;AES256;prod\n")
    (tmp_path / "vars.yml").write_text(block.stdout)
    proc = subprocess.run([str(ansible_bin("ansible")), "localhost", "-m", "debug", "-a", "var=tok",
                           "-e", f"@{tmp_path / 'vars.yml'}", "--vault-id", f"prod@{pwfile}"],
                          capture_output=True, text=True, check=False,
                          env={**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_LOCALHOST_WARNING": "0"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f'"tok": "{TOKEN}"' in proc.stdout


# -- passwords ------------------------------------------------------------------------------------
def test_password_sources_script_client_prompt_and_environment(project: Project, tmp_path: Path) -> None:
    project.write("secrets.yml", vault.encrypt(f"t: {TOKEN}\n".encode(), b"from-script", "ci"))
    view = ["vault", "view", str(tmp_path / "secrets.yml")]
    script = tmp_path / "pass.sh"
    script.write_text("#!/bin/sh\necho from-script\n")
    script.chmod(0o755)
    assert provision(*view, "--vault-password-file", str(script)).stdout == f"t: {TOKEN}\n"
    # a `-client` script is asked for the label, as Ansible asks it
    client = tmp_path / "keyring-client"
    client.write_text('#!/bin/sh\n[ "$1" = --vault-id ] && [ "$2" = ci ] && echo from-script\n')
    client.chmod(0o755)
    assert provision(*view, "--vault-id", f"ci@{client}").stdout == f"t: {TOKEN}\n"
    # several ids: the file's own label is tried whatever the order
    other = tmp_path / "other.txt"
    other.write_text("not it\n")
    assert provision(*view, "--vault-id", f"x@{other}", "--vault-id", f"ci@{script}").returncode == 0
    # a prompt (no terminal: the password is read from stdin)
    assert provision(*view, "--ask-vault-pass", stdin="from-script\n").stdout == f"t: {TOKEN}\n"
    assert provision(*view, "--vault-id", "ci@prompt", stdin="from-script\n").returncode == 0
    # the environment, ours and Ansible's name for it
    for var in ("PROVISION_VAULT_PASSWORD_FILE", "ANSIBLE_VAULT_PASSWORD_FILE"):
        assert provision(*view, env={var: str(script)}).stdout == f"t: {TOKEN}\n"


# -- safety -----------------------------------------------------------------------------------------
def test_wrong_or_missing_password_is_one_line_exit_2_and_no_host_touched(project: Project, pwfile: Path,
                                                                          tmp_path: Path) -> None:
    marker = tmp_path / "touched"
    project.write("group_vars/all.yml", vault.encrypt(b"x: 1\n", b"the right one"))
    site = project.write("site.yml", playbook(f"    - file: {{path: {marker}, state: touch}}\n"))
    inv = str(tmp_path / "inventory.yml")
    for extra in (["--vault-password-file", str(pwfile)], []):
        done = provision("apply", str(site), "-i", inv, *extra)
        assert done.returncode == 2
        assert done.stdout == ""
        [line] = done.stderr.splitlines()
        assert "group_vars/all.yml:1:1" in line
        assert ("no vault password given decrypts this" if extra else "no vault password was given") in line
        assert not marker.exists()
    # an include_vars file that cannot be decrypted is caught before any host too
    (tmp_path / "group_vars/all.yml").unlink()
    project.write("vars/creds.yml", vault.encrypt(b"x: 1\n", b"the right one"))
    site = project.write("site.yml", playbook(f"    - file: {{path: {marker}, state: touch}}\n"
                                              "    - include_vars: creds.yml\n"))
    done = provision("apply", str(site), "-i", inv, "--vault-password-file", str(pwfile))
    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1 and "vars/creds.yml" in done.stderr
    assert not marker.exists()


def test_decrypted_values_never_show_in_output_or_report(project: Project, pwfile: Path, tmp_path: Path) -> None:
    """debug, registered results, set_fact, template + --diff, a failing command: the token is
    censored in stdout at -vvv and in the report; it is written only where the play writes it."""
    project.write("vault.yml", vault.encrypt(f"api_token: {TOKEN}\n".encode(), b"open sesame"))
    project.write("templates/token.j2", "token={{ api_token }}\n")
    run = project.apply(playbook(f"""\
    - name: show it
      debug: var=api_token
    - name: echo it
      command: echo {{{{ api_token }}}}
      register: echoed
    - name: copy of it
      set_fact: {{again: "{{{{ api_token }}}}"}}
    - name: show the copies
      debug: msg="{{{{ echoed.stdout }}}} {{{{ again }}}}"
    - name: write it (the play's intent)
      template: {{src: token.j2, dest: "{tmp_path}/token.conf"}}
    - name: fail with it
      shell: echo "{{{{ api_token }}}}" >&2; exit 3
      ignore_errors: true
    - name: ordinary task
      debug: msg=plain-output
    - name: "a name that shows {{{{ api_token }}}}"
      debug: msg=named
""", vars_files=["vault.yml"]), "--vault-password-file", str(pwfile), "-vvv", "--diff")
    assert run.rc == 0, run.out
    assert (tmp_path / "token.conf").read_text() == f"token={TOKEN}\n"
    assert TOKEN not in run.out
    report = (tmp_path / "report.json").read_text()
    assert TOKEN not in report
    for task in ("show it", "echo it", "copy of it", "show the copies", "write it (the play's intent)",
                 "fail with it"):
        assert "censored" in run.result(task)["result"], task
    assert run.result("fail with it")["status"] == "failed"
    assert run.result("ordinary task")["result"]["msg"] == "plain-output"  # the rest stays readable
    assert "plain-output" in run.out
    assert "TASK [a name that shows ********]" in run.out  # no task result to censor: the text is redacted


def test_become_password_from_a_vault_does_not_hide_the_task(project: Project, pwfile: Path) -> None:
    """Reading the become password feeds sudo only: the task's own result stays visible."""
    project.write("group_vars/all.yml", vault.encrypt(f"ansible_become_password: {BECOME}\n".encode(),
                                                      b"open sesame"))
    run = project.apply(playbook("""\
    - name: visible
      debug: msg=still-visible
      become: false
"""), "--vault-password-file", str(pwfile), "-vv")
    assert run.rc == 0, run.out
    assert run.result("visible")["result"]["msg"] == "still-visible"
    assert BECOME not in run.out


def test_inline_vault_in_inventory_and_playbook(project: Project, pwfile: Path, tmp_path: Path) -> None:
    block = vault.encrypt_string_block(TOKEN, b"open sesame", None, None)
    indented = "".join("        " + line + "\n" for line in block.splitlines())
    project.write("inventory.yml", "all:\n  hosts:\n    h1:\n      ansible_connection: local\n"
                  "      inv_token: " + indented.lstrip())
    play = playbook(f"""\
    - copy: {{content: "{{{{ inv_token }}}}|{{{{ play_token }}}}", dest: "{tmp_path}/both.txt"}}
""").replace("  tasks:\n", "  vars:\n    play_token: " + indented.lstrip() + "  tasks:\n")
    run = project.apply(play, "--vault-password-file", str(pwfile), "-vv")
    assert run.rc == 0, run.out
    assert (tmp_path / "both.txt").read_text() == f"{TOKEN}|{TOKEN}"
    assert TOKEN not in run.out


def test_vault_commands_refuse_what_they_cannot_do(pwfile: Path, tmp_path: Path) -> None:
    f = tmp_path / "x.yml"
    f.write_text("x: 1\n")
    assert main(["vault", "decrypt", "--vault-password-file", str(pwfile), str(f)]) == 2
    assert main(["vault", "encrypt", str(f)]) == 2  # no password
    assert main(["vault", "encrypt", "--vault-password-file", str(pwfile), str(f)]) == 0
    assert main(["vault", "encrypt", "--vault-password-file", str(pwfile), str(f)]) == 2  # already
    assert main(["vault", "encrypt_string", "--vault-id", f"a@{pwfile}", "--vault-id", f"b@{pwfile}", "s"]) == 2


def test_short_secrets_are_hidden_by_no_log_however_they_are_read(project: Project, pwfile: Path) -> None:
    """A 3-character PIN is too short to be replaced inside text; the tasks that read it, directly,
    through hostvars or inside a mapping, are no_log instead."""
    pin = vault.encrypt_string_block("7x9", b"open sesame", None, None)
    project.write("vars.yml", "creds:\n  user: bob\n  pin: " + "".join(
        "    " + line + "\n" for line in pin.splitlines()).lstrip())
    run = project.apply(playbook("""\
    - name: direct
      debug: msg="pin {{ creds.pin }}"
    - name: through hostvars
      debug: msg="pin {{ hostvars[inventory_hostname].creds.pin }}"
    - name: the mapping
      debug: msg="{{ hostvars[inventory_hostname].creds }}"
    - name: unrelated
      debug: msg="pin-free"
""", vars_files=["vars.yml"]), "--vault-password-file", str(pwfile), "-vv")
    assert run.rc == 0, run.out
    assert "7x9" not in run.out and "7x9" not in str(run.report)
    for task in ("direct", "through hostvars", "the mapping"):
        assert "censored" in run.result(task)["result"], task
    assert run.result("unrelated")["result"]["msg"] == "pin-free"


def test_a_vault_value_written_in_the_task_itself_makes_it_no_log(project: Project, pwfile: Path,
                                                                   tmp_path: Path) -> None:
    block = vault.encrypt_string_block("s3", b"open sesame", None, None)
    value = "".join("          " + line + "\n" for line in block.splitlines()).lstrip()
    run = project.apply(playbook(f"""\
    - name: inline
      copy:
        dest: {tmp_path}/inline.txt
        content: {value}    - name: after
      debug: msg=visible
"""), "--vault-password-file", str(pwfile), "-vv", "--diff")
    assert run.rc == 0, run.out
    assert (tmp_path / "inline.txt").read_text() == "s3"
    assert "censored" in run.result("inline")["result"] and "+s3" not in run.out
    assert run.result("after")["result"]["msg"] == "visible"
