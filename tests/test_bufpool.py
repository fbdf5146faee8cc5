"""BufPool: contiguous buffers under a memory budget; lending, reuse, waiting, fairness, leaks."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from collections.abc import Callable

import pytest

from objpool import Acquisition, BufAllocation, BufPool, ForeignRefError, PoolClosedError, PoolExhaustedError, StaleRefError

BOUND_S = 5.0


def until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + BOUND_S
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.001)


class Waiting(threading.Thread):
    def __init__(self, pool: BufPool, n: int, timeout: float | None = BOUND_S) -> None:
        super().__init__(daemon=True)
        self.pool, self.n, self.timeout = pool, n, timeout
        self.got: BufAllocation | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.got = self.pool.allocate(self.n, timeout=self.timeout)
        except BaseException as exc:  # recorded for the test
            self.error = exc

    def done(self) -> Waiting:
        self.join(BOUND_S)
        assert not self.is_alive()
        return self


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        ((0, 100), ValueError, r"^buffer_size must be >= 1, got int 0$"),
        ((64, 32), ValueError, r"^max_memory must be >= 64, got int 32$"),
        ((True, 100), TypeError, r"^buffer_size must be an int, got bool True$"),
    ],
)
def test_bad_construction_is_refused(args: tuple[object, object], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        BufPool(*args)  # type: ignore[arg-type]  # wrong on purpose


def test_an_allocation_is_n_contiguous_buffers() -> None:
    pool = BufPool(4, 64)
    with pool.allocate(3) as a:
        assert len(a) == 3 and a.alive
        views = list(a)
        assert [v.nbytes for v in views] == [4, 4, 4]
        for i, v in enumerate(views):
            v[:] = bytes([i]) * 4
        assert bytes(a.view) == b"\0" * 4 + b"\1" * 4 + b"\2" * 4
        assert pool.stats().lent_bytes == 12
    assert pool.stats().lent_bytes == 0
    with pytest.raises(ValueError):
        views[0].tobytes()  # released with the allocation


def test_requests_that_can_never_fit_are_refused_at_once() -> None:
    pool = BufPool(4, 16)
    with pytest.raises(ValueError, match=r"^n must be <= 4 .*a request larger than the budget could never be served, got int 5$"):
        pool.allocate(5)
    with pytest.raises(ValueError, match=r"^n must be >= 1, got int 0$"):
        pool.allocate(0)
    with pytest.raises(ValueError):
        pool.acquire(5)


def test_exhaustion_raises_at_once_by_default_and_is_counted() -> None:
    pool = BufPool(4, 16)
    held = pool.allocate(3)
    with pytest.raises(PoolExhaustedError, match=r"^2 buffers of 4 bytes do not fit: 1 of 4 free$"):
        pool.allocate(2)
    assert pool.stats().exhausted == 1
    held.release()


def test_release_is_linear() -> None:
    pool = BufPool(4, 16)
    a = pool.allocate(2)
    a.release()
    with pytest.raises(StaleRefError):
        a.release()
    with pytest.raises(StaleRefError):
        a.view  # noqa: B018 - the read is the test
    with pytest.raises(TypeError):
        BufAllocation()


def test_released_blocks_are_reused_by_size_class_and_trim_frees_them() -> None:
    pool = BufPool(1024, 64 * 1024)
    pool.allocate(4).release()
    assert pool.stats().idle_bytes == 4 * 1024
    with pool.allocate(3):  # class 4: the idle block, no new memory
        s = pool.stats()
        assert (s.hits, s.idle_bytes) == (1, 0)
    assert pool.trim() == 4 * 1024
    assert pool.stats().idle_bytes == 0


def test_a_waiter_is_woken_when_enough_budget_comes_back() -> None:
    pool = BufPool(4, 16)
    held = [pool.allocate(2), pool.allocate(2)]
    waiter = Waiting(pool, 3)
    waiter.start()
    until(lambda: pool.stats().waiting == 1)
    held[0].release()  # 2 free: not enough for 3
    time.sleep(0.01)
    assert waiter.got is None
    held[1].release()
    waiter.done()
    assert waiter.got is not None and len(waiter.got) == 3
    waiter.got.release()
    assert pool.stats().waited_seconds > 0


def test_head_of_line_blocking_keeps_a_large_request_from_starving() -> None:
    pool = BufPool(1, 4)
    held = [pool.allocate(1) for _ in range(4)]
    large = Waiting(pool, 3)
    large.start()
    until(lambda: pool.stats().waiting == 1)
    small = Waiting(pool, 1)
    small.start()
    until(lambda: pool.stats().waiting == 2)
    held.pop().release()  # 1 free: the small one would fit, but waits behind the large one
    time.sleep(0.01)
    assert small.got is None and large.got is None
    with pytest.raises(PoolExhaustedError, match=r"2 waiting ahead$"):
        pool.allocate(1)  # and so does a newcomer
    held.pop().release()
    held.pop().release()  # 3 free: the large one is served first
    large.done()
    assert large.got is not None and small.got is None
    held.pop().release()  # 1 free: now the small one
    small.done()
    assert small.got is not None
    large.got.release()
    small.got.release()
    assert pool.stats().lent_bytes == 0


def test_a_leaked_allocation_warns_returns_its_budget_and_is_not_reused() -> None:
    pool = BufPool(4, 16)
    with pytest.warns(ResourceWarning, match=r"garbage-collected while still live"):
        pool.allocate(4)
        gc.collect()
    s = pool.stats()
    assert (s.lent_bytes, s.leaks, s.idle_bytes) == (0, 1, 0)


def test_close_wakes_waiters() -> None:
    pool = BufPool(4, 16)
    held = pool.allocate(4)
    waiter = Waiting(pool, 1, timeout=None)
    waiter.start()
    until(lambda: pool.stats().waiting == 1)
    pool.close()
    assert isinstance(waiter.done().error, PoolClosedError)
    held.release()
    with pytest.raises(PoolClosedError):
        pool.allocate(1)


def test_acquire_from_asyncio_and_cancellation_at_hand_off() -> None:
    async def main() -> None:
        pool = BufPool(4, 16)
        async with pool.acquire(2) as a:
            assert len(a) == 2
        held = await pool.acquire(4)
        first = asyncio.ensure_future(pool.acquire(4))
        second = asyncio.ensure_future(pool.acquire(4))
        while pool.stats().waiting < 2:
            await asyncio.sleep(0)
        held.release()  # granted to `first`...
        first.cancel()  # ...cancelled before it runs: the budget goes to `second`
        got = await asyncio.wait_for(second, BOUND_S)
        assert first.cancelled() and len(got) == 4
        got.release()
        assert pool.stats().lent_bytes == 0

    asyncio.run(main())


def test_a_leaked_allocation_s_budget_serves_a_waiter() -> None:
    pool = BufPool(4, 16)
    waiter = Waiting(pool, 4)
    held = pool.allocate(4)
    waiter.start()
    until(lambda: pool.stats().waiting == 1)
    with pytest.warns(ResourceWarning):
        del held  # found by the collector, which wakes nobody: the waiter looks itself
        gc.collect()
    waiter.done()
    assert waiter.got is not None and waiter.error is None
    waiter.got.release()


def test_stress_threads_and_tasks_share_the_budget_exactly() -> None:
    """Random sizes, timeouts and cancellations from threads and tasks; marks written into
    each allocation's bytes prove no byte is lent twice, and at the end no budget is lost."""
    import random

    pool = BufPool(8, 8 * 10)
    stop = time.monotonic() + 1.0
    errors: list[BaseException] = []

    def use(block: BufAllocation, mark: int) -> None:
        view = block.view
        view[:] = bytes([mark]) * len(view)
        time.sleep(random.random() * 0.0003)
        if view.tobytes() != bytes([mark]) * len(view):
            raise AssertionError("bytes changed while owned")
        block.release()

    def thread_worker(n: int) -> None:
        rng = random.Random(n)
        try:
            while time.monotonic() < stop:
                try:
                    block = pool.allocate(rng.randint(1, 6), timeout=rng.choice([0, 0.0005, 0.003]))
                except PoolExhaustedError:
                    continue
                use(block, n)
        except BaseException as exc:
            errors.append(exc)

    async def task_worker(n: int) -> None:
        rng = random.Random(100 + n)
        while time.monotonic() < stop:
            attempt = asyncio.ensure_future(pool.acquire(rng.randint(1, 6), timeout=rng.choice([0.0005, 0.003, None])))
            if rng.random() < 0.3:
                await asyncio.sleep(rng.random() * 0.001)
                attempt.cancel()
            try:
                block = await attempt
            except (asyncio.CancelledError, PoolExhaustedError):
                continue
            use(block, 50 + n)
            await asyncio.sleep(0)

    async def tasks() -> None:
        await asyncio.gather(*(task_worker(n) for n in range(3)))

    workers = [threading.Thread(target=thread_worker, args=(n,)) for n in range(3)]
    workers.append(threading.Thread(target=lambda: asyncio.run(tasks())))
    for t in workers:
        t.start()
    for t in workers:
        t.join(BOUND_S + 2)
        assert not t.is_alive(), "a worker is stuck"
    assert not errors, errors
    s = pool.stats()
    assert (s.lent_bytes, s.waiting) == (0, 0)
    assert s.allocations > 100 and s.high_water_bytes <= s.budget_bytes


def test_a_leak_warning_says_where_the_allocation_was_made() -> None:
    import tracemalloc

    tracemalloc.start(25)
    try:
        pool = BufPool(4, 16)
        with pytest.warns(ResourceWarning, match=r"allocated at .*test_bufpool\.py:\d+"):
            pool.allocate(2)  # dropped at once, on this line
            gc.collect()
    finally:
        tracemalloc.stop()


# -- the pools' common vocabulary, and idle memory under the budget ---------------------------


def test_a_request_of_the_whole_odd_sized_budget_is_served() -> None:
    """A budget of 5 buffers lets a request of 5 take a block of 8: its size class was past
    the end of the idle lists (IndexError) until there was one list per class a request needs."""
    pool = BufPool(64, 5 * 64)
    with pool.allocate(5) as allocation:
        assert (5, 5 * 64) == (len(allocation), len(allocation.view))
    stats = pool.stats()
    assert (0, 0) == (stats.lent_bytes, stats.idle_bytes), "an 8-buffer block does not fit a 5-buffer budget idle"


def test_idle_blocks_count_against_the_budget_and_make_room() -> None:
    pool = BufPool(64, 8 * 64)
    pool.allocate(2).release()
    pool.allocate(1).release()
    assert (0, 3 * 64) == (pool.stats().lent_bytes, pool.stats().idle_bytes)
    with pool.allocate(6):  # a new 8-block: the idle 2-block (largest class first) makes room
        stats = pool.stats()
        assert (6 * 64, 1 * 64) == (stats.lent_bytes, stats.idle_bytes)
        assert stats.lent_bytes + stats.idle_bytes <= stats.budget_bytes
    stats = pool.stats()
    assert (0, 1 * 64) == (stats.lent_bytes, stats.idle_bytes), "the 8-block does not fit idle: freed"
    with pool.allocate(1):
        assert (0, 1) == (pool.stats().idle_bytes, pool.stats().hits), "the idle 1-block, reused"
    assert (4, 4, 0, 0) == (pool.stats().allocations, pool.stats().deallocations, pool.stats().lent, pool.stats().leaks)


def test_deallocate_try_allocate_closed_and_name() -> None:
    pool, other = BufPool(64, 4 * 64, name="rx"), BufPool(64, 4 * 64)
    assert (pool.name, other.name) == ("rx", None)
    assert repr(pool) == "<BufPool 'rx' 0/4 x 64 bytes in use>"
    allocation = pool.allocate(3)
    assert allocation.pool is pool
    assert pool.try_allocate(2) is None
    with pytest.raises(ForeignRefError, match=r"^<BufAllocation live 3 x 64 bytes> was lent by another pool, not by <BufPool 0/4 x 64 bytes in use>$"):
        other.deallocate(allocation)
    with pytest.raises(TypeError, match=r"^allocation must be a BufAllocation, got bytearray"):
        pool.deallocate(bytearray(1))  # type: ignore[arg-type]  # deliberately bad
    pool.deallocate(allocation)
    with pytest.raises(StaleRefError):
        pool.deallocate(allocation)
    with pytest.raises(TypeError, match=r"^name must be a str or None, got int 1$"):
        BufPool(64, 64, name=1)  # type: ignore[arg-type]  # deliberately bad
    assert not pool.closed
    pool.allocate(1).release()
    assert pool.stats().idle_bytes == 64 + 0, "the 4-block went to make room for the new 1-block"
    held = pool.allocate(2)
    assert pool.stats().idle_bytes == 64
    pool.close()
    pool.close()
    assert pool.closed and pool.stats().closed and pool.stats().idle_bytes == 0
    with pytest.raises(PoolClosedError, match=r"^<BufPool 'rx' 2/4 x 64 bytes in use, closed> is closed and lends nothing more$"):
        pool.try_allocate(1)
    held.release()  # still allowed; its block is freed, not kept
    assert (0, 0) == (pool.stats().lent_bytes, pool.stats().idle_bytes)


def test_trim_frees_the_blocks_idle_longer_than_max_idle_seconds() -> None:
    pool = BufPool(64, 8 * 64)
    pool.allocate(2).release()
    assert 0 == pool.trim(max_idle_seconds=3600.0)
    assert 2 * 64 == pool.stats().idle_bytes
    with pytest.raises(ValueError, match=r"^max_idle_seconds must be a number of seconds >= 0, got int -1$"):
        pool.trim(-1)
    assert 2 * 64 == pool.trim()


def test_acquire_returns_the_one_acquisition_class_used_once() -> None:
    pool = BufPool(64, 4 * 64)

    async def main() -> None:
        acquisition = pool.acquire(2)
        assert isinstance(acquisition, Acquisition)
        async with acquisition as allocation:
            assert allocation.alive
        assert not allocation.alive
        with pytest.raises(RuntimeError, match=r"^this Acquisition was already used; call pool.acquire\(\) again$"):
            async with acquisition:
                pass
        allocation = await pool.acquire(1)
        allocation.release()

    asyncio.run(main())
