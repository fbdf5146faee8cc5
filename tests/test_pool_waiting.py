"""Waiting for a pool object: timeouts, fairness, hand-off, cancellation, close, leaks.

Every race here is driven on purpose: a test waits until `pool.waiting` shows the waiters in
line before it releases, and the asyncio races run on one loop, where the order is exact. The
races `Pool` shares with `BufPool` (close before the join, a release as a wait runs out, an
interrupt or cancellation at the hand-off) are in `test_waiting_races.py`, run on both.
"""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from collections.abc import Callable

import pytest

from objpool import OwnedRef, Pool, PoolClosedError, PoolExhaustedError

BOUND_S = 5.0  # no test here may hang: every wait and join is bounded by this


class Widget:
    def reset(self) -> None:
        pass


def until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + BOUND_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.001)


class Waiting(threading.Thread):
    """A thread that calls `pool.allocate(timeout)` and records what happened."""

    def __init__(self, pool: Pool[Widget], timeout: float | None = BOUND_S) -> None:
        super().__init__(daemon=True)
        self.pool = pool
        self.timeout = timeout
        self.ref: OwnedRef[Widget] | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.ref = self.pool.allocate(timeout=self.timeout)
        except BaseException as exc:  # recorded for the test to check
            self.error = exc

    def done(self) -> Waiting:
        self.join(BOUND_S)
        assert not self.is_alive(), "the waiting thread is stuck"
        return self


def test_timeout_zero_is_today_s_behaviour() -> None:
    pool = Pool(Widget, 1)
    ref = pool.allocate()
    with pytest.raises(PoolExhaustedError, match=r"^all 1 objects of <Pool 1/1 lent, 0 free> are lent out$"):
        pool.allocate(timeout=0)
    ref.release()


def test_a_timeout_runs_out_and_is_counted() -> None:
    pool = Pool(Widget, 1)
    ref = pool.allocate()
    start = time.monotonic()
    with pytest.raises(PoolExhaustedError, match=r"and none came back within 0\.05 s$"):
        pool.allocate(timeout=0.05)
    assert time.monotonic() - start >= 0.05
    assert (pool.stats().exhausted, pool.waiting) == (1, 0)
    ref.release()


@pytest.mark.parametrize(
    ("timeout", "error", "message"),
    [
        (-1, ValueError, r"^timeout must be a number of seconds >= 0 or None, got int -1$"),
        (float("nan"), ValueError, r"^timeout must be a number of seconds >= 0 or None, got float nan$"),
        ("1", TypeError, r"^timeout must be a number of seconds >= 0 or None, got str '1'$"),
        (True, TypeError, r"^timeout must be a number of seconds >= 0 or None, got bool True$"),
    ],
)
def test_bad_timeouts_are_refused_even_when_objects_are_free(timeout: object, error: type[Exception], message: str) -> None:
    pool = Pool(Widget, 1)
    with pytest.raises(error, match=message):
        pool.allocate(timeout=timeout)  # type: ignore[arg-type]  # wrong on purpose
    with pytest.raises(error, match=message):
        pool.acquire(timeout=timeout)  # type: ignore[arg-type]  # wrong on purpose
    assert pool.free == 1


def test_a_release_on_another_thread_wakes_the_waiter_with_that_object() -> None:
    pool = Pool(Widget, 1)
    ref = pool.allocate()
    widget = ref.value
    waiter = Waiting(pool)
    waiter.start()
    until(lambda: pool.waiting == 1)
    ref.release()
    waiter.done()
    assert waiter.ref is not None and waiter.ref.value is widget and waiter.error is None
    waiter.ref.release()
    assert (pool.free, pool.waiting) == (1, 0)


def test_waiters_are_served_in_arrival_order_and_newcomers_cannot_barge() -> None:
    pool = Pool(Widget, 1)
    ref = pool.allocate()
    waiters = []
    for n in range(3):
        waiter = Waiting(pool)
        waiter.start()
        until(lambda n=n: pool.waiting == n + 1)  # type: ignore[misc]  # bound on purpose
        waiters.append(waiter)
    for waiter in waiters:
        ref.release()  # handed straight to the oldest waiter: the free stack stays empty
        with pytest.raises(PoolExhaustedError):
            pool.allocate()  # a newcomer, even with timeout=0, does not take it
        waiter.done()
        assert waiter.ref is not None
        ref = waiter.ref
        assert all(w.ref is None for w in waiters[waiters.index(waiter) + 1 :]), "served out of order"
    ref.release()
    s = pool.stats()
    assert (s.lent, s.free, s.allocations, s.deallocations) == (0, 1, 4, 4)


def test_close_wakes_every_waiter_with_pool_closed() -> None:
    pool = Pool(Widget, 1)
    ref = pool.allocate()
    waiters = [Waiting(pool, timeout=None) for _ in range(2)]
    for waiter in waiters:
        waiter.start()
    until(lambda: pool.waiting == 2)
    pool.close()
    for waiter in waiters:
        assert isinstance(waiter.done().error, PoolClosedError)
    assert pool.waiting == 0
    ref.release()  # handles out stay valid after close
    assert pool.free == 1


def test_a_slot_recovered_from_a_leak_serves_a_waiter() -> None:
    pool = Pool(Widget, 1)
    waiter = Waiting(pool)
    ref = pool.allocate()
    waiter.start()
    until(lambda: pool.waiting == 1)
    with pytest.warns(ResourceWarning):
        del ref  # leaked: found in the collector, which wakes nobody
        gc.collect()
    waiter.done()  # the waiter looks for recovered slots itself
    assert waiter.ref is not None and waiter.error is None
    waiter.ref.release()
    assert pool.stats().leaks == 1


def test_a_leak_recovered_after_the_head_was_served_reaches_the_next_waiter() -> None:
    """Only the head of the line polls often; the next one polls too once it heads the line."""
    from objpool._waiting import BACK_OF_LINE_POLL_S

    pool = Pool(Widget, 2)
    refs = [pool.allocate(), pool.allocate()]
    first, second = Waiting(pool), Waiting(pool)
    first.start()
    until(lambda: pool.waiting == 1)
    second.start()
    until(lambda: pool.waiting == 2)
    with pytest.warns(ResourceWarning):
        del refs[0]
        gc.collect()
    first.done()
    assert first.ref is not None and pool.waiting == 1
    with pytest.warns(ResourceWarning):
        refs.clear()  # the second leak: nobody else will ever release
        gc.collect()
    start = time.monotonic()
    second.done()
    assert second.ref is not None, second.error
    assert time.monotonic() - start < BACK_OF_LINE_POLL_S + 1
    first.ref.release()
    second.ref.release()
    assert (2, 2) == (pool.stats().leaks, pool.free)


# -- asyncio ------------------------------------------------------------------------------


def test_acquire_gives_a_handle_or_the_object_in_async_with() -> None:
    async def main() -> None:
        pool = Pool(Widget, 1)
        ref = await pool.acquire()
        assert ref.alive and pool.lent == 1
        ref.release()
        async with pool.acquire() as widget:
            assert type(widget) is Widget and pool.lent == 1
        assert pool.free == 1

    asyncio.run(main())


def test_a_task_waits_without_blocking_the_loop_and_a_thread_release_wakes_it() -> None:
    async def main() -> None:
        pool = Pool(Widget, 1)
        ref = pool.allocate()
        task = asyncio.ensure_future(pool.acquire(timeout=BOUND_S))
        ticks = 0
        while pool.waiting == 0:
            await asyncio.sleep(0)
        releaser = threading.Thread(target=ref.release)
        releaser.start()
        while not task.done():
            ticks += 1  # the loop keeps running while the task waits
            await asyncio.sleep(0.001)
        releaser.join()
        got = task.result()
        assert got.alive and ticks > 0
        got.release()

    asyncio.run(main())


def test_threads_and_tasks_share_one_line_in_arrival_order() -> None:
    async def main() -> None:
        pool = Pool(Widget, 1)
        ref = pool.allocate()
        thread = Waiting(pool)
        thread.start()
        while pool.waiting < 1:
            await asyncio.sleep(0.001)
        task = asyncio.ensure_future(pool.acquire())
        while pool.waiting < 2:
            await asyncio.sleep(0)
        ref.release()  # to the thread, which came first
        await asyncio.get_running_loop().run_in_executor(None, thread.done)
        assert thread.ref is not None and not task.done()
        thread.ref.release()  # now to the task
        got = await asyncio.wait_for(task, BOUND_S)
        got.release()
        assert pool.free == 1

    asyncio.run(main())


def test_close_wakes_waiting_tasks() -> None:
    async def main() -> None:
        pool = Pool(Widget, 1)
        ref = pool.allocate()
        task = asyncio.ensure_future(pool.acquire())
        while pool.waiting < 1:
            await asyncio.sleep(0)
        pool.close()
        with pytest.raises(PoolClosedError, match=r"was closed while waiting"):
            await asyncio.wait_for(task, BOUND_S)
        ref.release()
        with pytest.raises(PoolClosedError):
            await pool.acquire()

    asyncio.run(main())


# -- stress, and the nap's own race ----------------------------------------------------------


def test_stress_threads_and_tasks_with_timeouts_and_cancellations() -> None:
    """Threads and tasks hammer a small pool with random timeouts and cancellations; owner
    marks prove no object is lent twice, and at the end every object is free and the stats
    add up exactly."""
    import random

    class Marked:
        def __init__(self) -> None:
            self.owner: object = None

        def reset(self) -> None:
            self.owner = None

    pool = Pool(Marked, 3)
    stop = time.monotonic() + 1.0
    errors: list[BaseException] = []

    def use(ref: OwnedRef[Marked], me: object) -> None:
        obj = ref.value
        if obj.owner is not None:
            raise AssertionError(f"lent twice: {obj.owner} and {me}")
        obj.owner = me
        time.sleep(random.random() * 0.0005)
        if obj.owner is not me:
            raise AssertionError("changed while owned")
        ref.release()

    def thread_worker(n: int) -> None:
        rng = random.Random(n)
        try:
            while time.monotonic() < stop:
                try:
                    ref = pool.allocate(timeout=rng.choice([0, 0.0005, 0.002, None]))
                except PoolExhaustedError:
                    continue
                use(ref, ("thread", n))
        except BaseException as exc:
            errors.append(exc)

    async def task_worker(n: int) -> None:
        rng = random.Random(100 + n)
        while time.monotonic() < stop:
            attempt = asyncio.ensure_future(pool.acquire(timeout=rng.choice([0.0005, 0.002, None])))
            if rng.random() < 0.3:
                await asyncio.sleep(rng.random() * 0.001)
                attempt.cancel()  # maybe at the very moment of a hand-off
            try:
                ref = await attempt
            except (asyncio.CancelledError, PoolExhaustedError):
                continue
            use(ref, ("task", n))
            await asyncio.sleep(0)

    async def tasks() -> None:
        await asyncio.gather(*(task_worker(n) for n in range(4)))

    threads = [threading.Thread(target=thread_worker, args=(n,)) for n in range(4)]
    loop_thread = threading.Thread(target=lambda: asyncio.run(tasks()))
    for t in [*threads, loop_thread]:
        t.start()
    for t in [*threads, loop_thread]:
        t.join(BOUND_S + 2)
        assert not t.is_alive(), "a worker is stuck"
    assert not errors, errors
    s = pool.stats()
    assert (s.lent, s.free, pool.waiting) == (0, 3, 0)
    assert s.allocations == s.deallocations + s.reset_failures + s.leaks + s.lent
    assert s.allocations > 100, "the stress test barely ran"


def test_a_task_woken_as_its_nap_runs_out_sees_the_wake_on_its_next_nap() -> None:
    """The nap's timer fires, then a release wakes the task before it resumes: nothing lost."""
    from objpool._waiting import TaskWaiter, _nap_over

    async def main() -> None:
        waiter = TaskWaiter(asyncio.get_running_loop())
        nap = asyncio.ensure_future(waiter.sleep(10))
        await asyncio.sleep(0)  # parked on its future
        _nap_over(waiter._future)  # the nap runs out...
        waiter._set()  # ...and the wake lands before the task runs again
        assert not await nap, "this nap ran out"
        assert await asyncio.wait_for(waiter.sleep(10), 1), "the next one returns at once: woken"

    asyncio.run(main())
