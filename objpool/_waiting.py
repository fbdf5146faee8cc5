"""Waiting for capacity: one fair line of threads and asyncio tasks, served by hand-off.

`Pool` and `BufPool` wait on this one line, with this one wait loop (`wait`, `wait_async`,
both driven by `naps`). A waiter asks for `need` units; what the pool grants it (a slot index
in `Pool`, the `need` buffers charged in `BufPool`) goes to `waiter.grant`.

Invariant: a waiter is in the line from `join()` until it is granted (`serve`), the pool
closes (`close`), or it leaves (`leave`: a timeout, a cancellation, an interrupt); every one of
these moves happens under the line's lock, under which no user code runs. A grant belongs to
its waiter: it returns it to its caller or, leaving after the grant, gives it back to the
pool, which serves the next waiter. So nothing is lost however a wait ends, and nothing is
granted twice.

The line's lock is its own (`Pool`) or the pool's (`BufPool`, whose budget it then guards
too: a grant charges the budget in the same section that takes the waiter out of the line).
The pool grants with `_grant(waiter)`, called under that lock and allocation-free.

No section under the line's lock makes an object the garbage collector tracks, calls user
code, or holds a `try` of its own (see `objpool._locking`): a collection started inside one
could run a finaliser that releases into the same pool and so waits for this thread's own
lock. Whatever a section needs (a fresh deque for `close`) is made before it, by the caller.

Fairness: first come, first served, threads and tasks alike, with head-of-line blocking: a
waiter whose need cannot be granted yet holds up everyone behind it, even those whose smaller
need would fit (that is what keeps a large `BufPool` request from being starved by a stream
of small ones; the price is capacity left idle meanwhile). While anyone waits, a newcomer
joins the line instead of taking free capacity: the line keeps the pool's `_blocked` flag
("closed, or someone waits", written under the lock, read without it), which the pool's
fast path tests instead of `_closed`. With nobody waiting the pool pays one test of a bool
on release and none more on allocate.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Iterator
from queue import Empty, SimpleQueue  # not `import queue`: see ThreadWaiter
from typing import Final, Protocol, TypeVar

H = TypeVar("H", covariant=True)  # what a wait returns: a handle or an allocation


__all__ = [
    "BACK_OF_LINE_POLL_S",
    "LEAK_POLL_S",
    "NO_WAIT",
    "Line",
    "Served",
    "TaskWaiter",
    "ThreadWaiter",
    "Waiter",
    "Waits",
    "deadline_of",
    "expired",
    "naps",
    "next_nap",
    "pop_or_none",
    "wait",
    "wait_async",
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
    """One thread or task in a line, asking for `need` units: granted, or told the pool closed.

    `grant` is what the pool granted (a slot index in `Pool`, the buffers charged in
    `BufPool`); None while waiting. `since` is when the wait began (monotonic seconds).
    """

    __slots__ = ("closed", "grant", "need", "since")

    def __init__(self, need: int = 1) -> None:
        self.grant: int | None = None
        self.closed = False
        self.need = need
        self.since = time.monotonic()

    def wake(self) -> bool:
        """Tell the waiter to look at `grant`/`closed`; False if it can never wake."""
        raise NotImplementedError

    def answered(self) -> bool:
        """Whether it was granted, or told the pool closed: its wait is over."""
        return self.grant is not None or self.closed


class ThreadWaiter(Waiter):
    """A thread parked on a queue of its own, woken by a put (the GIL is not held meanwhile).

    A `SimpleQueue`, not a locked `Lock`: on a free-threaded build a lock's timed acquire
    spins first, calling sched_yield() up to 40 times before it parks, so with more threads
    than cores every waiter stayed runnable and took its share of the cores to spin. The
    queue's `get` parks at once. 50 threads on a 4-object `Pool`, 2 cores, CPython 3.13t
    without the GIL (`objpool-bench --only sharing`'s fairness run, compiled): 6-10x the
    acquisitions, and the busiest thread's over the median thread's from 3.0-8.3x to 1.5-2.1x.

    Imported by name: with a module named `queue` imported here, CPython 3.11 compiles every
    `queue.popleft()` in this module (`Line`'s locals are called `queue`) as an attribute load
    that makes a bound method, an object the collector tracks, inside a locked section
    (`tests/test_gc_in_sections.py` found it).
    """

    __slots__ = ("_parked",)

    def __init__(self, need: int = 1) -> None:
        super().__init__(need)
        self._parked: SimpleQueue[bool] = SimpleQueue()

    def wake(self) -> bool:
        self._parked.put(True)
        return True

    def sleep(self, seconds: float) -> bool:
        """Park up to `seconds`; True if woken."""
        try:
            return self._parked.get(timeout=seconds)
        except Empty:
            return False


class TaskWaiter(Waiter):
    """An asyncio task awaiting a future of its loop, woken thread-safely from any thread."""

    __slots__ = ("_future", "_loop")

    def __init__(self, loop: asyncio.AbstractEventLoop, need: int = 1) -> None:
        super().__init__(need)
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


class Served(Protocol):
    """The pool a `Line` serves: it keeps the pool's `_blocked` flag, and asks it for grants."""

    _blocked: bool
    _closed: bool

    def _grant(self, waiter: Waiter) -> bool:
        """Under the line's lock: grant `waiter.need` units if they are free, recorded in
        `waiter.grant` with no call between taking them and the record (a call is where an
        interrupt lands); whether it did. Allocation-free, and runs no user code."""

    def _return_grant(self, grant: int) -> None:
        """Take back a grant whose waiter can never wake (no lock held; serves nobody)."""


class Line:
    """The pool's waiters, oldest first; keeps `pool._blocked` true while any wait."""

    __slots__ = ("_lock", "_pool", "queue")

    def __init__(self, pool: Served, lock: threading.Lock | None = None) -> None:
        """`lock`: the pool's own, if it guards the pool's capacity; else the line makes one."""
        self.queue: deque[Waiter] = deque()
        self._pool = pool
        self._lock = threading.Lock() if lock is None else lock

    def _flag(self) -> None:
        # Under the lock. A bool: the hot path's truth test of it is the cheapest there is.
        self._pool._blocked = self._pool._closed or bool(self.queue)

    def is_first(self, waiter: Waiter) -> bool:
        """Whether `waiter` heads the line: read without the lock, a hint for how often to poll."""
        try:
            return self.queue[0] is waiter
        except IndexError:
            return False

    def join(self, waiter: Waiter) -> None:
        """Grant `waiter` its need at once if nobody is ahead and it is free, else queue it.

        The grant goes to `waiter.grant`, never through a return value: an interrupt that
        lands after it then finds it on the waiter, and `leave()` gives it back. On a closed
        pool the waiter is not queued (nobody would wake it): it comes back with `closed`
        set. The section allocates nothing (see the module docstring).
        """
        locked = False
        try:
            locked = self._lock.acquire()
            if self._pool._closed:  # closed after the caller looked: close() woke the line already
                waiter.closed = True
                return
            # Queued and flagged before the pool is asked: a release that appends outside
            # the lock (Pool's) and then tests the flag either is seen by the grant below or
            # sees the flag and serves the line. Asked first, a release landing between the
            # look and the flag went unnoticed, and the waiter slept with a slot free.
            queue = self.queue
            queue.append(waiter)
            self._pool._blocked = True
            if queue[0] is waiter and self._pool._grant(waiter):
                queue.popleft()
                self._flag()
        finally:
            if locked:
                self._lock.release()

    def serve(self) -> None:
        """Grant the oldest waiters their needs, in order, while the head's need is free.

        One waiter per locked section, woken after it: the section allocates nothing and
        calls nothing. The grant is stored on the waiter before it leaves the line, so an
        interrupt anywhere leaves it either with the pool, or on a waiter that `leave()` or
        its own next look finds.
        """
        while True:
            waiter = self._grant_head()
            if waiter is None:
                return
            if not waiter.wake():  # its loop closed: take its grant back, serve the next
                grant = self.leave(waiter)
                if grant is not None:
                    self._pool._return_grant(grant)

    def _grant_head(self) -> Waiter | None:
        locked = False
        try:
            locked = self._lock.acquire()
            queue = self.queue
            if not queue:
                self._flag()
                return None
            waiter = queue[0]
            if waiter.grant is None and not self._pool._grant(waiter):  # else granted already
                self._flag()  # head-of-line blocking: nobody passes it
                return None
            queue.popleft()
            self._flag()
            return waiter
        finally:
            if locked:
                self._lock.release()

    def leave(self, waiter: Waiter) -> int | None:
        """`waiter` stops waiting: out of the line, or, if it was granted, its grant."""
        locked = False
        try:
            locked = self._lock.acquire()
            # Out of the line even if granted: an interrupt between a grant and its popleft()
            # leaves a granted waiter there, which must not be granted again. The grant stays
            # on the waiter across the calls (an interrupt lands at a call), then moves at once.
            queue = self.queue
            if waiter in queue:  # else served or closed meanwhile; tested, not caught:
                queue.remove(waiter)  # an exception is an object the collector tracks
                self._flag()
            grant, waiter.grant = waiter.grant, None
            return grant
        finally:
            if locked:
                self._lock.release()

    def close(self) -> None:
        """Wake every waiter with `closed` set (the pool raises `PoolClosedError` in each).
        The pool has set its `_closed` first."""
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

        Grants already made to such a waiter are lost to the child, like handles held by the
        parent's other threads.
        """
        self.queue = deque()
        self._flag()


class Waits(Served, Protocol[H]):
    """A pool that waits on a `Line`: how a wait looks for capacity and how it ends."""

    @property
    def _line(self) -> Line: ...

    def _recover_for_waiters(self) -> None:
        """Take back capacity from leaks (the collector that finds one wakes nobody)."""

    def _lend_handed(self, waiter: Waiter) -> H:
        """What the wait returns, made from `waiter.grant` (held there until it holds it);
        `PoolClosedError` if the waiter was woken by `close()`."""
        ...

    def _give_up(self, waiter: Waiter, timeout: float | None) -> H:
        """The deadline passed: leave the line, unless granted meanwhile (then lend)."""
        ...

    def _leave(self, waiter: Waiter) -> None:
        """The wait ends in an exception: out of the line, any grant given back."""


def wait(pool: Waits[H], need: int, timeout: float | None) -> H:
    """Queue behind earlier waiters and park this thread until granted `need` units.

    From joining the line to the `return`, every exit (a timeout, `close()`, an interrupt,
    any exception) either returns what the grant made or gives the grant back: it waits on
    `waiter.grant` until the pool's `_lend_handed` holds it (see `Line.join`).
    """
    waiter = ThreadWaiter(need)
    deadline = deadline_of(timeout)  # before joining: nothing may raise between join and try
    try:
        pool._line.join(waiter)
        for nap in naps(pool, waiter, deadline):
            waiter.sleep(nap)
        return _end(pool, waiter, timeout)
    except BaseException:  # an interrupt anywhere in the wait: never lose a grant
        pool._leave(waiter)
        raise


async def wait_async(pool: Waits[H], need: int, timeout: float | None) -> H:
    """`wait` for an asyncio task: the event loop runs on while it waits."""
    waiter = TaskWaiter(asyncio.get_running_loop(), need)
    deadline = deadline_of(timeout)
    try:
        pool._line.join(waiter)
        for nap in naps(pool, waiter, deadline):
            await waiter.sleep(nap)
        return _end(pool, waiter, timeout)
    except BaseException:  # cancelled, perhaps at the very moment of a grant
        pool._leave(waiter)
        raise


def naps(pool: Waits[object], waiter: Waiter, deadline: float | None) -> Iterator[float]:
    """The one wait loop: how long `waiter` parks next, until it is granted, the pool
    closes, or `deadline` passes. Between naps it looks for capacity recovered from leaks."""
    while not waiter.answered():
        yield next_nap(deadline, pool._line.is_first(waiter))
        if not waiter.answered():  # the nap ran out: nobody woke it
            pool._recover_for_waiters()
            if expired(deadline):
                return


def _end(pool: Waits[H], waiter: Waiter, timeout: float | None) -> H:
    if waiter.answered():
        return pool._lend_handed(waiter)
    return pool._give_up(waiter, timeout)


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

