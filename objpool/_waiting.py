"""Waiting for a pooled object: one fair line of threads and asyncio tasks, served by hand-off.

Invariant: a waiter is in the line from `join()` until it is handed an index (`serve`), the
pool closes (`close`), or it leaves (`leave`: a timeout, a cancellation, an interrupt); every
one of these moves happens under the line's lock, which guards nothing else and under which no
user code runs. An index handed to a waiter belongs to that waiter: it returns it to its
caller, or, leaving after the hand-off, gives it back to the pool, which serves the next
waiter. So no index is lost however a wait ends, and none is handed out twice.

No section under the line's lock makes an object the garbage collector tracks, calls out, or
holds a `try` of its own (see `objpool._locking`): a collection started inside one could run a
finaliser that releases into the same pool and so waits for this thread's own lock. Whatever a
section needs (a fresh deque for `close`) is made before it, by the caller.

Fairness: the line is first come, first served, threads and tasks alike, and while anyone
waits a newcomer joins the line instead of taking a free object (`Pool.allocate` tests the
line before the free stack). With nobody waiting the pool pays one test of a bool on release
and none on allocate: the line keeps the pool's `_blocked` flag ("closed, or someone waits",
written under the lock, read without it), which `allocate` tests instead of `_closed`.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from typing import Final, Protocol


__all__ = [
    "BACK_OF_LINE_POLL_S",
    "LEAK_POLL_S",
    "NO_WAIT",
    "Flagged",
    "Line",
    "TaskWaiter",
    "ThreadWaiter",
    "Waiter",
    "deadline_of",
    "expired",
    "next_nap",
    "pop_or_none",
]

NO_WAIT: Final = 0.0
"""`Pool.allocate`'s default timeout; identity-tested on the hot path, so only other values are checked."""

LEAK_POLL_S: Final = 0.05
"""How often the waiter at the head of a line checks for slots recovered from leaked handles.

A leak is found inside the garbage collector, where no lock may be taken and no waiter woken,
so a waiter looks for recovered slots itself, and serves the whole line with what it finds."""

BACK_OF_LINE_POLL_S: Final = 1.0
"""How often every other waiter looks (it may have become the head meanwhile).

Only one waiter per line needs to poll: 1,000 tasks waiting on one pool, all polling every
50 ms, took half of a proxy's event loop (2,666 against 5,739 frames/s in its backpressure
mode, examples/sv2_proxy.py)."""


class Waiter:
    """One thread or task in a line: handed something, or told the pool closed.

    `index` is what was handed over: a slot index in `Pool`'s line, the number of buffers
    granted in `BufPool`'s; None while waiting.
    """

    __slots__ = ("closed", "index")

    def __init__(self) -> None:
        self.index: int | None = None
        self.closed = False

    def wake(self) -> bool:
        """Tell the waiter to look at `index`/`closed`; False if it can never wake."""
        raise NotImplementedError


class ThreadWaiter(Waiter):
    """A thread parked on a lock of its own, released to wake it (the GIL is not held meanwhile)."""

    __slots__ = ("_parked",)

    def __init__(self) -> None:
        super().__init__()
        self._parked = threading.Lock()
        self._parked.acquire()

    def wake(self) -> bool:
        self._parked.release()
        return True

    def sleep(self, seconds: float) -> bool:
        """Park up to `seconds`; True if woken."""
        return self._parked.acquire(timeout=seconds)


class TaskWaiter(Waiter):
    """An asyncio task awaiting a future of its loop, woken thread-safely from any thread."""

    __slots__ = ("_future", "_loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._loop = loop
        # Resolved True by a wake, False when a nap runs out (then replaced for the next).
        self._future: asyncio.Future[bool] = loop.create_future()

    def wake(self) -> bool:
        loop = self._loop
        if asyncio._get_running_loop() is loop:
            # Released on the waiter's own loop (a task, a protocol callback): resolve the
            # future now. call_soon_threadsafe would also write to the loop's self-pipe, a
            # system call per hand-off.
            self._set()
            return True
        try:
            loop.call_soon_threadsafe(self._set)
        except RuntimeError:  # its loop is closed: it will never run again
            return False
        return True

    def _set(self) -> None:
        future = self._future
        if future.done():  # a nap just ran out: the wake must still be seen
            future = self._future = self._loop.create_future()
        future.set_result(True)

    async def sleep(self, seconds: float) -> bool:
        """Await the wake up to `seconds`; True if woken. Cancellation propagates.

        One timer that resolves the same future, rather than `asyncio.wait(timeout=...)`,
        which builds a second future and callbacks on every nap.
        """
        future = self._future
        if not future.done():
            timer = self._loop.call_later(seconds, _nap_over, future)
            try:
                await future
            finally:
                timer.cancel()
        woken = future.result()
        if not woken and self._future is future:  # else a wake came since: keep its future
            self._future = self._loop.create_future()  # the next nap's
        return woken


def _nap_over(future: asyncio.Future[bool]) -> None:
    if not future.done():
        future.set_result(False)


class Flagged(Protocol):
    """The pool whose `_blocked` flag a `Line` keeps."""

    _blocked: bool
    _closed: bool


class Line:
    """The pool's waiters, oldest first; keeps `pool._blocked` true while any wait."""

    __slots__ = ("_lock", "_pool", "queue")

    def __init__(self, pool: Flagged) -> None:
        self.queue: deque[Waiter] = deque()
        self._pool = pool
        self._lock = threading.Lock()

    def _flag(self) -> None:
        # Under the lock. A bool: the hot path's truth test of it is the cheapest there is.
        self._pool._blocked = self._pool._closed or bool(self.queue)

    def is_first(self, waiter: Waiter) -> bool:
        """Whether `waiter` heads the line: read without the lock, a hint for how often to poll."""
        try:
            return self.queue[0] is waiter
        except IndexError:
            return False

    def join(self, waiter: Waiter, free: list[int]) -> None:
        """Hand `waiter` a free index if nobody is ahead, else queue it.

        The index goes to `waiter.index`, never through a return value: an interrupt that
        lands after the hand-off then finds it on the waiter, and `leave()` gives it back.
        On a closed pool the waiter is not queued (nobody would wake it): it comes back with
        `closed` set. The section allocates nothing (see the module docstring).
        """
        locked = False
        try:
            locked = self._lock.acquire()
            if self._pool._closed:  # closed after the caller looked: close() woke the line already
                waiter.closed = True
                return
            if not self.queue and free:
                waiter.index = pop_or_none(free)
                if waiter.index is not None:
                    return
            self.queue.append(waiter)
            self._flag()
        finally:
            if locked:
                self._lock.release()

    def serve(self, free: list[int]) -> None:
        """Hand free indices to the oldest waiters, one each, while both last.

        One waiter per locked section, woken after it: the section allocates nothing and
        calls nothing. The index is stored on the waiter before it leaves the line, so an
        interrupt anywhere leaves it either free, or on a waiter that `leave()` or its own
        next look finds.
        """
        while True:
            waiter = self._hand_one(free)
            if waiter is None:
                return
            if not waiter.wake():  # its loop closed: take its index back, serve the next
                taken = self.leave(waiter)
                if taken is not None:
                    free.append(taken)

    def _hand_one(self, free: list[int]) -> Waiter | None:
        locked = False
        try:
            locked = self._lock.acquire()
            queue = self.queue
            if not queue or not free:
                self._flag()
                return None
            waiter = queue[0]
            if waiter.index is None:  # else an interrupted serve handed it one already
                waiter.index = pop_or_none(free)
                if waiter.index is None:  # a newcomer took it meanwhile: nothing left to hand
                    self._flag()
                    return None
            queue.popleft()
            self._flag()
            return waiter
        finally:
            if locked:
                self._lock.release()

    def leave(self, waiter: Waiter) -> int | None:
        """`waiter` stops waiting: out of the line, or, if it was handed an index, that index."""
        locked = False
        try:
            locked = self._lock.acquire()
            index, waiter.index = waiter.index, None
            if index is None:
                if waiter in self.queue:  # else served or closed meanwhile; tested, not caught:
                    self.queue.remove(waiter)  # an exception is an object the collector tracks
                self._flag()
            return index
        finally:
            if locked:
                self._lock.release()

    def close(self) -> None:
        """Wake every waiter with `closed` set (the pool raises `PoolClosedError` in each)."""
        self._close(deque())  # built here: a section allocates nothing (module docstring)

    def _close(self, fresh: deque[Waiter]) -> None:
        locked = False
        try:
            locked = self._lock.acquire()
            waiters = self.queue
            self.queue = fresh  # swapped, not copied: the old line is woken outside the lock
            self._pool._blocked = True  # closed
        finally:
            if locked:
                self._lock.release()
        for waiter in waiters:
            waiter.closed = True  # before the wake: a woken waiter reads it
            waiter.wake()

    def clear_after_fork(self) -> None:
        """In a child process: forget every waiter (their threads and loops are the parent's).

        Indices already handed to such a waiter are lost to the child, like handles held by
        the parent's other threads.
        """
        self.queue = deque()
        self._flag()


def pop_or_none(free: list[int]) -> int | None:
    """The top of `free`, or None if another thread emptied it since the caller looked.

    A function of its own so that no locked section holds a `try` of its own: CPython leaves
    some of a nested `try`'s instructions out of the frame's exception table, so an exception
    raised there by a tracer would skip the section's `finally` and keep its lock.
    """
    try:
        return free.pop()
    except IndexError:  # the lock-free hot path took the last one meanwhile
        return None


def deadline_of(timeout: float | None) -> float | None:
    """The monotonic time a wait of `timeout` seconds ends, or None (never)."""
    return None if timeout is None else time.monotonic() + timeout


def next_nap(deadline: float | None, first: bool) -> float:
    """How long to park before the next look for recovered leaks or the deadline (>= 0).

    `first`: the waiter heads its line, so it is the one that polls often.
    """
    poll = LEAK_POLL_S if first else BACK_OF_LINE_POLL_S
    if deadline is None:
        return poll
    return max(0.0, min(poll, deadline - time.monotonic()))


def expired(deadline: float | None) -> bool:
    """Whether the wait that ends at `deadline` is over."""
    return deadline is not None and time.monotonic() >= deadline

