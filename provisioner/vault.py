"""Ansible Vault, interoperable: the 1.1 and 1.2 (vault-id) formats, the passwords, and the
rule that decrypted values are secret.

The format, as Ansible documents it: a header line `$ANSIBLE_VAULT;1.1;AES256` (1.2 adds
`;LABEL`), then the hexlified text of three lines: hex(salt), hex(HMAC), hex(ciphertext),
wrapped at 80 characters. From the password and a 32-byte random salt, PBKDF2-HMAC-SHA256
(10000 iterations) derives 80 bytes: an AES-256 key, an HMAC-SHA256 key and a 16-byte
counter; the PKCS#7-padded plaintext is encrypted with AES-256-CTR and the ciphertext
authenticated with HMAC-SHA256.

Decryption happens on the controller only. Every decrypted value is recorded in the run's
keyring, and everything that leaves the process (live lines, error lines, the JSON report)
passes `redact()`; tasks that read a vaulted variable are no_log (see template.LazyVars).
The keyring is installed once by the command line, before anything is loaded, because the
YAML loader (inventory, playbook, vars files, include_vars) reads vaulted text from many
places; it is read-only afterwards apart from the set of secrets seen.
"""

from __future__ import annotations

import binascii
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provisioner.errors import Position, UserError
from provisioner.load.yamlsrc import UnsafeStr, YList, YMap

HEADER = "$ANSIBLE_VAULT"
DEFAULT_ID = "default"
_ITERATIONS = 10000
_KEY_LEN = 32
_IV_LEN = 16
_LINE = 80
REDACTED = "********"
# A decrypted value shorter than this is not replaced inside other text ("yes", "22" would
# blank out half the output); tasks that read it are still no_log.
MIN_REDACT_LEN = 4


class VaultError(UserError):
    """Vaulted data that cannot be read: no password, a wrong password, a damaged envelope."""


class Secret:
    """Marks a value that came out of a vault (a str, a mapping or a list of them). A YAML mapping or
    list that holds one at any depth says so with the same `holds_secret` attribute."""

    holds_secret = True


class SecretStr(str, Secret):
    pass


class SecretDict(YMap, Secret):
    holds_secret = True


class SecretList(YList, Secret):
    holds_secret = True


# -- the format ------------------------------------------------------------------------------
def is_vaulted(text: str | bytes) -> bool:
    head = text.lstrip()[:len(HEADER)]
    return (head.decode("ascii", "replace") if isinstance(head, bytes) else head) == HEADER


@dataclass(frozen=True)
class Envelope:
    """A parsed vault text: its version, label (1.2 only) and the three binary parts."""

    version: str
    label: str | None
    salt: bytes
    mac: bytes
    ciphertext: bytes


def parse(vaulttext: str) -> Envelope:
    lines = [ln.strip() for ln in vaulttext.strip().splitlines() if ln.strip()]
    if not lines:
        raise ValueError("empty vault text")
    fields = lines[0].split(";")
    if fields[0] != HEADER or len(fields) < 3:
        raise ValueError("not a vault text (no $ANSIBLE_VAULT header)")
    version, cipher = fields[1], fields[2]
    if version not in ("1.1", "1.2"):
        raise ValueError(f"vault format {version} is not supported (1.1 and 1.2 are)")
    if cipher != "AES256":
        raise ValueError(f"vault cipher {cipher} is not supported (AES256 is)")
    label = fields[3] if version == "1.2" and len(fields) > 3 and fields[3] else None
    try:
        inner = binascii.unhexlify("".join(lines[1:])).decode("ascii").split("\n")
        salt, mac, ciphertext = (binascii.unhexlify(part) for part in inner[:3])
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ValueError("damaged vault text (its hex body does not decode)") from None
    if len(inner) != 3:
        raise ValueError("damaged vault text (expected salt, HMAC and ciphertext)")
    return Envelope(version, label, salt, mac, ciphertext)


def _keys(password: bytes, salt: bytes) -> tuple[bytes, bytes, bytes]:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

    derived = PBKDF2HMAC(algorithm=hashes.SHA256(), length=2 * _KEY_LEN + _IV_LEN, salt=salt,
                         iterations=_ITERATIONS).derive(password)
    return derived[:_KEY_LEN], derived[_KEY_LEN:2 * _KEY_LEN], derived[2 * _KEY_LEN:]


def _ctr(key: bytes, counter: bytes) -> Any:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    return Cipher(algorithms.AES(key), modes.CTR(counter))


def encrypt(plaintext: bytes, password: bytes, label: str | None = None) -> str:
    """The vault text for `plaintext`: format 1.2 when a label other than `default` is given, else 1.1."""
    import hmac

    from cryptography.hazmat.primitives import padding

    salt = os.urandom(32)
    key, mac_key, counter = _keys(password, salt)
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plaintext) + padder.finalize()
    enc = _ctr(key, counter).encryptor()
    ciphertext = enc.update(padded) + enc.finalize()
    mac = hmac.new(mac_key, ciphertext, "sha256").digest()
    body = b"\n".join(binascii.hexlify(part) for part in (salt, mac, ciphertext))
    hexed = binascii.hexlify(body).decode("ascii")
    if label and label != DEFAULT_ID:
        header = f"{HEADER};1.2;AES256;{label}"
    else:
        header = f"{HEADER};1.1;AES256"
    return "\n".join([header, *(hexed[i:i + _LINE] for i in range(0, len(hexed), _LINE))]) + "\n"


def decrypt_with(envelope: Envelope, password: bytes) -> bytes | None:
    """The plaintext, or None when this password is not the one (the HMAC does not match)."""
    import hmac

    from cryptography.hazmat.primitives import padding

    key, mac_key, counter = _keys(password, envelope.salt)
    expected = hmac.new(mac_key, envelope.ciphertext, "sha256").digest()
    if not hmac.compare_digest(expected, envelope.mac):
        return None
    dec = _ctr(key, counter).decryptor()
    padded = dec.update(envelope.ciphertext) + dec.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        return None


# -- passwords ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class VaultSecret:
    label: str
    password: bytes
    source: str  # where it came from, for messages: a path or "prompt"


def parse_vault_id(spec: str) -> tuple[str, str]:
    """`label@source` or a bare `source` (label `default`), as --vault-id takes them."""
    label, at, source = spec.partition("@")
    if not at:
        return DEFAULT_ID, spec
    if not label or not source:
        raise UserError(f"--vault-id {spec!r}: expected LABEL@SOURCE (a file, an executable or `prompt`)")
    return label, source


def read_secret(label: str, source: str, confirm: bool = False,
                prompt: Callable[[str], str] | None = None) -> VaultSecret:
    """A password from `prompt`, a file (its text, stripped) or an executable (its stdout), as Ansible
    reads them. An executable named `*-client*` is asked for the label with `--vault-id LABEL`."""
    if source == "prompt":
        if prompt is None:
            import getpass
            prompt = getpass.getpass
        shown = "Vault password" if label == DEFAULT_ID else f"Vault password ({label})"
        text = prompt(f"{shown}: ")
        if confirm and prompt(f"Confirm {shown.lower()}: ") != text:
            raise UserError("vault passwords do not match")
        password = text.encode()
    else:
        path = Path(source).expanduser()
        if not path.is_file():
            raise UserError("vault password file not found", Position(str(path)))
        if os.access(path, os.X_OK):
            import subprocess
            argv = [str(path.resolve())]
            if path.stem.endswith("-client"):
                argv += ["--vault-id", label]
            try:
                proc = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=120, check=False)
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise UserError(f"vault password script failed: {exc}", Position(str(path))) from None
            if proc.returncode != 0:
                err = proc.stderr.decode(errors="replace").strip().splitlines()
                raise UserError(f"vault password script exited {proc.returncode}"
                                + (f": {err[-1]}" if err else ""), Position(str(path)))
            password = proc.stdout.strip(b"\r\n")
        else:
            try:
                password = path.read_bytes().strip()
            except OSError as exc:
                raise UserError(f"cannot read the vault password file: {exc.strerror}", Position(str(path))) from None
    if not password:
        raise UserError(f"the vault password from {source} is empty")
    return VaultSecret(label, password, source)


def secrets_from_options(vault_ids: list[str], password_files: list[str], ask: bool,
                         env: dict[str, str] | None = None, confirm: bool = False) -> list[VaultSecret]:
    """Every password the command line and environment give, in the order they are tried."""
    env = dict(os.environ) if env is None else env
    specs: list[tuple[str, str]] = [parse_vault_id(v) for v in vault_ids]
    specs += [(DEFAULT_ID, f) for f in password_files]
    if ask:
        specs.append((DEFAULT_ID, "prompt"))
    for var in ("PROVISION_VAULT_PASSWORD_FILE", "ANSIBLE_VAULT_PASSWORD_FILE"):
        if env.get(var) and (DEFAULT_ID, env[var]) not in specs:
            specs.append((DEFAULT_ID, env[var]))
    return [read_secret(label, source, confirm=confirm) for label, source in specs]


# -- the keyring -------------------------------------------------------------------------------
@dataclass
class Keyring:
    """The run's vault passwords, and every value they decrypted (what output must never show)."""

    secrets: list[VaultSecret] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _longest_first: list[str] | None = field(default=None, repr=False)  # what redact() replaces, when known

    def decrypt(self, vaulttext: str, pos: Position) -> bytes:
        try:
            envelope = parse(vaulttext)
        except ValueError as exc:
            raise VaultError(str(exc), pos) from None
        if not self.secrets:
            raise VaultError("vaulted data, but no vault password was given "
                             "(--vault-password-file, --vault-id or --ask-vault-pass)", pos)
        ordered = sorted(self.secrets, key=lambda s: s.label != envelope.label) if envelope.label else self.secrets
        for secret in ordered:
            plain = decrypt_with(envelope, secret.password)
            if plain is not None:
                return plain
        labels = ", ".join(dict.fromkeys(s.label for s in self.secrets))
        what = f" (vault id {envelope.label!r})" if envelope.label else ""
        raise VaultError(f"no vault password given decrypts this{what}; tried: {labels}", pos)

    def remember(self, value: Any) -> Any:
        """Record every string in a decrypted value and mark it Secret, containers included."""
        if isinstance(value, str):
            with self._lock:
                if value not in self.seen:
                    self.seen.add(str(value))
                    self._longest_first = None
            return value if isinstance(value, SecretStr) else _secret_str(value)
        if isinstance(value, dict):
            out = SecretDict((k, self.remember(v)) for k, v in value.items())
            for attr in ("pos", "key_pos"):  # a YMap keeps its positions
                if hasattr(value, attr):
                    setattr(out, attr, getattr(value, attr))
            return out
        if isinstance(value, list):
            seq = SecretList(self.remember(v) for v in value)
            for attr in ("pos", "item_pos"):
                if hasattr(value, attr):
                    setattr(seq, attr, getattr(value, attr))
            return seq
        return value

    def redact(self, text: str, escape: Callable[[str], str] | None = None) -> str:
        """`text` with every decrypted value (as `escape` writes it, e.g. JSON-escaped) replaced."""
        if not self.seen:
            return text
        ordered = self._longest_first
        if ordered is None:
            with self._lock:
                ordered = self._longest_first = sorted((s for s in self.seen if len(s) >= MIN_REDACT_LEN),
                                                       key=len, reverse=True)
        for secret in ordered:
            shown = escape(secret) if escape else secret
            if shown in text:
                text = text.replace(shown, REDACTED)
        return text


class _SecretUnsafeStr(UnsafeStr, SecretStr):
    """A secret that was also marked never-to-be-templated (a registered or set_fact value)."""


def _secret_str(value: str) -> str:
    return _SecretUnsafeStr(value) if isinstance(value, UnsafeStr) else SecretStr(value)


_KEYRING = Keyring()


def install(keyring: Keyring) -> None:
    """Make `keyring` the one the loader and the output use (the command line does this first)."""
    global _KEYRING
    _KEYRING = keyring


def keyring() -> Keyring:
    return _KEYRING


def redact(text: str) -> str:
    return _KEYRING.redact(text)


def taint(value: Any) -> Any:
    """What a task that read a secret produced (registered results, set_fact values): secret too."""
    if isinstance(value, Secret):
        return value
    if isinstance(value, str):
        return _secret_str(value)
    if isinstance(value, dict):
        return SecretDict(value)
    if isinstance(value, list):
        return SecretList(value)
    return value


def encrypt_string_block(plaintext: str, password: bytes, label: str | None, name: str | None) -> str:
    """An inline `!vault |` value, as `ansible-vault encrypt_string` prints it."""
    body = encrypt(plaintext.encode(), password, label)
    indented = "".join(f"          {line}\n" for line in body.splitlines())
    return (f"{name}: !vault |\n" if name else "!vault |\n") + indented


# -- `provision vault ...` ----------------------------------------------------------------------
def vault_command(args: Any) -> int:
    """encrypt | decrypt | view | encrypt_string, as ansible-vault does them."""
    import sys

    encrypting = args.action in ("encrypt", "encrypt_string")
    secrets = secrets_from_options(args.vault_id, args.vault_password_file, args.ask_vault_pass, confirm=encrypting)
    if not secrets:
        raise UserError("a vault password is needed: --vault-password-file FILE, --vault-id LABEL@SOURCE, "
                        "--ask-vault-pass or PROVISION_VAULT_PASSWORD_FILE")
    chosen = _encrypting_secret(secrets, getattr(args, "encrypt_vault_id", None)) if encrypting else secrets[0]
    if args.action == "encrypt_string":
        values = list(args.files) or [sys.stdin.read()]
        if not all(values):
            raise UserError("vault encrypt_string: nothing to encrypt (an empty string)")
        if args.name and len(values) > 1:
            raise UserError("--name names one string; give one string with it")
        for value in values:
            sys.stdout.write(encrypt_string_block(value, chosen.password, chosen.label, args.name))
        print("Encryption successful", file=sys.stderr)
        return 0
    ring = Keyring(secrets)
    if not args.files:
        raise UserError(f"vault {args.action}: name the file(s)")
    output = getattr(args, "output", None)
    if output and len(args.files) > 1:
        raise UserError("--output takes one input file")
    for name in args.files:
        path = Path(name)
        try:
            text = path.read_bytes()
        except OSError as exc:
            raise UserError(f"cannot read: {exc.strerror}", Position(str(path))) from None
        if args.action == "encrypt":
            if is_vaulted(text):
                raise UserError("already vault-encrypted", Position(str(path)))
            out = encrypt(text, chosen.password, chosen.label).encode()
        else:
            if not is_vaulted(text):
                raise UserError("not a vault-encrypted file", Position(str(path)))
            out = ring.decrypt(text.decode("ascii", "replace"), Position(str(path), 1, 1))
        if args.action == "view" or output == "-":
            sys.stdout.buffer.write(out)
            sys.stdout.flush()
        else:
            _write_keeping_mode(Path(output) if output else path, out)
    if args.action in ("encrypt", "decrypt") and output != "-":
        print(f"{'Encryption' if args.action == 'encrypt' else 'Decryption'} successful", file=sys.stderr)
    return 0


def _encrypting_secret(secrets: list[VaultSecret], label: str | None) -> VaultSecret:
    if label:
        for secret in secrets:
            if secret.label == label:
                return secret
        raise UserError(f"--encrypt-vault-id {label!r}: no --vault-id with that label")
    if len({s.label for s in secrets}) > 1:
        raise UserError("several vault ids are given: say which one encrypts with --encrypt-vault-id LABEL")
    return secrets[0]


def _write_keeping_mode(path: Path, data: bytes) -> None:
    """Replace the file atomically; an existing file keeps its mode, a new one is private (0600)."""
    import tempfile
    try:
        mode = path.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o600
    fd, tmp = tempfile.mkstemp(dir=path.parent if str(path.parent) else ".", prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
