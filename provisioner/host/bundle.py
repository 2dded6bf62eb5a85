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
import zlib
from functools import cache
from pathlib import Path

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
del _P, _D
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

def _save_cache():
    """Write the code objects compiled this run, once the controller has its last answer."""
    if not _NEW:
        return
    try:
        os.makedirs(_CACHE_DIR, mode=0o700, exist_ok=True)
        tmp = "%%s.%%d.tmp" %% (_CACHE, os.getpid())
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            marshal.dump(_CODE, f)
        os.replace(tmp, _CACHE)
        for other in os.listdir(_CACHE_DIR):  # the caches of other bundles are stale now
            if other.startswith("code-") and other != _CACHE_NAME and not other.endswith(".tmp"):
                os.unlink(os.path.join(_CACHE_DIR, other))
    except Exception:
        pass

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
serve(_L, _save_cache)
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
    parts = []
    for name, src in sources.items():
        if "\0" in src:
            raise ValueError(f"{name}: a NUL byte in a source file")
        parts += [name.encode(), src.encode("utf-8")]
    body = b"\0".join(parts)
    digest = hashlib.sha256(body).hexdigest()[:24]
    loader = _LOADER % {"pkgs": set(HOST_PACKAGES), "hash": digest}
    return loader.encode("utf-8") + b"\0" + body


@cache
def bundle_line() -> bytes:
    """The bundle as one base64 line (newline-terminated), ready to follow the boot marker."""
    return base64.b64encode(zlib.compress(pack(_host_sources()), 6)) + b"\n"
