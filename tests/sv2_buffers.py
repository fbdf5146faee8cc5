"""Every Sv2 `Buffer` implementation the decoder and the protocol must work over."""

from __future__ import annotations

from collections.abc import Callable

from objpool import ByteBuffer, Pool
from objpool.sv2 import Buffer, BufferFromSystemMemory, BufferPool, PooledBuffer

BUFFERS: dict[str, Callable[[], Buffer]] = {
    "system": BufferFromSystemMemory,
    "pool-small": lambda: BufferPool(64),  # falls back to system memory for most frames
    "pool": lambda: BufferPool(1 << 16),
    # Small ByteBuffers and a small pool: big frames and busy pools fall back to system memory.
    "pooled-small": lambda: PooledBuffer(Pool(lambda: ByteBuffer(64), 2)),
    "pooled": lambda: PooledBuffer(Pool(lambda: ByteBuffer(1 << 17), 16)),
}
