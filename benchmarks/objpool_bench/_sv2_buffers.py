"""The Sv2 `Buffer` contestants, and the message source and writers every Sv2 workload shares.

Invariant: every contestant is driven through the `Buffer` protocol only, by the same writer
functions, on the same prepared sequence of message sizes and source offsets; so a
difference between two rows is the buffer's and nothing else.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from objpool import ByteBuffer, Pool
from objpool.sv2 import Buffer, BufferFromSystemMemory, BufferPool, PooledBuffer, Slice
from ._baselines import MaxEfficiency, PPoolBuffer

__all__ = [
    "BASELINE",
    "BROKEN",
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
POOL_BYTES: Final = 1 << 16  # BufferPool capacity, as upstream's bench
POOLED_BLOCKS: Final = 8  # blocks of MAX_MSG bytes in PooledBuffer's and PPool's pools: BufferPool's slot count
BASELINE: Final = "BufferFromSystemMemory"
BROKEN: Final = "MaxEfficiency (broken)"

BufferMaker = Callable[[], Buffer]


def buffer_makers() -> dict[str, BufferMaker]:
    """The contestants by name, baseline first."""
    return {
        BASELINE: BufferFromSystemMemory,
        "BufferPool": lambda: BufferPool(POOL_BYTES),
        "PooledBuffer": lambda: PooledBuffer(Pool(lambda: ByteBuffer(MAX_MSG), POOLED_BLOCKS)),
        "PPool": lambda: PPoolBuffer(MAX_MSG, POOLED_BLOCKS),
        BROKEN: lambda: MaxEfficiency(1 << 20),
    }


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
