"""The code shipped to each host: the agent, the runtime, the facts probe and every module.

Built once per run on the controller: sources are gathered into one compressed line that
the host's python3 unpacks into an in-memory importer, so nothing is written to the host
and a changed module never meets a stale copy.
"""

from __future__ import annotations

import base64
import zlib
from functools import cache
from pathlib import Path

PKG_ROOT = Path(__file__).resolve().parents[1]
HOST_PACKAGES = ("provisioner", "provisioner.host", "provisioner.modules", "provisioner.gpu")
_SKIP = {"provisioner/host/bundle.py", "provisioner/modules/__init__.py", "provisioner/__init__.py",
         "provisioner/gpu/__init__.py", "provisioner/host/__init__.py"}

_LOADER = '''
import sys
from importlib.machinery import ModuleSpec
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
        src = _SOURCES.get(name)
        if src:
            exec(compile(src, module.__file__, "exec"), module.__dict__)
sys.meta_path.insert(0, _ProvisionImporter())
from provisioner.host.agent import serve
serve(_L)
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


@cache
def bundle_line() -> bytes:
    """The bundle as one base64 line (newline-terminated), ready to follow the boot marker."""
    code = f"_SOURCES = {_host_sources()!r}\n_PKGS = {set(HOST_PACKAGES)!r}\n{_LOADER}"
    return base64.b64encode(zlib.compress(code.encode("utf-8"), 6)) + b"\n"
