"""`Pool`'s thread caches: each thread keeps up to 4 free slots of its own (`Pool.thread_cache`).

On by default only without a GIL; here each test turns them on, so every build runs them.
Threads are run one after another where a test needs a slot left in a cache: the order is
then the test's, not the scheduler's.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import threading
from collections.abc import Callable

import pytest

from objpool import ForeignRefError, Pool, PoolExhaustedError, StaleRefError
from objpool._threadnumber import thread_number


class Widget:
    def reset(self) -> None:
        pass


def in_a_thread(action: Callable[[], object]) -> None:
    thread = threading.Thread(target=action)
    thread.start()
    thread.join()


def cached_by(pool: Pool[Widget], count: int) -> None:
    """In a thread that then ends: allocate `count` objects, then release them all: the first
    4 back to the empty shared stack, the next 4 into that thread's cache, the rest back."""

    def run() -> None:
        refs = [pool.allocate() for _ in range(count)]
        for ref in refs:
            ref.release()

    in_a_thread(run)


@pytest.mark.parametrize(("gil", "cached"), [(True, False), (False, True)])
def test_thread_caches_are_on_by_default_only_without_a_gil(
    monkeypatch: pytest.MonkeyPatch, gil: bool, cached: bool
) -> None:
    monkeypatch.setattr(sys, "_is_gil_enabled", lambda: gil, raising=False)
    assert cached == Pool(Widget, 2).thread_cache
    assert cached == Pool.from_items([Widget()]).thread_cache
    assert Pool(Widget, 2, thread_cache=True).thread_cache
    assert not Pool(Widget, 2, thread_cache=False).thread_cache


def test_a_thread_s_cache_serves_its_cycle_newest_first() -> None:
    pool = Pool(Widget, 8, thread_cache=True)
    first, second = pool.allocate(), pool.allocate()
    a, b = first.value, second.value
    first.release()
    second.release()
    for _ in range(5):
        with pool.allocate() as obj:
            assert obj is b, "the newest release comes back first"
    s = pool.stats()
    assert (s.allocations, s.deallocations, s.lent, s.free, s.high_water) == (7, 7, 0, 8, 2)
    with pool.allocate() as x, pool.allocate() as y:
        assert (x, y) == (b, a)


def test_a_cache_keeps_at_most_4_slots() -> None:
    pool = Pool(Widget, 10, thread_cache=True)
    refs = [pool.allocate() for _ in range(6)]
    for ref in refs:
        ref.release()
    assert 4 == sum(len(c.free) for c in pool._caches or () if c is not None)
    assert (10, 0) == (pool.free, pool.lent)


def test_a_cache_keeps_a_slot_only_while_the_stack_has_4_for_the_others() -> None:
    pool = Pool(Widget, 6, thread_cache=True)
    refs = [pool.allocate() for _ in range(6)]
    objects = [ref.value for ref in refs]
    for ref in refs:
        ref.release()
    # The first 4 releases found fewer than 4 on the stack and went there; the others were kept.
    assert 4 == len(pool._free)
    other: list[Widget] = []

    def take() -> None:
        with pool.allocate() as obj:
            other.append(obj)

    in_a_thread(take)
    assert other == objects[3:4], "another thread gets the newest shared slot, not a cached one"
    small = Pool(Widget, 4, thread_cache=True)
    cached_by(small, 4)
    assert 4 == len(small._free), "a pool of 4 is one shared stack: its line decides who is next"


def test_a_thread_takes_slots_from_other_threads_caches_when_the_stack_is_empty() -> None:
    pool = Pool(Widget, 6, thread_cache=True)
    cached_by(pool, 6)
    assert pool.free == 6 and len(pool._free) < 6, "the thread left slots in its cache"
    refs = [pool.allocate() for _ in range(6)]  # timeout=0: nothing waits, nothing is refused
    assert len({id(ref.value) for ref in refs}) == 6
    assert pool.try_allocate() is None
    with pytest.raises(PoolExhaustedError):
        pool.allocate()
    s = pool.stats()
    assert (s.lent, s.free, s.allocations, s.exhausted) == (6, 0, 12, 2)
    for ref in refs:
        ref.release()
    assert (0, 6) == (pool.lent, pool.free)


def test_a_waiter_is_handed_a_slot_kept_in_a_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """A release can land in a cache just after a waiter looked there and just before it
    queued: the waiter, once queued, looks again. Driven here by hiding the caches from the
    look before the wait, so that the only way out is the one in the line."""
    pool = Pool(Widget, 6, thread_cache=True)
    cached_by(pool, 6)
    shared = [pool.allocate() for _ in range(len(pool._free))]
    monkeypatch.setattr(Pool, "_lend_stolen", lambda self: None)
    ref = pool.allocate(timeout=5)  # would wait the whole 5 s, then raise, if the line missed it
    assert ref.value not in [r.value for r in shared]
    assert (1, 0) == (pool.free, pool.waiting), "the other cached slot is still there"
    ref.release()
    for r in shared:
        r.release()


def test_a_task_takes_slots_from_the_caches() -> None:
    pool = Pool(Widget, 8, thread_cache=True)
    cached_by(pool, 8)
    assert 4 == len(pool._free)

    async def take_all() -> int:
        refs = [await pool.acquire(timeout=0) for _ in range(8)]
        objects = {id(ref.value) for ref in refs}
        for ref in refs:
            ref.release()
        return len(objects)

    assert 8 == asyncio.run(take_all())


def test_a_new_thread_inherits_an_ended_thread_s_number_and_cache() -> None:
    pool = Pool(Widget, 6, thread_cache=True)
    numbers: list[int] = []
    for _ in range(3):
        in_a_thread(lambda: numbers.append(thread_number()))
    assert numbers[0] == numbers[1] == numbers[2], "an ended thread's number is given again"
    cached_by(pool, 6)
    caches = [c for c in pool._caches or () if c is not None]
    assert len(caches) == 1 and caches[0].free
    cached_by(pool, 2)  # served by the same cache
    assert [c for c in pool._caches or () if c is not None] == caches
    assert pool.stats().allocations == 8


def test_thread_numbers_are_unique_among_live_threads() -> None:
    start = threading.Barrier(9)
    numbers: list[int] = []

    def run() -> None:
        numbers.append(thread_number())
        start.wait()

    threads = [threading.Thread(target=run) for _ in range(8)]
    for thread in threads:
        thread.start()
    start.wait()  # all 8 alive at once
    for thread in threads:
        thread.join()
    assert len(set(numbers + [thread_number()])) == 9


def test_a_handle_lent_from_a_cache_behaves_as_any_other() -> None:
    """The compiled build's handle from a cache points at the cache, not the pool (threads
    sharing the pool then do not all count references to it): nothing of that shows."""
    pool = Pool(Widget, 6, thread_cache=True, name="p")
    other = Pool(Widget, 1, thread_cache=True)
    pool.allocate().release()  # its slot goes to this thread's cache
    ref = pool.allocate()
    assert ref.pool is pool
    assert repr(ref).startswith("<OwnedRef live Widget from <Pool 'p' 1/6 lent")
    with pytest.raises(ForeignRefError):
        other.deallocate(ref)
    pool.deallocate(ref)
    with pytest.raises(StaleRefError):
        ref.release()
    with pool.allocate() as obj:
        assert isinstance(obj, Widget)
    leaked = pool.allocate()
    with pytest.warns(ResourceWarning, match=r"an OwnedRef of <Pool 'p' "):
        del leaked
        gc.collect()
    s = pool.stats()
    assert (s.leaks, s.lent, s.free, s.allocations) == (1, 0, 6, 4)
