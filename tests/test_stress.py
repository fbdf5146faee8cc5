"""Every pool under 8 threads and a loop of asyncio tasks at once, with owner marks.

Made for free-threaded builds, where the threads really run in parallel (CI runs this there
with the GIL off, both builds); under the GIL it runs with a tiny switch interval. In one run,
per pool: threads allocate, mark what they got (an object's holder, a buffer's bytes), check
the mark is still theirs, and release; some release a handle twice from two threads at once
(the same handle queued twice, taken by whichever threads come first: exactly one release
wins), some drop a live handle (a leak, recovered), some wait with a timeout that may run out,
and tasks wait with timeouts and are cancelled. At the end no mark was ever found changed,
and every count and budget is exact: each allocation released or leaked once, each
exhaustion counted once, nothing lent, nobody waiting.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import random
import sys
import threading
import warnings
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from objpool import BufPool, Pool, PoolExhaustedError, SizedPool, StaleRefError

THREADS = 8
STEPS = 1000  # per thread
TASKS = 60
DEADLINE_S = 60.0
MARK = 16  # bytes of a buffer each holder writes and checks


class Slot:
    """An object that records its holder."""

    def __init__(self) -> None:
        self.holder: int | None = None

    def reset(self) -> None:
        self.holder = None


@dataclass(frozen=True)
class Subject:
    """One pool: how to make it, lend from it (with a timeout; None: never waits), await it
    (None: it has no waiting), and mark and check what it lent."""

    name: str
    make: Callable[[], Any]
    allocate: Callable[[Any, float], Any]
    acquire: Callable[[Any, float], Awaitable[Any]] | None
    mark: Callable[[Any, int], None]
    marked: Callable[[Any, int], bool]


def _mark_object(ref: Any, me: int) -> None:
    ref.value.holder = me


def _object_marked(ref: Any, me: int) -> bool:
    return bool(ref.value.holder == me)


def _mark_sized(ref: Any, me: int) -> None:
    ref.value.write(bytes([me]) * MARK)


def _sized_marked(ref: Any, me: int) -> bool:
    return bytes(ref.value) == bytes([me]) * MARK


def _mark_allocation(allocation: Any, me: int) -> None:
    allocation.view[:MARK] = bytes([me]) * MARK


def _allocation_marked(allocation: Any, me: int) -> bool:
    return bytes(allocation.view[:MARK]) == bytes([me]) * MARK


SUBJECTS = [
    Subject(
        "Pool",
        lambda: Pool(Slot, 4),
        lambda pool, timeout: pool.allocate(timeout=timeout),
        lambda pool, timeout: pool.acquire(timeout=timeout),
        _mark_object,
        _object_marked,
    ),
    Subject(
        "Pool with thread caches",  # on by default without the GIL; here on every build
        lambda: Pool(Slot, 12, thread_cache=True),
        lambda pool, timeout: pool.allocate(timeout=timeout),
        lambda pool, timeout: pool.acquire(timeout=timeout),
        _mark_object,
        _object_marked,
    ),
    Subject(
        "BufPool",
        lambda: BufPool(64, 64 * 6),
        lambda pool, timeout: pool.allocate(2, timeout=timeout),
        lambda pool, timeout: pool.acquire(2, timeout=timeout),
        _mark_allocation,
        _allocation_marked,
    ),
    Subject(
        "BufPool with thread caches",  # 12 buffers: kept while 8 are free, waited for when all are out
        lambda: BufPool(64, 64 * 12, thread_cache=True),
        lambda pool, timeout: pool.allocate(2, timeout=timeout),
        lambda pool, timeout: pool.acquire(2, timeout=timeout),
        _mark_allocation,
        _allocation_marked,
    ),
    Subject(
        "SizedPool",
        lambda: SizedPool(min_size=64, max_size=4096, max_retained=8192),
        lambda pool, timeout: pool.allocate(128 if timeout else 64),  # two classes; it never waits
        None,
        _mark_sized,
        _sized_marked,
    ),
]


@dataclass
class Tally:
    """What the threads and tasks saw, to compare with the pool's own counts."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    allocated: int = 0
    exhausted: int = 0
    leaked: int = 0
    wins: int = 0
    stale: int = 0
    cancelled: int = 0
    broken: list[str] = field(default_factory=list)

    def add(self, **counts: int) -> None:
        with self.lock:
            for name, n in counts.items():
                setattr(self, name, getattr(self, name) + n)


@pytest.fixture(autouse=True)
def fast_switching() -> Iterator[None]:
    """Under the GIL, switch threads as often as the interpreter allows."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


def worker(subject: Subject, pool: Any, me: int, tally: Tally, contested: deque[Any]) -> None:
    rng = random.Random(me)
    for _ in range(STEPS):
        try:
            handle = contested.popleft()
        except IndexError:
            pass
        else:  # the same handle was queued twice: whoever takes each copy releases it
            try:
                handle.release()
            except StaleRefError:
                tally.add(stale=1)
            else:
                tally.add(wins=1)
            del handle
        timeout = rng.choice((0.0, 0.0, 0.001, 0.01))
        try:
            handle = subject.allocate(pool, timeout)
        except PoolExhaustedError:
            tally.add(exhausted=1)
            continue
        tally.add(allocated=1)
        subject.mark(handle, me)
        if rng.random() < 0.3:
            threading.Event().wait(0.0001 * rng.random())  # hold it a moment
        if not subject.marked(handle, me):
            tally.broken.append(f"{subject.name}: thread {me} found its mark changed")
        roll = rng.random()
        if roll < 0.05:
            contested.extend((handle, handle))
        elif roll < 0.07:
            del handle  # a leak: found by its finaliser, here
            tally.add(leaked=1)
            if rng.random() < 0.2:
                gc.collect()
        else:
            handle.release()


def tasks(subject: Subject, pool: Any, tally: Tally) -> None:
    """TASKS tasks on one event loop, each acquiring with a timeout; some cancelled meanwhile."""
    acquire = subject.acquire
    if acquire is None:
        return

    async def one(rng: random.Random) -> None:
        try:
            handle = await acquire(pool, rng.choice((0.001, 0.01, 0.05)))
        except PoolExhaustedError:
            tally.add(exhausted=1)
            return
        tally.add(allocated=1)
        try:
            subject.mark(handle, 200)
            await asyncio.sleep(0)  # a cancellation may land here too: released all the same
            if not subject.marked(handle, 200):
                tally.broken.append(f"{subject.name}: a task found its mark changed")
        finally:
            handle.release()

    async def main() -> None:
        rng = random.Random(99)
        running = []
        for _ in range(TASKS):
            task = asyncio.ensure_future(one(random.Random(rng.random())))
            running.append(task)
            await asyncio.sleep(0)
            if rng.random() < 0.2:
                task.cancel()  # perhaps while waiting, perhaps as it is handed its grant
        for task in running:
            try:
                await task
            except asyncio.CancelledError:
                tally.add(cancelled=1)

    asyncio.run(main())


@pytest.mark.parametrize("subject", SUBJECTS, ids=lambda s: s.name)
def test_threads_and_tasks_never_share_what_is_lent_and_every_count_is_exact(subject: Subject) -> None:
    pool = subject.make()
    tally = Tally()
    contested: deque[Any] = deque()
    # Each in a copy of this context (see tests/test_pool_threads.py's run_threads).
    with warnings.catch_warnings():  # the threads', too (each runs in a copy of this context)
        warnings.simplefilter("ignore", ResourceWarning)  # the leaks made on purpose
        threads = [
            threading.Thread(target=contextvars.copy_context().run, args=(worker, subject, pool, i, tally, contested))
            for i in range(1, THREADS + 1)
        ]
        threads.append(threading.Thread(target=contextvars.copy_context().run, args=(tasks, subject, pool, tally)))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(DEADLINE_S)
            assert not thread.is_alive(), "a thread hung"
    while contested:  # released by nobody yet (the last few of the threads' steps)
        handle = contested.popleft()
        try:
            handle.release()
        except StaleRefError:
            tally.add(stale=1)
        else:
            tally.add(wins=1)
        del handle
    gc.collect()
    if isinstance(pool, Pool):  # leaked slots are rebuilt by the allocate that finds none free
        capacity = pool.capacity
        held = [pool.allocate() for _ in range(capacity)]
        tally.add(allocated=len(held))
        for ref in held:
            ref.release()
        assert pool.free == capacity
    assert tally.broken == []
    assert tally.wins == tally.stale, "each queued-twice handle: exactly one release wins"
    stats = pool.stats()
    assert stats.lent == 0 and getattr(stats, "waiting", 0) == 0, stats
    assert (stats.allocations, stats.leaks) == (tally.allocated, tally.leaked), (stats, tally)
    assert stats.allocations == stats.deallocations + stats.leaks + getattr(stats, "reset_failures", 0), stats
    assert getattr(stats, "exhausted", 0) == (tally.exhausted if subject.acquire else 0), (stats, tally)
    assert getattr(stats, "lent_bytes", 0) == 0, stats
