"""Stratum V2 buffers and framing on pooled memory."""

from ._buffer import (
    MAX_SIZE as MAX_SIZE,
    Buffer as Buffer,
    BufferFromSystemMemory as BufferFromSystemMemory,
)
from ._slice import ReleaseCallback as ReleaseCallback, Slice as Slice

__all__ = [
    "MAX_SIZE",
    "Buffer",
    "BufferFromSystemMemory",
    "ReleaseCallback",
    "Slice",
]
