"""`ansible_ssh_common_args` / `ansible_ssh_extra_args`: ssh command-line options as ssh_config lines.

What ssh would take from its command line (`-o Key=Value`, `-J`, `-i`, `-p`, `-l`, `-C`) becomes
`Key Value` lines that paramiko's SSHConfig parses ahead of the user's ssh_config, so they win
as they do for ssh. An option we would not honour is an error naming it, never dropped.
"""

from __future__ import annotations

import functools
import shlex

# ssh_config keys (lowercase) that the SSH connection honours.
SUPPORTED = frozenset({
    "hostname", "user", "port", "identityfile", "identitiesonly", "userknownhostsfile",
    "globalknownhostsfile", "stricthostkeychecking", "connecttimeout", "serveraliveinterval",
    "proxyjump", "proxycommand", "compression",
})
# Keys that change nothing here, said so in the README: we keep one connection per host per run
# (what ControlMaster/ControlPersist are for), never prompt (BatchMode) and log nothing of ssh's.
ACCEPTED_NO_EFFECT = frozenset({
    "controlmaster", "controlpersist", "controlpath", "batchmode", "loglevel", "serveralivecountmax",
    "forwardagent", "forwardx11", "requesttty",
})
# Flags without a value that change nothing for a non-interactive exec session.
_FLAGS_NO_EFFECT = frozenset({"-q", "-T", "-n", "-x", "-a", "-4"})
_FLAG_KEYS = {"-J": "ProxyJump", "-i": "IdentityFile", "-p": "Port", "-l": "User"}


class SshArgsError(ValueError):
    """An ssh option the SSH connection does not understand (the message names it)."""


def ssh_args_to_config(text: str) -> list[tuple[str, str]]:
    """`-o UserKnownHostsFile=x -J bastion -p 2222` → [("UserKnownHostsFile", "x"), ("ProxyJump", ...)].
    Parsed once per distinct text: an inventory gives most hosts the same options."""
    return list(_parsed(text))


@functools.lru_cache(maxsize=256)
def _parsed(text: str) -> tuple[tuple[str, str], ...]:
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise SshArgsError(f"cannot split {text!r}: {exc}") from None
    out: list[tuple[str, str]] = []
    i = 0
    while i < len(words):
        word = words[i]
        i += 1
        if word in _FLAGS_NO_EFFECT:
            continue
        if word == "-C":
            out.append(("Compression", "yes"))
            continue
        flag, attached = word[:2], word[2:]
        if flag == "-o" or flag in _FLAG_KEYS:
            if not attached:
                if i >= len(words):
                    raise SshArgsError(f"{flag} needs a value")
                attached = words[i]
                i += 1
            if flag != "-o":
                out.append((_FLAG_KEYS[flag], attached))
                continue
            key, value, took_next = _option(attached, words, i)
            i += took_next
            out.append((key, value))
            continue
        raise SshArgsError(f"ssh option {word!r} is not supported (supported: -o Key=Value, -J, -i, -p, -l, -C)")
    for key, _value in out:
        low = key.lower()
        if low not in SUPPORTED and low not in ACCEPTED_NO_EFFECT:
            raise SshArgsError(f"ssh option -o {key} is not supported")
    return tuple(out)


def _option(attached: str, words: list[str], i: int) -> tuple[str, str, int]:
    """One `-o` argument: `Key=Value`, `'Key Value'` (one quoted word) or `Key` and then the next
    word as its value; the int is how many further words it took."""
    if "=" in attached:
        key, _, value = attached.partition("=")
        return key.strip(), value.strip(), 0
    parts = attached.strip().split(None, 1)
    if len(parts) == 2:
        return parts[0], parts[1], 0
    if i >= len(words):
        raise SshArgsError(f"ssh option -o {attached} has no value")
    return attached.strip(), words[i], 1


def config_text(pairs: list[tuple[str, str]]) -> str:
    """The pairs as an ssh_config block that applies to every host."""
    lines = ["Host *"]
    for key, value in pairs:
        lines.append(f"  {key} {value}")
    return "\n".join(lines) + "\n"
