"""Types that mypy must infer for objpool's public API: a file only the type checker reads.

mypy checks it as part of mypy.ini's `files`; pytest does not collect it (the name does not
start with `test_`). `assert_type` fails the mypy run when an inferred type drifts, e.g. if
`Pool(Widget, 2)` stopped being `Pool[Widget]`. tests/test_typing.py also calls every
`check_*` function, so the forms pinned here are known to work at runtime too, and holds
the negative cases that mypy must reject.
"""

from __future__ import annotations

import io
import socket
from collections.abc import Callable
from typing import assert_type

from objpool import (
    Acquisition,
    BufAllocation,
    BufPool,
    BufPoolStats,
    ByteBuffer,
    Lender,
    OwnedRef,
    Pool,
    PoolStats,
    Reset,
    SizeClassStats,
    SizedPool,
    SizedPoolStats,
)


class Widget:
    """A `Reset` object: `Pool(Widget, n)` needs no `reset=`."""

    def __init__(self) -> None:
        self.dirty = False

    def reset(self) -> None:
        self.dirty = False


def new_list() -> list[int]:
    return []


def check_factory_pool() -> None:
    pool = Pool(Widget, 2)
    assert_type(pool, Pool[Widget])
    assert_type(Pool(Widget, capacity=2, name="widgets"), Pool[Widget])
    assert_type(Pool(lambda: Widget(), 2), Pool[Widget])
    assert_type(pool.capacity, int)
    assert_type(pool.lent, int)
    assert_type(pool.free, int)
    assert_type(pool.name, str | None)
    assert_type(pool.closed, bool)

    ref = pool.allocate()
    assert_type(ref, OwnedRef[Widget])
    assert_type(ref.value, Widget)
    assert_type(ref.alive, bool)
    assert_type(ref.pool, Lender)  # one protocol for every lender: a new pool changes no public type
    lender: Lender = pool  # every pool that lends OwnedRefs is a Lender
    lender = SizedPool()
    assert isinstance(lender, Lender)
    assert_type(ref.release(), None)
    assert_type(pool.deallocate(pool.allocate()), None)

    with pool.allocate() as w:
        assert_type(w, Widget)

    maybe = pool.try_allocate()
    assert_type(maybe, OwnedRef[Widget] | None)
    if maybe is not None:
        assert_type(maybe, OwnedRef[Widget])
        maybe.release()

    for timeout in (0.5, None, 1):
        waited = pool.allocate(timeout=timeout)
        assert_type(waited, OwnedRef[Widget])
        waited.release()
    assert_type(pool.waiting, int)

    stats = pool.stats()
    assert_type(stats, PoolStats)
    assert_type(stats.allocations, int)
    assert_type(stats.high_water, int)
    assert_type(stats.closed, bool)
    assert_type(pool.close(), None)


def check_bufpool() -> None:
    pool = BufPool(4096, 1 << 20)
    with pool.allocate(4, timeout=0.5) as block:
        assert_type(block, BufAllocation)
        assert_type(len(block), int)
        assert_type(block.view, memoryview)
        for buffer in block:
            assert_type(buffer, memoryview)
    assert_type(pool.stats(), BufPoolStats)
    assert_type(pool.trim(), int)


async def check_buf_acquire() -> None:
    pool = BufPool(4096, 1 << 20)
    block = await pool.acquire(2)
    assert_type(block, BufAllocation)
    block.release()
    async with pool.acquire(1, timeout=None) as held:
        assert_type(held, BufAllocation)


async def check_acquire() -> None:
    pool = Pool(Widget, 2)
    assert_type(pool.acquire(), Acquisition[OwnedRef[Widget], Widget])
    ref = await pool.acquire(timeout=1.0)
    assert_type(ref, OwnedRef[Widget])
    async with pool.acquire(timeout=None) as w:
        assert_type(w, Widget)


def check_reset_callable_pools() -> None:
    # A bare `Pool(list, 8, reset=list.clear)` cannot tell what the lists hold, so mypy asks
    # for an annotation ("Need type annotation"), as it does for `x = []`. These forms say it.
    annotated: Pool[list[int]] = Pool(list, 8, reset=list.clear)
    assert_type(annotated, Pool[list[int]])
    assert_type(Pool[list[int]](list, 8, reset=list.clear), Pool[list[int]])
    assert_type(Pool(new_list, 8, reset=list.clear), Pool[list[int]])
    assert_type(Pool(bytearray, 2, reset=bytearray.clear), Pool[bytearray])
    assert_type(Pool(dict[str, int], 2, reset=dict.clear), Pool[dict[str, int]])

    def forget(d: dict[str, int]) -> None:
        d.clear()

    assert_type(Pool(dict[str, int], 2, reset=forget), Pool[dict[str, int]])
    # A reset may return anything (`reset: Callable[[T], object]`) and may take a supertype.
    assert_type(Pool(Widget, 2, reset=lambda w: w.reset()), Pool[Widget])
    object_reset: Callable[[object], object] = id
    assert_type(Pool(Widget, 2, reset=object_reset), Pool[Widget])

    with annotated.allocate() as xs:
        assert_type(xs, list[int])
        xs.append(1)


def check_from_items() -> None:
    widgets = Pool.from_items([Widget(), Widget()])
    assert_type(widgets, Pool[Widget])
    assert_type(Pool.from_items((Widget() for _ in range(3)), name="gen"), Pool[Widget])
    assert_type(Pool.from_items([[1], [2]], reset=list.clear), Pool[list[int]])
    assert_type(Pool.from_items([bytearray(8)], reset=bytearray.clear), Pool[bytearray])
    # Objects of different `Reset` classes: say the common type, and the pool lends `Reset`.
    mixed: list[Reset] = [Widget(), ByteBuffer(8)]
    assert_type(Pool.from_items(mixed), Pool[Reset])


def check_bytebuffer() -> None:
    pool = Pool(lambda: ByteBuffer(64 * 1024), 32)
    assert_type(pool, Pool[ByteBuffer])
    assert_type(Pool(lambda: ByteBuffer(16, zero_on_reset=True), 2), Pool[ByteBuffer])
    with pool.allocate() as buf:
        assert_type(buf, ByteBuffer)
        assert_type(buf.capacity, int)
        assert_type(buf.free, int)
        assert_type(buf.zero_on_reset, bool)
        assert_type(len(buf), int)
        assert_type(buf.write(b"abc"), int)
        assert_type(buf.write(bytearray(b"de")), int)
        assert_type(buf.write(memoryview(b"f")), int)
        assert_type(buf.reserve(2), memoryview)
        view = buf.writable()
        assert_type(view, memoryview)
        view[:1] = b"g"
        assert_type(buf.commit(1), None)
        assert_type(buf.readinto(io.BytesIO(b"xyz")), int)
        assert_type(buf.view(), memoryview)
        assert_type(bytes(buf), bytes)
        assert_type(buf.reset(), None)


def check_bytebuffer_sources(path: str, sock: socket.socket) -> None:
    """Files and sockets are accepted by `readinto` (never called: it needs real I/O)."""
    buf = ByteBuffer(1024)
    with open(path, "rb") as binary:
        assert_type(buf.readinto(binary), int)
    with open(path, "rb", buffering=0) as raw:
        assert_type(buf.readinto(raw), int)
    assert_type(buf.readinto(sock), int)


def check_sized_pool() -> None:
    pool = SizedPool(min_size=4096, max_size=1 << 20, max_retained=None, zero_on_reset=True)
    ref = pool.allocate(10)
    assert_type(ref, OwnedRef[ByteBuffer])
    ref.release()
    with pool.allocate(10) as buf:
        assert_type(buf, ByteBuffer)
    assert_type(pool.deallocate(pool.allocate(1)), None)
    assert_type(pool.trim(), int)
    assert_type(pool.trim(30.0), int)
    stats = pool.stats()
    assert_type(stats, SizedPoolStats)
    assert_type(stats.classes, tuple[SizeClassStats, ...])
    assert_type(pool.min_size, int)
    assert_type(SizedPool(thread_cache=None).thread_cache, bool)
    assert_type(SizedPool(thread_cache=True).thread_cache, bool)


RUNTIME_CHECKS: list[Callable[[], None]] = [
    check_factory_pool,
    check_reset_callable_pools,
    check_from_items,
    check_bytebuffer,
    check_bufpool,
    check_sized_pool,
]
"""The checks that tests/test_typing.py also runs (the rest need real files or sockets)."""
