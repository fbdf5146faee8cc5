"""`BufPool`'s thread caches: each thread keeps up to 4 released blocks, their budget still
charged (`BufPool.thread_cache`).

On by default only without a GIL; here each test turns them on, so every build runs them.
Threads run one after another where a test needs a block left in a cache: the order is then
the test's, not the scheduler's.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import threading
import warnings
from collections.abc import Callable

import pytest

from objpool import BufPool, ForeignRefError, PoolClosedError, PoolExhaustedError, StaleRefError
from objpool._threadnumber import thread_number

SIZE = 64


@pytest.fixture(autouse=True)
def numbered() -> None:
    """The test's own thread has a number: else its first allocation could take the number,
    and the cache, of a thread that ended (see objpool._threadnumber)."""
    thread_number()


def in_a_thread(action: Callable[[], object]) -> None:
    thread = threading.Thread(target=action)
    thread.start()
    thread.join()


def kept(pool: BufPool) -> list[int]:
    """The buffer counts of the blocks every cache keeps."""
    return sorted(entry[2] for cache in pool._caches or () if cache is not None for entry in cache.kept)


def kept_by_a_thread(pool: BufPool, *sizes: int) -> None:
    """In a thread that then ends: allocate one run of each size, then release them all."""

    def run() -> None:
        allocations = [pool.allocate(n) for n in sizes]
        for allocation in allocations:
            allocation.release()

    in_a_thread(run)


@pytest.mark.parametrize(("gil", "cached"), [(True, False), (False, True)])
def test_thread_caches_are_on_by_default_only_without_a_gil(
    monkeypatch: pytest.MonkeyPatch, gil: bool, cached: bool
) -> None:
    monkeypatch.setattr(sys, "_is_gil_enabled", lambda: gil, raising=False)
    assert cached == BufPool(SIZE, SIZE * 64).thread_cache
    assert BufPool(SIZE, SIZE * 64, thread_cache=True).thread_cache
    assert not BufPool(SIZE, SIZE * 64, thread_cache=False).thread_cache


def test_a_thread_s_cache_serves_its_cycle_with_the_same_block() -> None:
    pool = BufPool(SIZE, SIZE * 64, thread_cache=True)
    with pool.allocate(2) as first:
        first.view[:] = b"x" * 2 * SIZE
    assert [2] == kept(pool)
    for i in range(5):
        with pool.allocate(2) as again:
            assert bytes(again.view) == (b"x" if i == 0 else b"%d" % (i - 1)) * 2 * SIZE, "the kept block comes back"
            again.view[:] = b"%d" % i * 2 * SIZE
    s = pool.stats()
    assert (s.allocations, s.deallocations, s.lent, s.hits) == (6, 6, 0, 5)
    assert (s.lent_bytes, s.idle_bytes, s.high_water_bytes) == (0, 2 * SIZE, 2 * SIZE)
    assert "0/64" in repr(pool)


def test_a_cache_serves_requests_of_the_size_it_kept_and_shares_the_rest_of_the_class() -> None:
    pool = BufPool(SIZE, SIZE * 64, thread_cache=True)
    with pool.allocate(3) as three:
        three.view[:] = b"3" * 3 * SIZE
    pool.allocate(1).release()
    assert [1, 3] == kept(pool)
    with pool.allocate(4) as four:  # its class's block, kept for 3: shared, then reused as any idle block
        assert bytes(four.view[: 3 * SIZE]) == b"3" * 3 * SIZE
        assert [1] == kept(pool)
        s = pool.stats()
        assert (s.hits, s.lent_bytes, s.idle_bytes) == (1, 4 * SIZE, 1 * SIZE)
    assert [1, 4] == kept(pool)
    with pool.allocate(2):  # class 1: nothing kept in it, a new block
        assert [1, 4] == kept(pool)
    with pool.allocate(4):
        assert [1, 2] == kept(pool)
    assert (pool.stats().lent, pool.stats().hits) == (0, 2)


def test_a_cache_keeps_at_most_4_blocks() -> None:
    pool = BufPool(SIZE, SIZE * 64, thread_cache=True)
    allocations = [pool.allocate(1) for _ in range(6)]
    for allocation in allocations:
        allocation.release()
    assert [1, 1, 1, 1] == kept(pool)
    s = pool.stats()
    assert (s.lent, s.lent_bytes, s.idle_bytes) == (0, 0, 6 * SIZE)


def test_a_cache_keeps_a_block_only_while_the_budget_has_4_times_it_for_the_others() -> None:
    pool = BufPool(SIZE, SIZE * 10, thread_cache=True)
    a, b = pool.allocate(2), pool.allocate(2)  # 6 of 10 free: less than 4 x 2
    a.release()  # judged with its own 2 still charged: 6 free
    assert [] == kept(pool)
    b.release()
    assert [2] == kept(pool), "8 of 10 free (its own 2 still charged): 4 x 2 for the others"
    with pool.allocate(2):
        pass
    assert [2] == kept(pool)


def test_a_request_that_does_not_fit_takes_the_budget_back_from_every_cache() -> None:
    pool = BufPool(SIZE, SIZE * 8, thread_cache=True)
    kept_by_a_thread(pool, 1, 1)
    assert [1, 1] == kept(pool)
    with pool.allocate(8, timeout=0) as everything:  # 6 free in the shared budget, 8 in all
        assert len(everything) == 8
        assert [] == kept(pool)
        assert pool.try_allocate(1) is None
    s = pool.stats()
    assert (s.lent, s.exhausted, s.allocations, s.deallocations) == (0, 1, 3, 3)


def test_while_anyone_waits_a_release_goes_to_the_line_not_to_a_cache() -> None:
    pool = BufPool(SIZE, SIZE * 64, thread_cache=True)
    held = pool.allocate(8)
    got: list[int] = []

    def wait() -> None:
        with pool.allocate(60, timeout=10) as allocation:
            got.append(len(allocation))

    waiter = threading.Thread(target=wait)
    waiter.start()
    while not pool.stats().waiting:
        threading.Event().wait(0.001)
    held.release()  # kept, it would leave 56 free: the waiter would wait out its 10 s
    waiter.join(10)
    assert got == [60]
    assert [] == kept(pool)


def test_a_waiter_finds_a_block_kept_as_it_joined_the_line(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nobody releases after the waiter joins: its own look between naps reclaims the block."""
    pool = BufPool(SIZE, SIZE * 16, thread_cache=True)
    kept_by_a_thread(pool, 2)
    held = pool.allocate(14)
    reclaim = BufPool._reclaim_cached
    looks: list[int] = []

    def reclaim_from_the_second_look(self: BufPool) -> None:  # the first is the one before the wait
        looks.append(1)
        if len(looks) > 1:
            reclaim(self)

    monkeypatch.setattr(BufPool, "_reclaim_cached", reclaim_from_the_second_look)
    with pool.allocate(2, timeout=10) as got:
        assert len(got) == 2
    assert len(looks) >= 2
    held.release()


def test_tasks_take_the_budget_back_from_the_caches() -> None:
    pool = BufPool(SIZE, SIZE * 8, thread_cache=True)
    kept_by_a_thread(pool, 1)
    assert [1] == kept(pool)

    async def main() -> int:
        async with pool.acquire(8, timeout=0) as allocation:
            return len(allocation)

    assert asyncio.run(main()) == 8


def test_close_and_trim_free_the_kept_blocks() -> None:
    pool = BufPool(SIZE, SIZE * 64, thread_cache=True)
    kept_by_a_thread(pool, 1, 2)
    assert pool.trim(60.0) == 0, "younger than a minute: kept, now in the shared idle blocks"
    assert [] == kept(pool)
    assert pool.stats().idle_bytes == 3 * SIZE
    kept_by_a_thread(pool, 1)
    assert pool.trim() == 3 * SIZE
    kept_by_a_thread(pool, 1)
    pool.close()
    s = pool.stats()
    assert (s.idle_bytes, s.lent_bytes, s.closed) == (0, 0, True)
    with pytest.raises(PoolClosedError):
        pool.allocate(1)


def test_a_release_after_close_keeps_nothing() -> None:
    pool = BufPool(SIZE, SIZE * 64, thread_cache=True)
    allocation = pool.allocate(1)
    pool.close()
    allocation.release()
    assert [] == kept(pool)
    assert pool.stats().idle_bytes == 0


def test_an_allocation_from_a_cache_behaves_as_any_other() -> None:
    pool = BufPool(SIZE, SIZE * 64, thread_cache=True, name="cached")
    other = BufPool(SIZE, SIZE * 64, thread_cache=True)
    pool.allocate(1).release()
    allocation = pool.allocate(1)
    assert allocation.pool is pool
    assert "live" in repr(allocation)
    with pytest.raises(ForeignRefError):
        other.deallocate(allocation)
    pool.deallocate(allocation)
    with pytest.raises(StaleRefError):
        allocation.release()
    leaked = pool.allocate(1)
    assert 0 == len(kept(pool))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del leaked
        gc.collect()
    assert [ResourceWarning] == [w.category for w in caught]
    s = pool.stats()
    assert (s.leaks, s.lent, s.lent_bytes, s.allocations, s.deallocations) == (1, 0, 0, 3, 2)


def test_a_full_pool_with_caches_reports_exhaustion_as_without() -> None:
    pool = BufPool(SIZE, SIZE * 4, thread_cache=True)
    held = pool.allocate(4)
    with pytest.raises(PoolExhaustedError, match="0 of 4 free"):
        pool.allocate(1)
    held.release()
