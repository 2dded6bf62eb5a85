"""shell: the command line runs through /bin/sh, or through `executable`, on real shells here."""

from __future__ import annotations

from tests.unit.modhelp import run_module


def test_the_default_shell_is_bin_sh() -> None:
    result = run_module("shell", cmd="echo $0")
    assert (result["rc"], result["stdout"]) == (0, "/bin/sh")


def test_executable_names_the_shell_and_is_not_exported_to_the_command() -> None:
    result = run_module("shell", cmd="echo $0 ${BASH_VERSION:+bash}; env | grep -c PROVISION_ || true",
                        executable="/bin/bash")
    assert result["rc"] == 0
    assert result["stdout"].splitlines() == ["/bin/bash bash", "0"]
