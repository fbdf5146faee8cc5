"""Pinned memory: anonymous `mmap` blocks locked in RAM by `mlock(2)`, so they are never swapped.

`pinned_block(size)` returns such a block, or None when the system refuses to lock it (a low
`RLIMIT_MEMLOCK`, no permission, no `mlock` on this platform); the caller then uses ordinary
memory. The lock ends with the mapping: when the block is garbage-collected, `munmap`
unlocks and frees it, so nothing here needs an unlock call.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import mmap
import os
import sys
from collections.abc import Callable

__all__ = ["mlock_error", "pinned_block"]

MlockFn = Callable[[int, int], int]


def _find_mlock() -> MlockFn | None:
    if sys.platform == "win32":
        return None  # VirtualLock has other rules (the working-set size); not attempted
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        mlock = libc.mlock
    except (OSError, AttributeError):
        return None
    mlock.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
    mlock.restype = ctypes.c_int
    return lambda address, size: int(mlock(address, size))


_mlock: MlockFn | None = _find_mlock()
_last_error = ""


def pinned_block(size: int) -> mmap.mmap | None:
    """An anonymous, private mapping of `size` bytes locked in RAM, or None if locking failed.

    On None, `mlock_error()` says why.
    """
    global _last_error
    mlock = _mlock
    if mlock is None:
        _last_error = f"mlock is not available on {sys.platform}"
        return None
    block = mmap.mmap(-1, max(size, 1))
    anchor = ctypes.c_char.from_buffer(block)  # an export of the mapping, for its address
    address = ctypes.addressof(anchor)
    del anchor  # the export must end, or the mapping could never be closed
    if mlock(address, size) != 0:
        errno = ctypes.get_errno()
        _last_error = f"mlock failed: {os.strerror(errno)} (errno {errno}); see RLIMIT_MEMLOCK (ulimit -l)"
        block.close()
        return None
    return block


def mlock_error() -> str:
    """Why the last `pinned_block` returned None ("" if none did)."""
    return _last_error
