"""Which build runs: the compiled twins of the hot modules, when this install built them.

Each hot module (`_pool`, `_bytebuffer`, `sv2/_slice`) is complete in Python and is the
reference; when the install compiled its twin (`_cpool.pyx`, `_cbytebuffer.pyx`,
`_cslice.pyx`), the module takes the twin's classes at import. The twins live at the top of
the package so that importing one never imports `objpool.sv2` (which asks for `COMPILED`). All twins or none: a partly compiled install runs as pure Python.
"""

from __future__ import annotations

import importlib

__all__ = ["COMPILED", "TWINS"]

TWINS = ("objpool._cpool", "objpool._cbytebuffer", "objpool._cslice")
"""The compiled modules, built from the `.pyx` files of the same names."""

try:
    for _twin in TWINS:
        importlib.import_module(_twin)
except ImportError:  # a pure-Python install: no compiler, or OBJPOOL_PURE_PYTHON=1
    COMPILED = False
else:
    COMPILED = True
"""Whether the hot path runs compiled (True) or as the Python reference (False)."""
