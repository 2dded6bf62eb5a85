"""slurp: read a file on the host and return its bytes base64-encoded, as Ansible's slurp does.

Never changes anything; `register: x` + `x.content | b64decode` works unchanged.
"""

from __future__ import annotations

import binascii
import os

from provisioner.host.runtime import Change, Host, ModuleArgs, ModuleError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

ALIASES = {"path": "src"}
CHECK_MODE = True


class Args(ModuleArgs):
    src: str


def plan(args: Args, host: Host) -> Change:
    src = os.path.expanduser(args.src)
    try:
        with open(src, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise ModuleError("file not found: %s" % src)
    except IsADirectoryError:
        raise ModuleError("source is a directory and must be a file: %s" % src)
    except PermissionError:
        raise ModuleError("file is not readable: %s" % src)
    except OSError as exc:
        raise ModuleError("unable to slurp file: %s" % exc)
    content = binascii.b2a_base64(data, newline=False).decode()
    return Change(False, data={"content": content, "encoding": "base64", "source": src})


def apply(args: Args, change: Change, host: Host) -> dict[str, Any]:
    return {"changed": False}
