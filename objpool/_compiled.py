"""Which build runs: the compiled twins of the hot modules, when this install built them.

Each hot module (`_pool`, `_bytebuffer`, `_bufpool`, `_sizedpool`, and in `sv2/`: `_slice`, `_buffer`, `_buffer_pool`,
`_pooled_buffer`, `_codec`) is complete in Python and is the reference; when the install
compiled its twin (`objpool/_c*.pyx`, listed in `TWINS`), the module takes the twin's classes
at import. All twins or none: an install missing one runs as pure Python.

The twins are found here, not imported: a twin imports the reference module it repeats
(for its constants), and that module asks for `COMPILED` first.

`OBJPOOL_PURE_PYTHON=1` in the environment at run time runs the Python reference even where
the twins were built: how the benchmark compares both builds of one install in one run, and a
way out should a compiled module misbehave.
"""

from __future__ import annotations

import importlib.util
import os

__all__ = ["COMPILED", "TWINS"]

TWINS = (
    "objpool._cpool",
    "objpool._cbytebuffer",
    "objpool._cslice",
    "objpool._cbufferpool",
    "objpool._cdecoder",
    "objpool._csystem",
    "objpool._cpooledbuffer",
    "objpool._cbufpool",
    "objpool._csizedpool",
)
"""The compiled modules, built from the `.pyx` files of the same names: the one list (setup.py
reads it from this file; `tests/test_builds.py` checks the install and the sources against it)."""

COMPILED = os.environ.get("OBJPOOL_PURE_PYTHON", "") in ("", "0") and all(
    importlib.util.find_spec(twin) is not None for twin in TWINS
)
"""Whether the hot path runs compiled (True) or as the Python reference (False)."""
