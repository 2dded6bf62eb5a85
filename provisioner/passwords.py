"""The `password_hash` filter: SHA-crypt ($5$ sha256, $6$ sha512) as Ansible 2.19 gives it (through
passlib: 656000/535000 rounds unless `rounds=` says otherwise). The system's libcrypt computes it
when there is one (~10x faster); else a pure-Python version of the same algorithm (the `crypt`
module is gone from Python 3.13, and passlib is not a dependency)."""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import secrets
from functools import lru_cache
from typing import Any

from provisioner.errors import TaskFailed

_ALPHABET = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SCHEMES = {"sha512": ("6", "sha512"), "sha512_crypt": ("6", "sha512"),
            "sha256": ("5", "sha256"), "sha256_crypt": ("5", "sha256")}
# The byte order of the final encoding (Drepper, "Unix crypt using SHA-256 and SHA-512").
_ORDER = {
    "sha512": [(0, 21, 42), (22, 43, 1), (44, 2, 23), (3, 24, 45), (25, 46, 4), (47, 5, 26), (6, 27, 48),
               (28, 49, 7), (50, 8, 29), (9, 30, 51), (31, 52, 10), (53, 11, 32), (12, 33, 54), (34, 55, 13),
               (56, 14, 35), (15, 36, 57), (37, 58, 16), (59, 17, 38), (18, 39, 60), (40, 61, 19),
               (62, 20, 41)],
    "sha256": [(0, 10, 20), (21, 1, 11), (12, 22, 2), (3, 13, 23), (24, 4, 14), (15, 25, 5), (6, 16, 26),
               (27, 7, 17), (18, 28, 8), (9, 19, 29)],
}
DEFAULT_ROUNDS = 5000  # crypt(3)'s implicit rounds (not written into the hash)
ANSIBLE_ROUNDS = {"sha512": 656000, "sha256": 535000}  # passlib 1.7's defaults, what Ansible 2.19 uses


def _b64(b2: int, b1: int, b0: int, n: int) -> str:
    w = (b2 << 16) | (b1 << 8) | b0
    out = []
    for _ in range(n):
        out.append(_ALPHABET[w & 0x3F])
        w >>= 6
    return "".join(out)


def sha_crypt(password: bytes, salt: bytes, algo: str, rounds: int = DEFAULT_ROUNDS) -> str:
    def h(*parts: bytes) -> bytes:
        return hashlib.new(algo, b"".join(parts)).digest()

    size = hashlib.new(algo).digest_size
    salt = salt[:16]
    b = h(password, salt, password)
    a = hashlib.new(algo, password + salt)
    n = len(password)
    a.update(b * (n // size) + b[: n % size])
    i = n
    while i > 0:
        a.update(b if i & 1 else password)
        i >>= 1
    alt = a.digest()
    dp = h(password * n)
    p_seq = (dp * (n // size + 1))[:n]
    ds = h(salt * (16 + alt[0]))
    s_seq = (ds * (len(salt) // size + 1))[: len(salt)]
    for r in range(rounds):
        c = hashlib.new(algo)
        c.update(p_seq if r & 1 else alt)
        if r % 3:
            c.update(s_seq)
        if r % 7:
            c.update(p_seq)
        c.update(alt if r & 1 else p_seq)
        alt = c.digest()
    encoded = "".join(_b64(alt[x], alt[y], alt[z], 4) for x, y, z in _ORDER[algo])
    encoded += _b64(0, 0, alt[63], 2) if algo == "sha512" else _b64(0, alt[31], alt[30], 3)
    ident = "6" if algo == "sha512" else "5"
    head = f"${ident}$" + (f"rounds={rounds}$" if rounds != DEFAULT_ROUNDS else "")
    return head + salt.decode("ascii") + "$" + encoded


@lru_cache(maxsize=1)
def _libcrypt() -> Any:
    try:
        lib = ctypes.CDLL(ctypes.util.find_library("crypt") or "libcrypt.so.1")
        lib.crypt.restype = ctypes.c_char_p
        lib.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
        return lib
    except (OSError, AttributeError):
        return None


@lru_cache(maxsize=256)  # the same password and salt on every host of a run: computed once
def _hash(password: str, salt: str, algo: str, rounds: int) -> str:
    ident = "6" if algo == "sha512" else "5"
    setting = f"${ident}$" + (f"rounds={rounds}$" if rounds != DEFAULT_ROUNDS else "") + salt[:16]
    lib = _libcrypt()
    if lib is not None and "\0" not in password:
        out = lib.crypt(password.encode(), setting.encode())
        if out and out.decode().startswith(setting + "$"):
            return str(out.decode())
    return sha_crypt(password.encode(), salt.encode("ascii"), algo, rounds)


def password_hash(password: Any, hashtype: str = "sha512", salt: str | None = None, salt_size: int | None = None,
                  rounds: int | None = None, ident: str | None = None) -> str:
    """Ansible's `password_hash` for the SHA-crypt schemes; a random salt unless one is given."""
    scheme = _SCHEMES.get(str(hashtype))
    if scheme is None:
        raise TaskFailed(f"password_hash: {hashtype!r} is not supported here (supported: sha512, sha256)")
    if salt is None:
        salt = "".join(secrets.choice(_ALPHABET) for _ in range(int(salt_size or 16)))
    elif any(ch not in _ALPHABET for ch in str(salt)):
        raise TaskFailed("password_hash: the salt may hold only the characters ./0-9A-Za-z")
    return _hash(str(password), str(salt), scheme[1], int(rounds) if rounds else ANSIBLE_ROUNDS[scheme[1]])
