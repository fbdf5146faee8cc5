"""Which build runs: the compiled twins of the hot modules, when this install built them.

Each hot module (`_pool`, `_bytebuffer`, `_bufpool`, `_sizedpool`, and in `sv2/`: `_slice`, `_buffer`, `_buffer_pool`,
`_pooled_buffer`, `_codec`) is complete in Python and is the reference; when the install
compiled its twin (the `.pyx` beside it, named after it with a `_c` prefix: `_pool.py` and
`_cpool.pyx`; listed in `TWINS`), the module takes the twin's classes
at import. All twins or none: an install missing one runs as pure Python.

The twins are found here, not imported: a twin imports the reference module it repeats
(for its constants), and that module asks for `COMPILED` first.

`OBJPOOL_PURE_PYTHON=1` in the environment at run time runs the Python reference even where
the twins were built: how the benchmark compares both builds of one install in one run, and a
way out should a compiled module misbehave.
"""

from __future__ import annotations

import importlib.machinery
import os

__all__ = ["COMPILED", "TWINS"]

TWINS = (
    "objpool._cpool",
    "objpool._cbytebuffer",
    "objpool.sv2._cslice",
    "objpool.sv2._cbuffer_pool",
    "objpool.sv2._ccodec",
    "objpool.sv2._cbuffer",
    "objpool.sv2._cpooled_buffer",
    "objpool._cbufpool",
    "objpool._csizedpool",
)
"""The compiled modules, built from the `.pyx` files of the same names: the one list (setup.py
reads it from this file; `tests/test_builds.py` checks the install and the sources against it)."""



def _built(twin: str) -> bool:
    """Whether the install holds `twin`'s extension module: looked up in its folder, without
    importing its package (`objpool.sv2` would ask for `COMPILED` while it is being set)."""
    folder = os.path.join(os.path.dirname(__file__), *twin.split(".")[1:-1])
    return importlib.machinery.PathFinder.find_spec(twin, [folder]) is not None


COMPILED = os.environ.get("OBJPOOL_PURE_PYTHON", "") in ("", "0") and all(_built(twin) for twin in TWINS)
"""Whether the hot path runs compiled (True) or as the Python reference (False)."""
