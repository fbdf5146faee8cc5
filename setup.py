"""Build objpool's compiled hot path when this machine can; install pure Python when it cannot.

`pip install .` compiles the hot modules' twins (`objpool/_c*.pyx`) with Cython when a C
compiler and the Python headers work. Without them (or with `OBJPOOL_PURE_PYTHON=1`, or on an
interpreter other than CPython) the same package installs as pure Python: each twin's `.py`
reference is complete on its own, and `objpool.COMPILED` says which build is running.
"""

from __future__ import annotations

import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


def _pure_python_wanted() -> bool:
    return os.environ.get("OBJPOOL_PURE_PYTHON", "") not in ("", "0") or sys.implementation.name != "cpython"


def _extensions() -> list[Extension]:
    if _pure_python_wanted():
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:  # a build without Cython: pure Python
        return []
    return cythonize(
        [
            Extension("objpool._cpool", ["objpool/_cpool.pyx"]),
            Extension("objpool._cbytebuffer", ["objpool/_cbytebuffer.pyx"]),
            Extension("objpool._cslice", ["objpool/_cslice.pyx"]),
            Extension("objpool._cbufferpool", ["objpool/_cbufferpool.pyx"]),
            Extension("objpool._cdecoder", ["objpool/_cdecoder.pyx"]),
            Extension("objpool._csystem", ["objpool/_csystem.pyx"]),
            Extension("objpool._cpooledbuffer", ["objpool/_cpooledbuffer.pyx"]),
            Extension("objpool._cbufpool", ["objpool/_cbufpool.pyx"]),
            Extension("objpool._csizedpool", ["objpool/_csizedpool.pyx"]),
        ],
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
