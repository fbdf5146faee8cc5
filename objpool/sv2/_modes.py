"""`BufferPool`'s slot count and its three modes: shared with its compiled twin, which
imports them from here, never from the half-loaded `_buffer_pool`."""

from __future__ import annotations

import enum
from typing import Final

__all__ = ["POOL_CAPACITY", "PoolMode"]

POOL_CAPACITY: Final = 8
"""Slots: at most this many pooled slices are alive at once."""


class PoolMode(enum.Enum):
    """Where a `BufferPool` takes the next message's bytes from."""

    BACK = "back"
    """After the last handed-out slice (the default)."""
    FRONT = "front"
    """Before the first live back slice, once the back run is full and its head was freed."""
    ALLOC = "alloc"
    """Fresh system memory: the pool had no free slot or bytes where its algorithm looks."""
