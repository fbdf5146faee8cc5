"""Drive `objpool.sv2.BufferPool` and the reference port in lockstep and compare them.

Invariant: after every operation both agree on every observable (where the writable bytes
are, slot index, pool or system memory, offset, mode, slot map, pending length), and every
live slice still holds the bytes it was given.
"""

from __future__ import annotations

import ctypes

from objpool.sv2 import BufferPool, PoolMode, Slice
from held import hold
from sv2_reference import IGNORE_INDEX, RefPool, RefSlice, bit

_MODES = {"back": PoolMode.BACK, "front": PoolMode.FRONT, "alloc": PoolMode.ALLOC}


def address(view: memoryview) -> int:
    return ctypes.addressof(ctypes.c_char.from_buffer(view))


def pool_offset(pool: BufferPool, view: memoryview) -> int | None:
    """Offset of `view` in the pool's bytes, or None when it is not pool memory."""
    base: memoryview = pool._mv
    # Without the GIL, slices are cut from the pool's handoff exporter (objpool._views).
    if view.obj is not base.obj and (pool._exporter is None or view.obj is not pool._exporter):
        return None
    if view.nbytes == 0 or base.nbytes == 0:
        return -1  # an empty view has no address to compare; callers skip the offset
    return address(view) - address(base)


def bits_str(bits: int) -> str:
    return "".join("1" if bits & (0x80 >> i) else "-" for i in range(8))


class Twin:
    """One BufferPool and one fixed reference pool, fed the same operations."""

    def __init__(self, capacity: int) -> None:
        self.ref = RefPool(capacity, fixed=True)
        self.pool = BufferPool(capacity)
        self.live: list[tuple[RefSlice, Slice]] = []
        self.counter = 0

    def _writable(self, n: int, data: bytes) -> None:
        where = self.ref.get_writable(n)
        self.ref.fill(where, data)
        view = self.pool.get_writable(n)
        assert len(view) == n
        off = pool_offset(self.pool, view)
        if where[0] == "sys":
            assert off is None, (where, off)
        else:
            assert off is not None, where
            assert off in (-1, where[1]), (where, off)
        view[:] = data
        assert len(self.pool) == len(self.ref)

    def write(self, n: int, split: int | None = None) -> Slice:
        """`W n` (as header-then-payload when `split` is given); returns the new slice."""
        self.counter += 1
        data = bytes((self.counter + i) % 251 for i in range(n))
        if split is None or not 0 < split < n:
            self._writable(n, data)
        else:
            self._writable(split, data[:split])
            self._writable(n - split, data[split:])
        assert bytes(self.pool.get_data_by_ref(n)) == self.ref.pending()
        return self.take()

    def take(self) -> Slice:
        r = self.ref.get_data_owned()
        s = self.pool.get_data_owned()
        assert len(s) == len(r.data)
        assert bytes(s) == r.data
        assert s.from_pool == r.from_pool
        assert s.index == (None if r.index == IGNORE_INDEX else r.index)
        if r.from_pool and r.data:
            assert pool_offset(self.pool, s.view) == r.offset
        self.live.append((r, s))
        hold(s)
        self.check()
        return s

    def release(self, i: int) -> None:
        r, s = self.live.pop(i)
        self.ref.drop(r)
        s.release()
        self.check()

    def check(self) -> None:
        pool, ref = self.pool, self.ref
        assert pool.mode is _MODES[ref.mode_name()], (pool.mode, ref.mode_name())
        assert pool.slot_bits == ref.shared_state, (
            bits_str(pool.slot_bits),
            bits_str(ref.shared_state),
        )
        assert len(pool) == len(ref)
        expected = 0
        spans = []
        for r, s in self.live:
            assert bytes(s) == r.data, "a live slice lost its bytes"
            if s.index is not None:
                expected |= bit(s.index)
            if s.from_pool and len(s):
                off = pool_offset(pool, s.view)
                assert off is not None and off >= 0
                spans.append((off, off + len(s)))
        assert pool.slot_bits == expected, "slot map != live pooled indexes"
        spans.sort()
        for (_, end), (start, _) in zip(spans, spans[1:]):
            assert start >= end, "two live slices share bytes"
