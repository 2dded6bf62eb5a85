"""Build step: the wheel carries the top-level roles/, playbooks/ and inventory.example.yml.

They stay at the repository's top level, where a clone uses them; building a (non-editable)
wheel copies them into the package as provisioner/share/ (see provisioner/shipped.py).
Everything else is in pyproject.toml.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

SHIPPED = ("roles", "playbooks", "inventory.example.yml")


class BuildPyWithLab(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads the checkout's own files
        root = Path(__file__).resolve().parent
        dest = Path(self.build_lib) / "provisioner" / "share"
        for name in SHIPPED:
            src, dst = root / name, dest / name
            if not src.exists():
                raise FileNotFoundError(f"{src}: the wheel must ship it")
            if src.is_dir():
                shutil.rmtree(dst, ignore_errors=True)
                shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dst)


setup(cmdclass={"build_py": BuildPyWithLab})
