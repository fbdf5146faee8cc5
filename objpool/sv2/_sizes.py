"""The sizes every Sv2 buffer accepts, and their checks: shared by the buffers and their
compiled twins (which import them from here, never from a half-loaded reference module)."""

from __future__ import annotations

from typing import Final

from .._validate import check_int

__all__ = ["MAX_SIZE", "MIN_ALLOC", "NO_BYTES", "check_capacity", "check_size"]

MAX_SIZE: Final = 1 << 32
"""Largest size or capacity accepted, in bytes (an Sv2 frame is at most 6 + 2**24 - 1 bytes)."""


def check_size(n: object, name: str = "n") -> int:
    """Return `n` as an int in 0..MAX_SIZE, or raise the error that names the rule.

    Raises:
        TypeError: `n` is not an int (bools are refused too).
        ValueError: `n` is negative or larger than `MAX_SIZE`.
    """
    return check_int(name, n, 0, MAX_SIZE)


def check_capacity(capacity: object) -> int:
    """`check_size` for constructor capacities."""
    return check_int("capacity", capacity, 0, MAX_SIZE)


NO_BYTES: Final = memoryview(bytearray())  # what an empty request gets: no allocation
MIN_ALLOC: Final = 64  # BufferFromSystemMemory's first allocation for a message, at least
