"""Build objpool's compiled hot path when this machine can; install pure Python when it cannot.

`pip install .` compiles the hot modules' twins (`objpool/_c*.pyx`) with Cython when a C
compiler and the Python headers work. Without them (or with `OBJPOOL_PURE_PYTHON=1`, or on an
interpreter other than CPython) the same package installs as pure Python: each twin's `.py`
reference is complete on its own, and `objpool.COMPILED` says which build is running.
"""

from __future__ import annotations

import ast
import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


def _pure_python_wanted() -> bool:
    return os.environ.get("OBJPOOL_PURE_PYTHON", "") not in ("", "0") or sys.implementation.name != "cpython"


def _twins() -> tuple[str, ...]:
    """The compiled twins, as `objpool._compiled.TWINS` lists them: read from its source, so
    the list lives in one place and the build needs nothing of the package importable."""
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "objpool", "_compiled.py"), encoding="utf-8") as f:
        tree = ast.parse(f.read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "TWINS" for t in node.targets):
            return tuple(ast.literal_eval(node.value))
    raise RuntimeError("objpool/_compiled.py defines no TWINS")


def _extensions() -> list[Extension]:
    if _pure_python_wanted():
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:  # a build without Cython: pure Python
        return []
    return cythonize(
        [Extension(twin, [twin.replace(".", "/") + ".pyx"]) for twin in _twins()],
        compiler_directives={"language_level": 3},
        quiet=True,
    )


class OptionalBuildExt(build_ext):
    """A failed compile is not a failed install: the package then runs as pure Python."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # no compiler at all (CC=false, no headers): keep going
            self._skip(exc)

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:
            self._skip(exc)

    def _skip(self, exc: Exception) -> None:
        print(f"objpool: not compiling the hot path ({exc}); installing pure Python", file=sys.stderr)
        # An earlier build in this tree may have left a compiled module behind: a pure
        # install must not ship it.
        for ext in self.extensions:
            for path in (self.get_ext_fullpath(ext.name), os.path.join(self.build_lib, self.get_ext_filename(ext.name))):
                if os.path.exists(path):
                    os.remove(path)


# A pure build writes to its own directory, so that it never picks up a module compiled by an
# earlier build in the same tree (pip builds in place).
_BUILD_BASE = os.path.join("build", "pure" if _pure_python_wanted() else "compiled")

setup(
    ext_modules=_extensions(),
    cmdclass={"build_ext": OptionalBuildExt},
    options={"build": {"build_base": _BUILD_BASE}},
)
