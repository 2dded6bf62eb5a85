"""The code shipped to each host: the agent, the runtime, the facts probe and every module.

Built once per run on the controller: the sources travel as one compressed line that the
host's python3 unpacks into an in-memory importer, so a changed module never meets a stale
copy. The line is `base64(zlib(LOADER \\0 name \\0 source \\0 name \\0 source ...))`: the
loader is the only code compiled from it on arrival; a module's source is compiled when
it is first imported.

What a host keeps between runs is only a bytecode cache: the code objects compiled from
this exact bundle (named by its hash and the host python's cache tag) in
`~/.cache/provision/`, written by the agent after the run's last reply and read only when
the file belongs to the agent's user and nobody else may write it. Compiling the sources a
run needs costs a host ~15 ms of CPU; loading them from the cache well under 1 ms.
"""

from __future__ import annotations

import base64
import hashlib
import threading
import zlib
from pathlib import Path
from typing import Any

PKG_ROOT = Path(__file__).resolve().parents[1]
HOST_PACKAGES = ("provisioner", "provisioner.host", "provisioner.modules", "provisioner.gpu")
_SKIP = {"provisioner/host/bundle.py", "provisioner/modules/__init__.py", "provisioner/__init__.py",
         "provisioner/gpu/__init__.py", "provisioner/host/__init__.py"}

# Runs in the agent's __main__ with `_D` (the unpacked bundle) and `_i` (where the sources
# start) set by the boot line. Python >= 3.7, standard library only.
_LOADER = '''
import sys, os, marshal
from importlib.machinery import ModuleSpec
_P = _D[_i + 1:].split(b"\\0")
_SOURCES = {_P[k].decode(): _P[k + 1] for k in range(0, len(_P) - 1, 2)}
_B = _D
del _P, _D, _u
_PKGS = %(pkgs)r
_CACHE_DIR = os.path.join(os.path.expanduser("~"), ".cache", "provision")
_CACHE_NAME = "code-%(hash)s.%%s" %% sys.implementation.cache_tag
_CACHE = os.path.join(_CACHE_DIR, _CACHE_NAME)
_NEW = []

def _cached():
    try:
        with open(_CACHE, "rb") as f:
            st = os.fstat(f.fileno())
            if st.st_uid != os.geteuid() or st.st_mode & 0o022:
                return {}
            code = marshal.load(f)
        return code if isinstance(code, dict) else {}
    except Exception:
        return {}

_CODE = _cached()

def _keep(path, write):
    """Write a file of the cache atomically, 0600 in a 0700 directory; drop the other bundles' files
    of its kind, which are stale now."""
    os.makedirs(_CACHE_DIR, mode=0o700, exist_ok=True)
    tmp = "%%s.%%d.tmp" %% (path, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        write(f)
    os.replace(tmp, path)
    name = os.path.basename(path)
    kind = name.split("-", 1)[0] + "-"
    for other in os.listdir(_CACHE_DIR):
        if other.startswith(kind) and other != name and not other.endswith(".tmp"):
            os.unlink(os.path.join(_CACHE_DIR, other))

def _save_cache():
    """Once the controller is gone: keep the code objects compiled this run (and the bundle, if
    the controller left before its first answer)."""
    _keep_bundle()
    try:
        if _NEW:
            _keep(_CACHE, lambda f: marshal.dump(_CODE, f))
    except Exception:
        pass

def _keep_bundle():
    """Once the first answer is out (the controller reads it meanwhile): keep the bundle itself,
    unpacked (no base64 or zlib at the next start), when the controller named it (_K) and sent it,
    for the next run to start from. Before the next request is read, so that it is there by the
    time the run's second answer is, whenever the controller goes. Once."""
    global _K
    try:
        if _K:
            _keep(_K, lambda f: f.write(_B + b"\\n#end %(hash)s"))
    except Exception:
        pass
    _K = None

# A plain finder/loader: subclassing importlib.abc would import it, ~20 ms of the host's CPU.
class _ProvisionImporter:
    def find_spec(self, name, path=None, target=None):
        if name in _SOURCES or name in _PKGS:
            return ModuleSpec(name, self, is_package=name in _PKGS)
        return None
    def create_module(self, spec):
        return None
    def exec_module(self, module):
        name = module.__name__
        module.__file__ = "<provision>/" + name.replace(".", "/") + ".py"
        if name in _PKGS:
            module.__path__ = []
        code = _CODE.get(name)
        if code is None and name in _SOURCES:
            code = _CODE[name] = compile(_SOURCES[name], module.__file__, "exec", dont_inherit=True)
            _NEW.append(name)
        if code is not None:
            exec(code, module.__dict__)
sys.meta_path.insert(0, _ProvisionImporter())
from provisioner.host.agent import serve
serve(_L or (lambda: binascii.b2a_base64(zlib.compress(_B, 1), newline=False) + b"\\n"), _save_cache, _Q, _keep_bundle)
'''


def _host_sources() -> dict[str, str]:
    sources: dict[str, str] = {}
    for sub in ("host", "modules", "gpu"):
        for path in sorted((PKG_ROOT / sub).glob("*.py")):
            rel = path.relative_to(PKG_ROOT.parent).as_posix()
            if rel in _SKIP:
                continue
            sources[rel[:-3].replace("/", ".")] = path.read_text(encoding="utf-8")
    return sources


def pack(sources: dict[str, str]) -> bytes:
    """LOADER \\0 name \\0 source ...: the unpacked bundle (its hash names the host's code cache)."""
    return _pack(sources)[1]


def _pack(sources: dict[str, str]) -> tuple[str, bytes]:
    parts = []
    for name, src in sources.items():
        if "\0" in src:
            raise ValueError(f"{name}: a NUL byte in a source file")
        parts += [name.encode(), src.encode("utf-8")]
    body = b"\0".join(parts)
    # the loader is part of what a host keeps: a new loader is a new bundle
    digest = hashlib.sha256(_LOADER.encode("utf-8") + b"\0" + body).hexdigest()[:24]
    loader = _LOADER % {"pkgs": set(HOST_PACKAGES), "hash": digest}
    return digest, loader.encode("utf-8") + b"\0" + body


_BUILT: dict[str, Any] = {}   # "digest", "packed", then "line" once a host needs the bundle sent
_LINE_LOCK = threading.Lock()


def _built(what: str) -> Any:
    """Built once per run, under a lock: every host's connection thread asks at about the same
    moment, and unlocked each would build it (16 of 50 did: 0.4 s of the controller's CPU)."""
    if what not in _BUILT:
        with _LINE_LOCK:
            if "digest" not in _BUILT:
                _BUILT["digest"], _BUILT["packed"] = _pack(_host_sources())
            if what == "line" and "line" not in _BUILT:
                _BUILT["line"] = base64.b64encode(zlib.compress(_BUILT["packed"], 6)) + b"\n"
    return _BUILT[what]


def bundle_digest() -> str:
    """The hash that names this bundle (and the hosts' caches of it). Without compressing it: a
    run whose hosts all kept the bundle never sends it (zlib and base64 are ~12 ms of CPU)."""
    return _built("digest")


def bundle_line() -> bytes:
    """The bundle as one base64 line (newline-terminated), ready to follow the boot marker."""
    return _built("line")
