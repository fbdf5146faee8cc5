"""The races of waiting, driven on purpose, on both pools that wait (`Pool` and `BufPool`
share one line and one wait loop, `objpool._waiting`): a close between the look and the join,
a release between a timeout and leaving the line, an interrupt or a cancellation at the
moment of a hand-off, a waiter whose event loop is gone. Each lands at its exact moment by
patching the step it follows, or on one event loop, where the order is exact; no timing.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import pytest

from objpool import BufPool, Pool, PoolClosedError, PoolExhaustedError
from objpool import _waiting

BOUND_S = 5.0  # no test here may hang: every wait and join is bounded by this


class Widget:
    def reset(self) -> None:
        pass


@dataclass(frozen=True)
class Subject:
    """A pool that waits, full: `hold` lends all its capacity; `allocate` and `acquire` ask
    for the same amount again, so they wait until it comes back."""

    name: str
    make: Callable[[], Any]
    hold: Callable[[Any], Any]
    allocate: Callable[[Any, float | None], Any]
    acquire: Callable[[Any, float | None], Awaitable[Any]]

    def full(self) -> tuple[Any, Any]:
        pool = self.make()
        return pool, self.hold(pool)


SUBJECTS = [
    Subject(
        "Pool",
        lambda: Pool(Widget, 1),
        lambda pool: pool.allocate(),
        lambda pool, timeout: pool.allocate(timeout=timeout),
        lambda pool, timeout: pool.acquire(timeout=timeout),
    ),
    Subject(
        "BufPool",
        lambda: BufPool(64, 128),
        lambda pool: pool.allocate(2),
        lambda pool, timeout: pool.allocate(2, timeout=timeout),
        lambda pool, timeout: pool.acquire(2, timeout=timeout),
    ),
]


@pytest.fixture(params=SUBJECTS, ids=lambda subject: subject.name)
def subject(request: pytest.FixtureRequest) -> Subject:
    result: Subject = request.param
    return result


def until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + BOUND_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.001)


def assert_whole(pool: Any) -> None:
    """Nothing lent, nobody waiting, every allocation accounted for."""
    stats = pool.stats()
    assert (stats.lent, stats.waiting, stats.leaks) == (0, 0, 0), stats
    assert stats.allocations == stats.deallocations + getattr(stats, "reset_failures", 0), stats


class Waiting(threading.Thread):
    """A thread that calls `subject.allocate(pool, BOUND_S)` and records what happened."""

    def __init__(self, subject: Subject, pool: Any) -> None:
        super().__init__(daemon=True)
        self.subject, self.pool = subject, pool
        self.got: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.got = self.subject.allocate(self.pool, BOUND_S)
        except BaseException as exc:  # recorded for the test to check
            self.error = exc

    def done(self) -> Waiting:
        self.join(BOUND_S)
        assert not self.is_alive(), "the waiting thread is stuck"
        return self


def test_a_pool_closed_between_the_look_and_the_join_raises_at_once(subject: Subject, monkeypatch: pytest.MonkeyPatch) -> None:
    """close() lands after allocate() looked at the pool but before the caller queued."""
    pool, held = subject.full()
    real_join = _waiting.Line.join

    def close_first(line: _waiting.Line, waiter: _waiting.Waiter) -> None:
        pool.close()  # closes (and wakes the line) before this caller joins it
        real_join(line, waiter)

    monkeypatch.setattr(_waiting.Line, "join", close_first)
    start = time.monotonic()
    with pytest.raises(PoolClosedError):
        subject.allocate(pool, BOUND_S)
    assert time.monotonic() - start < 1, "the caller slept instead of seeing the closed pool"
    held.release()
    assert_whole(pool)


def test_a_release_while_a_caller_joins_the_line_is_not_missed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pool's releases append to the free stack without the line's lock, then test the pool's
    flag: one that lands while a caller joins (the line's lock held, the free stack just seen
    empty) must still reach it. (BufPool's releases take the line's lock: no such moment.)"""
    pool = Pool(Widget, 1)
    held = pool.allocate()
    real_grant, real_serve = Pool._grant, Pool._serve
    served: list[Pool[Widget]] = []

    def release_after_the_look(self: Pool[Widget], waiter: _waiting.Waiter) -> bool:
        granted = real_grant(self, waiter)
        if not granted and held.alive:
            held.release()  # on this thread, with the line's lock held: its serve is deferred
        return granted

    def serve_later(self: Pool[Widget]) -> None:
        served.append(self)  # the line's lock is ours: serving now would deadlock

    monkeypatch.setattr(Pool, "_grant", release_after_the_look)
    monkeypatch.setattr(Pool, "_serve", serve_later)
    real_join = _waiting.Line.join

    def join_then_serve(line: _waiting.Line, waiter: _waiting.Waiter) -> None:
        real_join(line, waiter)
        monkeypatch.setattr(Pool, "_grant", real_grant)
        monkeypatch.setattr(Pool, "_serve", real_serve)
        for p in served:
            p._serve()

    monkeypatch.setattr(_waiting.Line, "join", join_then_serve)
    got = pool.allocate(timeout=BOUND_S)  # PoolExhaustedError after BOUND_S if the release was missed
    assert not held.alive and served == [pool], "the release saw the caller in the line"
    got.release()
    assert_whole(pool)


def test_an_interrupt_between_a_grant_and_leaving_the_line_is_not_granted_twice(subject: Subject, monkeypatch: pytest.MonkeyPatch) -> None:
    """An interrupt lands after the pool granted the head but before it left the line: the
    grant goes back once, and the waiter is out of the line, never granted again."""
    pool, held = subject.full()
    waiter = _waiting.ThreadWaiter(2 if subject.name == "BufPool" else 1)  # what `hold` took
    pool._line.join(waiter)
    assert pool.stats().waiting == 1 and waiter.grant is None
    real_grant = type(pool)._grant

    def grant_then_interrupt(self: Any, w: _waiting.Waiter) -> bool:
        real_grant(self, w)
        raise KeyboardInterrupt  # where the line's popleft() would have run

    monkeypatch.setattr(type(pool), "_grant", grant_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        held.release()
    monkeypatch.setattr(type(pool), "_grant", real_grant)
    assert waiter.grant is not None
    pool._leave(waiter)  # the waiting frame's cleanup: the grant goes back, the waiter leaves
    assert pool.stats().waiting == 0 and waiter.grant is None
    subject.allocate(pool, 0).release()  # the capacity is free, and not promised to anyone
    assert_whole(pool)


def test_a_release_between_the_timeout_and_leaving_the_line_is_kept(subject: Subject, monkeypatch: pytest.MonkeyPatch) -> None:
    """The capacity comes back as the timed-out waiter leaves the line: it takes the grant,
    and the pool counts no exhaustion."""
    pool, held = subject.full()
    real_leave = _waiting.Line.leave

    def leave_after_a_release(line: _waiting.Line, waiter: _waiting.Waiter) -> int | None:
        if held.alive:
            held.release()  # granted to the waiter, which has timed out and is leaving
        return real_leave(line, waiter)

    monkeypatch.setattr(_waiting.Line, "leave", leave_after_a_release)
    got = subject.allocate(pool, 0.01)  # not PoolExhaustedError: the grant is not lost
    assert got.alive and not held.alive and pool.stats().waiting == 0
    got.release()
    assert pool.stats().exhausted == 0
    assert_whole(pool)


def test_an_interrupted_thread_passes_its_grant_to_the_next_waiter(subject: Subject, monkeypatch: pytest.MonkeyPatch) -> None:
    """KeyboardInterrupt reaches a waiter just after it was granted, before it takes it."""
    pool, held = subject.full()
    second = Waiting(subject, pool)
    real_sleep = _waiting.ThreadWaiter.sleep
    first_sleep = threading.Event()

    def sleep_then_interrupt(waiter: _waiting.ThreadWaiter, seconds: float) -> bool:
        if threading.current_thread() is threading.main_thread() and not first_sleep.is_set():
            first_sleep.set()
            second.start()
            until(lambda: pool.stats().waiting == 2)
            held.release()  # granted to this (main) thread, the oldest waiter...
            raise KeyboardInterrupt  # ...which is interrupted before it takes it
        return real_sleep(waiter, seconds)

    monkeypatch.setattr(_waiting.ThreadWaiter, "sleep", sleep_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        subject.allocate(pool, BOUND_S)
    second.done()
    assert second.got is not None and second.error is None, "the grant went to the next waiter"
    second.got.release()
    assert_whole(pool)


def test_a_task_cancelled_at_the_moment_of_hand_off_passes_it_on(subject: Subject) -> None:
    async def main() -> None:
        pool, held = subject.full()
        first = asyncio.ensure_future(subject.acquire(pool, None))
        second = asyncio.ensure_future(subject.acquire(pool, None))
        while pool.stats().waiting < 2:
            await asyncio.sleep(0)
        held.release()  # granted to `first`; its wake-up is scheduled, not yet run
        first.cancel()  # ...and it is cancelled before it runs
        got = await asyncio.wait_for(second, BOUND_S)
        assert first.cancelled() and got.alive
        got.release()
        assert_whole(pool)

    asyncio.run(main())


def test_a_task_timing_out_leaves_the_line_and_the_next_is_served(subject: Subject) -> None:
    async def main() -> None:
        pool, held = subject.full()
        with pytest.raises(PoolExhaustedError, match=r"within 0\.02 s$"):
            await subject.acquire(pool, 0.02)
        assert pool.stats().waiting == 0
        later = asyncio.ensure_future(subject.acquire(pool, None))
        while pool.stats().waiting < 1:
            await asyncio.sleep(0)
        held.release()
        got = await asyncio.wait_for(later, BOUND_S)
        got.release()
        assert_whole(pool)

    asyncio.run(main())


def test_a_task_whose_loop_closed_never_swallows_a_grant(subject: Subject) -> None:
    """A waiter whose event loop is gone cannot wake: its grant goes to the next waiter."""
    pool, held = subject.full()
    loop = asyncio.new_event_loop()

    async def stranded() -> object:
        return await subject.acquire(pool, BOUND_S)

    task = loop.create_task(stranded())
    loop.run_until_complete(asyncio.sleep(0.01))  # the task joins the line, then the loop stops
    assert pool.stats().waiting == 1
    thread = Waiting(subject, pool)
    thread.start()
    until(lambda: pool.stats().waiting == 2)
    loop.close()  # the task is stranded in the line; its wake-up can never run
    held.release()  # to the stranded task first: the hand-off fails, the thread gets it
    thread.done()
    assert thread.got is not None and thread.error is None
    thread.got.release()
    assert_whole(pool)
    del task


def test_close_wakes_threads_and_tasks_waiting_alike(subject: Subject) -> None:
    async def main() -> None:
        pool, held = subject.full()
        thread = Waiting(subject, pool)
        thread.start()
        until(lambda: pool.stats().waiting == 1)
        task = asyncio.ensure_future(subject.acquire(pool, None))
        while pool.stats().waiting < 2:
            await asyncio.sleep(0)
        pool.close()
        with pytest.raises(PoolClosedError):
            await asyncio.wait_for(task, BOUND_S)
        assert isinstance(thread.done().error, PoolClosedError)
        held.release()
        assert_whole(pool)

    asyncio.run(main())


def test_a_waiter_that_takes_its_grant_the_moment_it_is_stored_is_served_once() -> None:
    """A waiter whose nap just ran out looks at its grant without the line's lock, and may
    take it while the releasing thread is still inside `Pool._grant`. Driven here by taking
    it at the grant's last line: the line must count the waiter served and move on, not leave
    it at the head to be handed the next free slot, which nobody would take. (`BufPool`'s
    waiter takes its grant under the lock its grant holds, so it comes after the section.)"""
    import inspect
    import sys
    from types import FrameType

    subject = SUBJECTS[0]
    pool, held = subject.full()
    waiter = _waiting.ThreadWaiter(1)
    pool._line.join(waiter)
    assert len(pool._line.queue) == 1
    grant_code = type(pool)._grant.__code__
    lines, first = inspect.getsourcelines(type(pool)._grant)
    last_return = first + max(i for i, line in enumerate(lines) if line.strip().startswith("return "))
    taken: list[Any] = []

    def tracer(frame: FrameType, event: str, arg: object) -> Any:
        if frame.f_code is not grant_code:
            return None
        if event == "line" and frame.f_lineno == last_return and not taken:
            taken.append(pool._lend_handed(waiter))  # as the waiter's own thread would
        return tracer

    sys.settrace(tracer)
    try:
        held.release()
    finally:
        sys.settrace(None)
    assert len(taken) == 1 and not pool._line.queue, "served once, and out of the line"
    taken[0].release()
    assert_whole(pool)
    again = subject.hold(pool)  # all of it is free again: nothing was handed to a ghost
    again.release()
