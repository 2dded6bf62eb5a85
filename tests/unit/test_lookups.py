"""Lookups run on the controller: these drive them through templates, on real files of this machine.
(tests/compat/cases/lookups.yml compares the same lookups with ansible-playbook's.)"""

from __future__ import annotations

import random
import stat
import string
from pathlib import Path
from typing import Any

import pytest

from provisioner.errors import TaskFailed
from provisioner.template import LazyVars, Templar

T = Templar()


def render(source: Any, **variables: Any) -> Any:
    return T.render(source, LazyVars([variables], T))


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A playbook dir with files/ and templates/, and a role with files of its own."""
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "a.txt").write_text("from playbook files\n")
    (tmp_path / "files" / "b.txt").write_text("b\n")
    (tmp_path / "files" / "sub").mkdir()
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "t.j2").write_text("{{ who }} in {{ where | default('lab') }}\n")
    role = tmp_path / "roles" / "r"
    (role / "files").mkdir(parents=True)
    (role / "files" / "a.txt").write_text("from role files\n")
    return tmp_path


def test_password_is_generated_stored_0600_and_reused(project: Path) -> None:
    first = render("{{ lookup('password', 'credentials/db length=24 chars=ascii_lowercase,digits') }}",
                   playbook_dir=str(project))
    stored = project / "credentials" / "db"
    assert len(first) == 24 and set(first) <= set(string.ascii_lowercase + string.digits)
    assert stored.read_text() == first + "\n"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert stat.S_IMODE(stored.parent.stat().st_mode) == 0o700
    again = render("{{ lookup('password', 'credentials/db length=24') }}", playbook_dir=str(project))
    assert again == first  # read back, whatever the options now say


def test_password_reads_a_salted_file_and_keeps_the_password_part(project: Path) -> None:
    (project / "pw").write_text("s3cret salt=abcdefgh\n")
    assert render("{{ lookup('password', 'pw') }}", playbook_dir=str(project)) == "s3cret"


def test_password_seed_gives_ansibles_value_and_dev_null_stores_nothing(project: Path) -> None:
    chars = string.ascii_letters + string.digits
    rng = random.Random("lab")  # what ansible.utils.encrypt.random_password does with a seed
    expected = "".join(rng.choice(chars) for _ in range(12))
    got = render("{{ lookup('password', '/dev/null chars=ascii_letters,digits length=12 seed=lab') }}",
                 playbook_dir=str(project))
    assert got == expected
    unseeded = {render("{{ lookup('password', '/dev/null') }}", playbook_dir=str(project)) for _ in range(3)}
    assert len(unseeded) == 3 and all(len(p) == 20 for p in unseeded)


def test_password_chars_with_a_literal_comma() -> None:
    got = render("{{ lookup('password', '/dev/null length=50 chars=digits,,') }}")
    assert set(got) <= set(string.digits + ",") and len(got) == 50


@pytest.mark.parametrize(("term", "message"), [
    ("/dev/null lenght=5", "unrecognized parameter(s) lenght"),
    ("/dev/null encrypt=sha512_crypt", "encrypt/ident are not supported"),
    ("/dev/null length=5 oops", "unrecognized value 'oops'"),
])
def test_password_refuses_what_it_does_not_do(term: str, message: str) -> None:
    with pytest.raises(TaskFailed, match=message.replace("(", r"\(").replace(")", r"\)")):
        render("{{ lookup('password', '%s') }}" % term)


def test_fileglob_searches_role_then_playbook_files_and_skips_directories(project: Path) -> None:
    in_play = render("{{ query('fileglob', '*.txt') }}", playbook_dir=str(project))
    assert sorted(Path(p).name for p in in_play) == ["a.txt", "b.txt"]
    in_role = render("{{ query('fileglob', '*.txt') }}", playbook_dir=str(project),
                     role_path=str(project / "roles" / "r"))
    assert in_role == [str(project / "roles" / "r" / "files" / "a.txt")]  # the first dir that matches wins
    assert render("{{ query('fileglob', '*') | map('basename') | sort | list }}",
                  playbook_dir=str(project / "files")) == ["a.txt", "b.txt"]  # not sub/
    assert render("{{ lookup('fileglob', '/nonexistent/*.x') }}") == []


def test_file_and_template_search_their_dirs(project: Path) -> None:
    assert render("{{ lookup('file', 'a.txt') }}", playbook_dir=str(project)) == "from playbook files"
    assert render("{{ lookup('file', 'a.txt') }}", playbook_dir=str(project),
                  role_path=str(project / "roles" / "r")) == "from role files"
    assert render("{{ lookup('template', 't.j2') }}", playbook_dir=str(project), who="ann") == "ann in lab\n"
    assert render("{{ lookup('template', 't.j2', template_vars={'where': 'B12'}) }}",
                  playbook_dir=str(project), who="ann") == "ann in B12\n"
    with pytest.raises(TaskFailed, match=r"could not find 'nope\.j2'"):
        render("{{ lookup('template', 'nope.j2') }}", playbook_dir=str(project))


def test_lines_vars_dict_and_the_lookup_shapes(project: Path) -> None:
    assert render("{{ query('lines', 'printf \"a\\nb\\n\"') }}", playbook_dir=str(project)) == ["a", "b"]
    assert render("{{ lookup('lines', 'printf \"a\\nb\\n\"') }}", playbook_dir=str(project)) == "a,b"
    assert render("{{ lookup('lines', 'pwd') }}", playbook_dir=str(project)) == str(project)
    with pytest.raises(TaskFailed, match="returned 3"):
        render("{{ lookup('lines', 'exit 3') }}")
    assert render("{{ lookup('vars', 'x') }}", x="{{ y }}", y=5) == 5  # rendered when read
    assert render("{{ lookup('vars', 'nope', default='d') }}") == "d"
    with pytest.raises(TaskFailed, match="no variable named 'nope'"):
        render("{{ lookup('vars', 'nope') }}")
    assert render("{{ query('dict', {'a': 1}) }}") == [{"key": "a", "value": 1}]
    assert render("{{ lookup('dict', {'a': 1, 'b': 2}) }}") == [{"key": "a", "value": 1}, {"key": "b", "value": 2}]
    assert render("{{ lookup('items', []) }}") == []


def test_unknown_lookup_names_the_close_ones() -> None:
    with pytest.raises(TaskFailed, match=r"unknown lookup plugin 'filglob' \(did you mean 'fileglob'\?\)"):
        render("{{ lookup('filglob', '*') }}")
    assert render("{{ lookup('file', '/nonexistent', errors='ignore') }}") is None


def test_product_filter() -> None:
    assert render("{{ [1, 2] | product(['a']) | list }}") == [[1, "a"], [2, "a"]]
    assert render("{{ 'ab' | product(repeat=2) | map('join') | list }}") == ["aa", "ab", "ba", "bb"]


def _glibc_crypt(password: str, setting: str) -> str:
    import ctypes
    import ctypes.util
    lib = ctypes.CDLL(ctypes.util.find_library("crypt") or "libcrypt.so.1")
    lib.crypt.restype = ctypes.c_char_p
    lib.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
    return lib.crypt(password.encode(), setting.encode()).decode()


@pytest.mark.parametrize(("password", "hashtype", "salt", "rounds", "setting"), [
    ("secret", "sha512", "mysalt", 5000, "$6$mysalt"),
    ("", "sha512_crypt", "abc", 5000, "$6$abc"),
    ("x" * 100, "sha256", "saltsaltsaltsalt", 5000, "$5$saltsaltsaltsalt"),
    ("pw", "sha512", "ab", 1000, "$6$rounds=1000$ab"),
    ("hello world", "sha256_crypt", "0123456789abcdef", 7000, "$5$rounds=7000$0123456789abcdef"),
])
def test_password_hash_is_glibcs_sha_crypt(password: str, hashtype: str, salt: str, rounds: int,
                                           setting: str) -> None:
    from provisioner.passwords import sha_crypt
    got = render("{{ pw | password_hash('%s', '%s', rounds=%d) }}" % (hashtype, salt, rounds), pw=password)
    assert got == _glibc_crypt(password, setting)
    # the pure-Python fallback (no libcrypt) gives the same
    assert sha_crypt(password.encode(), salt.encode(), hashtype.split("_")[0], rounds) == got


def test_password_hash_default_rounds_are_ansibles() -> None:
    # what ansible-core 2.19 + passlib 1.7.4 gives (tests/compat/cases/lookups.yml compares it too)
    assert render("{{ 'secret' | password_hash('sha512', 'mysalt') }}") == (
        "$6$rounds=656000$mysalt$cDA0t8lm/qt.LT6DzpoHxJ.NwTpx.WTkOPwhseSva8pRixDSH2./ffedCjAMbTX1Uo1QNT7jJPJ6FIzU2i59K/")


def test_password_hash_random_salt_and_refusals() -> None:
    a, b = render("{{ 'x' | password_hash('sha512') }}"), render("{{ 'x' | password_hash('sha512') }}")
    assert a != b and a.startswith("$6$rounds=656000$") and len(a.split("$")[3]) == 16
    assert _glibc_crypt("x", a) == a  # verifies with the system's crypt(3)
    with pytest.raises(TaskFailed, match="'md5' is not supported"):
        render("{{ 'x' | password_hash('md5') }}")
    with pytest.raises(TaskFailed, match="salt may hold only"):
        render("{{ 'x' | password_hash('sha512', 'bad salt!') }}")
