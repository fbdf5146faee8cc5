"""Threads hammer shared pools: no object is ever lent twice, no index is ever free twice.

Each test is bounded by an iteration count and a deadline, and shortens the interpreter's
switch interval so threads interleave inside pool calls, not only between them.
"""

from __future__ import annotations

import contextvars
import random
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

import pytest

from objpool import OwnedRef, Pool, PoolExhaustedError, StaleRefError

THREADS = 8
DEADLINE_S = 20.0


class Slot:
    """Records who holds it; a second holder would find the mark of the first."""

    __slots__ = ("holder", "uses")

    def __init__(self) -> None:
        self.holder: int | None = None
        self.uses = 0

    def reset(self) -> None:
        self.holder = None


@pytest.fixture(autouse=True)
def fast_switching() -> Iterator[None]:
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


def run_threads(worker: Callable[[int], None], n: int = THREADS) -> None:
    errors: list[BaseException] = []

    def guarded(i: int) -> None:
        try:
            worker(i)
        except BaseException as exc:  # reported below, in the test's own thread
            errors.append(exc)

    # Each in a copy of this thread's context: where warnings are context-aware (3.14's flag,
    # on by default on free-threaded builds) the test's catch_warnings() reaches them only so.
    threads = [threading.Thread(target=contextvars.copy_context().run, args=(guarded, i)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(DEADLINE_S + 10)
        assert not t.is_alive(), "a worker thread hung"
    if errors:
        raise errors[0]


def test_no_object_is_lent_twice_under_contention() -> None:
    pool = Pool(Slot, 4)  # fewer objects than threads: constant contention
    iterations = 20_000  # per thread, switching every microsecond: 160,000 steps interleaved
    deadline = time.monotonic() + DEADLINE_S

    def worker(me: int) -> None:
        rng = random.Random(me)
        held: list[OwnedRef[Slot]] = []
        for i in range(iterations):
            if i % 256 == 0 and time.monotonic() > deadline:
                break
            if len(held) < 2 and rng.random() < 0.6:
                ref = pool.try_allocate()
                if ref is not None:
                    slot = ref.value
                    assert slot.holder is None, f"thread {me} got an object thread {slot.holder} holds"
                    slot.holder = me
                    slot.uses += 1
                    held.append(ref)
            elif held:
                ref = held.pop(rng.randrange(len(held)))
                assert ref.value.holder == me, "an object changed hands while owned"
                ref.release()
        for ref in held:
            ref.release()

    run_threads(worker)
    s = pool.stats()
    assert (s.lent, s.free, s.leaks) == (0, 4, 0)
    every = [pool.allocate() for _ in range(4)]  # four distinct objects: no index free twice
    assert 4 == len({id(ref.value) for ref in every})
    assert s.allocations == s.deallocations == sum(ref.value.uses for ref in every)
    for ref in every:
        ref.release()


def test_racing_double_release_succeeds_exactly_once() -> None:
    pool = Pool(Slot, 2)
    rounds = 2_000
    barrier = threading.Barrier(2, timeout=DEADLINE_S)  # a broken run fails, never hangs
    outcomes: list[list[str]] = [[], []]
    refs: list[OwnedRef[Slot]] = []
    ready = threading.Barrier(3, timeout=DEADLINE_S)

    def releaser(me: int) -> None:
        for _ in range(rounds):
            ready.wait()
            ref = refs[-1]
            barrier.wait()
            try:
                ref.release()
            except StaleRefError:
                outcomes[me].append("stale")
            else:
                outcomes[me].append("ok")
            ready.wait()

    threads = [threading.Thread(target=releaser, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for _ in range(rounds):
        refs.append(pool.allocate())
        ready.wait()  # both releasers take the same handle...
        ready.wait()  # ...and race to release it
        assert 2 == pool.free
    for t in threads:
        t.join(DEADLINE_S)
    for a, b in zip(*outcomes, strict=True):
        assert sorted((a, b)) == ["ok", "stale"]
    s = pool.stats()
    assert (s.allocations, s.deallocations, s.lent) == (rounds, rounds, 0)


def test_exhaustion_under_threads_never_hands_out_extra_objects() -> None:
    capacity = 3
    pool = Pool(Slot, capacity)
    lent_now = 0
    peak = 0
    count_lock = threading.Lock()
    deadline = time.monotonic() + DEADLINE_S

    def worker(me: int) -> None:
        nonlocal lent_now, peak
        for i in range(2_000):
            if i % 256 == 0 and time.monotonic() > deadline:
                break
            try:
                ref = pool.allocate()
            except PoolExhaustedError:
                continue
            with count_lock:
                lent_now += 1
                peak = max(peak, lent_now)
            time.sleep(0)  # hold it while other threads run
            with count_lock:
                lent_now -= 1
            ref.release()

    run_threads(worker)
    assert peak <= capacity
    s = pool.stats()
    assert s.high_water <= capacity
    assert s.allocations == s.deallocations
    assert s.exhausted > 0  # eight threads on three objects must have hit the limit


def test_leaks_and_releases_from_many_threads_keep_counts_exact() -> None:
    pool = Pool(Slot, 8)
    per_thread = 300

    def worker(me: int) -> None:
        for i in range(per_thread):
            ref = pool.try_allocate()
            if ref is None:
                continue
            if i % 50 == 0:
                del ref  # a leak, detected in __del__ on this thread
            else:
                ref.release()

    with pytest.warns(ResourceWarning):
        run_threads(worker, n=4)
    s = pool.stats()
    assert s.lent == 0
    assert s.capacity == s.free == 8
    assert s.allocations == s.deallocations + s.leaks
    assert s.leaks > 0


def test_stats_identities_hold_in_every_snapshot_while_slots_are_rebuilt() -> None:
    """A slot being rebuilt (its handle leaked, or its reset failed) used to count as neither
    lent nor free: a snapshot then showed `lent + free == capacity - 1`."""
    built = threading.Event()

    def slow_factory() -> Slot:
        built.wait(0.0005)  # the rebuild takes a while: snapshots land inside it
        return Slot()

    pool = Pool(slow_factory, 4)
    stop = threading.Event()
    bad: list[object] = []

    def churn(i: int) -> None:
        while not stop.is_set():
            if i == 0:
                stats = pool.stats()
                if stats.lent + stats.free != stats.capacity or stats.allocations != (
                    stats.deallocations + stats.leaks + stats.reset_failures + stats.lent
                ) or stats.deallocations < 0:
                    bad.append(stats)
            elif i == 1:
                ref = pool.try_allocate()
                del ref  # leaked when live: its slot is rebuilt by the next call that looks
            else:
                with pool.allocate(timeout=None):
                    pass

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        threads = [threading.Thread(target=contextvars.copy_context().run, args=(churn, i)) for i in range(4)]  # see run_threads
        for t in threads:
            t.start()
        time.sleep(0.5)
        stop.set()
        for t in threads:
            t.join(DEADLINE_S)
    assert [] == bad
    stats = pool.stats()
    assert (stats.lent, stats.free) == (0, 4)
    assert stats.leaks > 0


def test_stats_identities_hold_in_a_snapshot_taken_at_every_line_of_a_pool_call() -> None:
    """The race above, driven on purpose: a tracer takes a snapshot at every line the pool
    runs in Python (all of the pure build's hot path; the slow paths of the compiled one),
    including between the pop of a free slot and the count of its use, where a snapshot
    once showed `deallocations == -1`."""
    pool_file = sys.modules[Pool.__module__].__file__
    taken: list[object] = []
    bad: list[object] = []
    busy = False

    class Brittle(Slot):
        __slots__ = ()
        fail = False

        def reset(self) -> None:
            if Brittle.fail:
                raise RuntimeError("reset failed")

    pool = Pool(Brittle, 2)

    def snapshot(frame: FrameType, event: str, arg: object) -> Any:
        nonlocal busy
        if event == "line" and not busy:
            busy = True  # stats() runs pool lines of its own: no snapshot inside a snapshot
            try:
                s = pool.stats()
            finally:
                busy = False
            taken.append(s)
            if s.lent + s.free != s.capacity or s.allocations != (
                s.deallocations + s.leaks + s.reset_failures + s.lent
            ) or min(s.deallocations, s.allocations, s.lent, s.free) < 0:
                bad.append(s)
        return snapshot

    def trace_pool_frames(frame: FrameType, event: str, arg: object) -> Any:
        return snapshot if frame.f_code.co_filename == pool_file else None

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        sys.settrace(trace_pool_frames)
        try:
            a = pool.allocate()
            b = pool.allocate()
            a.release()
            del b  # leaked: rebuilt by the next call that drains leaks
            c = pool.allocate()
            d = pool.allocate()
            Brittle.fail = True
            with pytest.raises(RuntimeError):
                c.release()
            Brittle.fail = False
            d.release()
        finally:
            sys.settrace(None)
    assert [] == bad
    assert len(taken) > 10  # the snapshots were taken: the tracer saw pool lines
    s = pool.stats()
    assert (s.allocations, s.deallocations, s.leaks, s.reset_failures, s.lent) == (4, 2, 1, 1, 0)
