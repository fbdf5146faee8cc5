"""Warnings that point at the user's code, never at objpool's own files.

A leak is found in a finaliser, a failed rebuild deep inside a pool method: either way the line
worth showing is the first one outside this package (`warnings.warn(..., skip_file_prefixes=...)`
on 3.12+; on 3.11 the same frame is found by walking the stack).
"""

from __future__ import annotations

import os
import sys
import tracemalloc
import warnings
from types import FrameType

__all__ = ["allocation_site", "warn_user"]

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def warn_user(message: str, category: type[Warning], source: object = None) -> None:
    """`warnings.warn(message, category)`, attributed to the innermost frame outside objpool.

    Call it with no pool lock held: a warnings filter or `showwarning` hook is user code.
    """
    if sys.version_info >= (3, 12):
        warnings.warn(message, category, source=source, skip_file_prefixes=(_PACKAGE_DIR,))
        return
    level = 2  # stacklevel=2 is our caller's frame; skip outwards past objpool's own
    try:
        frame: FrameType | None = sys._getframe(1)
    except ValueError:  # called from compiled code with no Python frame above: no caller to show
        frame = None
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        level += 1
        frame = frame.f_back
    warnings.warn(message, category, stacklevel=level, source=source)


def allocation_site(obj: object) -> str:
    """"; it was allocated at FILE:LINE" (the innermost frame outside objpool) when tracemalloc
    traced `obj`, a hint to trace more frames when it saw only objpool's, else ""."""
    traceback = tracemalloc.get_object_traceback(obj)
    if traceback is None:
        return ""
    for frame in reversed(traceback):
        if not frame.filename.startswith(_PACKAGE_DIR):
            return f"; it was allocated at {frame.filename}:{frame.lineno}"
    return "; start tracemalloc with more frames to see where it was allocated"
