"""The Sv2 `Buffer` contestants, and the message source and writers every Sv2 workload shares.

Invariant: every contestant is driven through the `Buffer` protocol only, by the same writer
functions, on the same prepared sequence of message sizes and source offsets; so a
difference between two rows is the buffer's and nothing else. `BufferPool` and
`PooledBuffer` are looked up when a workload runs, so the suite still runs (and says which
one is missing) while either is absent.
"""

from __future__ import annotations

import importlib
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from ..sv2 import Buffer, BufferFromSystemMemory, Slice
from ._baselines import MaxEfficiency, PPoolBuffer

__all__ = [
    "BASELINE",
    "CHUNK",
    "MAX_MSG",
    "MIN_MSG",
    "WRITERS",
    "BufferMaker",
    "Writer",
    "POOL_BYTES",
    "Messages",
    "buffer_makers",
    "write_chunked",
    "write_one",
]

# Upstream buffer_sv2's benchmark: messages of 4,385..16,384 bytes written 10 bytes at a time.
MIN_MSG: Final = 4385
MAX_MSG: Final = 16384
CHUNK: Final = 10
POOL_BYTES: Final = 1 << 16  # BufferPool capacity and PooledBuffer block size, as upstream's bench
POOLED_BLOCKS: Final = 8  # ByteBuffers in the PooledBuffer's Pool: BufferPool's slot count
BASELINE: Final = "BufferFromSystemMemory"

BufferMaker = Callable[[], Buffer]


def _optional(module: str, name: str) -> Callable[..., Buffer] | None:
    try:
        found: Callable[..., Buffer] = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None
    return found


def buffer_makers() -> tuple[dict[str, BufferMaker], list[str]]:
    """The contestants by name (baseline first), and a note for each one that is missing."""
    makers: dict[str, BufferMaker] = {BASELINE: BufferFromSystemMemory}
    missing: list[str] = []
    buffer_pool = _optional("objpool.sv2._buffer_pool", "BufferPool")
    if buffer_pool is None:
        missing.append("BufferPool is not available in this build (objpool.sv2._buffer_pool)")
    else:
        makers["BufferPool"] = lambda: buffer_pool(POOL_BYTES)
    pooled = _optional("objpool.sv2._pooled_buffer", "PooledBuffer")
    if pooled is None:
        missing.append("PooledBuffer is not available in this build (objpool.sv2._pooled_buffer)")
    else:
        makers["PooledBuffer"] = lambda: _make_pooled(pooled)
    makers["PPool"] = lambda: PPoolBuffer(MAX_MSG, POOLED_BLOCKS)
    makers["MaxEfficiency (broken)"] = lambda: MaxEfficiency(1 << 20)
    return makers, missing


def _make_pooled(pooled_buffer: Callable[..., Buffer]) -> Buffer:
    from .. import ByteBuffer, Pool

    return pooled_buffer(Pool(lambda: ByteBuffer(MAX_MSG), POOLED_BLOCKS))


@dataclass(frozen=True)
class Messages:
    """A prepared random source and the (offset, size) of each message, seeded."""

    source: memoryview
    plan: list[tuple[int, int]]

    @classmethod
    def prepare(cls, count: int, seed: str) -> Messages:
        rng = random.Random(seed)
        source = memoryview(rng.randbytes(1 << 20))
        plan = []
        for _ in range(count):
            size = rng.randint(MIN_MSG, MAX_MSG)
            plan.append((rng.randrange(len(source) - size), size))
        return cls(source, plan)


def write_chunked(buffer: Buffer, source: memoryview, offset: int, size: int) -> Slice:
    """Upstream's writer: `get_writable(10)` and fill it, until `size` bytes; then take them."""
    get_writable = buffer.get_writable
    end = offset + size
    stop = end - CHUNK
    pos = offset
    while pos <= stop:
        get_writable(CHUNK)[:] = source[pos : pos + CHUNK]
        pos += CHUNK
    if pos < end:
        get_writable(end - pos)[:] = source[pos:end]
    return buffer.get_data_owned()


def write_one(buffer: Buffer, source: memoryview, offset: int, size: int) -> Slice:
    """The whole message in one `get_writable` call; then take it."""
    buffer.get_writable(size)[:] = source[offset : offset + size]
    return buffer.get_data_owned()


Writer = Callable[[Buffer, memoryview, int, int], Slice]
"""Writes `size` bytes of `source` from `offset` into a buffer and takes them as a slice."""

WRITERS: Final[dict[str, Writer]] = {
    "10-byte chunks": write_chunked,
    "one chunk": write_one,
}
