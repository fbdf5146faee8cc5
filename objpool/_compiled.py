"""Which build runs: the compiled twins of the hot modules, when this install built them.

Each hot module (`_pool`, `_bytebuffer`, `sv2/_slice`, `sv2/_buffer_pool`, `sv2/_codec`) is
complete in Python and is the reference; when the install compiled its twin (`_cpool.pyx`,
`_cbytebuffer.pyx`, `_cslice.pyx`, `_cbufferpool.pyx`, `_cdecoder.pyx`), the module takes the
twin's classes at import. All twins or none: an install missing one runs as pure Python.

The twins are found here, not imported: a twin imports the reference module it repeats
(for its constants), and that module asks for `COMPILED` first.
"""

from __future__ import annotations

import importlib.util

__all__ = ["COMPILED", "TWINS"]

TWINS = (
    "objpool._cpool",
    "objpool._cbytebuffer",
    "objpool._cslice",
    "objpool._cbufferpool",
    "objpool._cdecoder",
)
"""The compiled modules, built from the `.pyx` files of the same names."""

COMPILED = all(importlib.util.find_spec(twin) is not None for twin in TWINS)
"""Whether the hot path runs compiled (True) or as the Python reference (False)."""
