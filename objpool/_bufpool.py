"""`BufPool`: contiguous runs of fixed-size buffers under one memory budget, with waiting.

Invariant: `_in_use` is the number of buffers charged to live `BufAllocation`s, to waiters
they were granted to, and to leaked allocations not yet recovered (in `_leaked`), never more
than `_budget`; every change to it, to the idle blocks and to the line happens under `_lock`,
which guards only that bookkeeping (no user code, no allocation of a buffer's memory runs
under it). A leak is found by the garbage collector, which may run inside a locked section
on the same thread, so it only appends to `_leaked` (atomic); the budget comes back at the
next call that needs it (`_drain_leaks`), and waiters look for it as they do in `Pool`. Budget handed to a waiter belongs to that waiter until it either returns an
allocation or gives the budget back (timeout, cancellation, interrupt), so none is lost.

Fairness: first come, first served, with head-of-line blocking: while the oldest waiter's
request does not fit, later (smaller) requests wait behind it even if they would fit. That is
what keeps a large request from being starved by a stream of small ones; the price is idle
budget while the head waits for enough to come back.

Memory reuse: a released block goes to an idle list by size class (the request's buffer count
rounded up to a power of two), and a later request of the same class reuses it without a new
allocation; `trim()` frees the idle blocks. The budget counts the bytes handed out
(`n * buffer_size`); the block behind an allocation may be up to twice that (its class).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, NoReturn, final

from . import _fork
from ._compiled import COMPILED
from ._errors import PoolClosedError, PoolExhaustedError, StaleRefError
from ._locking import take_contended
from ._validate import check_int, check_size
from ._views import release_all, remember
from ._waiting import (
    NO_WAIT,
    TaskWaiter,
    ThreadWaiter,
    Waiter,
    check_wait,
    deadline_of,
    expired,
    next_nap,
)
from ._warn import allocation_site, warn_user

__all__ = ["BufAllocation", "BufPool", "BufPoolStats"]

_RELEASED: Final = "this BufAllocation was released; its buffers belong to the pool again"


def _entry(n: int, waiter: Waiter) -> tuple[int, Waiter]:
    """A waiter's place in the line, built before the locked section that queues it."""
    return (n, waiter)


@final
@dataclass(frozen=True, slots=True)
class BufPoolStats:
    """An immutable snapshot of a `BufPool`'s counters, from `BufPool.stats()`."""

    budget: int
    """Bytes that may be handed out at once (`max_memory`, rounded down to whole buffers)."""
    in_use: int
    """Bytes handed out through live allocations."""
    high_water: int
    """The most bytes ever handed out at once."""
    idle: int
    """Bytes of released blocks kept for reuse (`trim()` frees them)."""
    waiting: int
    """Threads and tasks waiting for budget now."""
    waited_s: float
    """Total seconds callers spent waiting for budget."""
    timeouts: int
    """Waits that ran out (and `timeout=0` calls that found too little budget)."""
    allocations: int
    """Successful `allocate()`/`acquire()` calls."""
    reused: int
    """Allocations served by an idle block, without allocating memory."""
    leaks: int
    """Allocations garbage-collected while live (each raised a `ResourceWarning`)."""


@final
class BufAllocation:
    """`n` contiguous buffers of one `BufPool`, lent until `release()`.

    `len(a)` is `n`; iterating gives `n` writable memoryviews of `buffer_size` bytes each, in
    order, and `view` the whole run. `release()` returns the budget and releases every view
    handed out; a second release raises `StaleRefError`, as does any use after it. Use it as
    a context manager (`with pool.allocate(4) as a:`) to release at the end of the block. An
    allocation garbage-collected while live is a leak: it warns (`ResourceWarning`) and its
    budget comes back, but its memory is never reused (it may still be referenced).
    """

    __slots__ = ("_block", "_claim", "_n", "_pool", "_views")
    _block: bytearray
    _claim: list[int]
    _n: int
    _pool: _BufPoolCore
    _views: list[memoryview] | None  # views handed out, released with the allocation (None: none yet)

    def __init__(self) -> None:
        raise TypeError("BufAllocation is made by BufPool.allocate() and BufPool.acquire() only")


    @property
    def alive(self) -> bool:
        """False once released."""
        return bool(self._claim)

    @property
    def view(self) -> memoryview:
        """A writable view of all `n * buffer_size` bytes, released with the allocation."""
        if not self._claim:
            raise StaleRefError(_RELEASED)
        whole = memoryview(self._block)[: self._n * self._pool._buffer_size]
        if self._views is None:
            self._views = [whole]
            return whole
        return remember(self._views, whole)

    def __len__(self) -> int:
        return self._n

    def __iter__(self) -> Iterator[memoryview]:
        whole = self.view
        size = self._pool._buffer_size
        for start in range(0, self._n * size, size):
            yield remember(self._views, whole[start : start + size])  # type: ignore[arg-type]  # set by .view

    def release(self) -> None:
        """Return the buffers' budget to the pool (first come, first served to its waiters).

        Raises:
            StaleRefError: the allocation was already released.
            BufferError: a view of the buffers is still exported; release that first.
        """
        if not self._claim:
            raise StaleRefError(f"{self!r} was already released")
        if self._views is not None:
            release_all(self._views)  # BufferError: nothing changed, the allocation stays live
        try:
            n = self._claim.pop()
        except IndexError:
            raise StaleRefError(f"{self!r} was already released") from None
        self._pool._give_back(n, self._block)

    def __enter__(self) -> BufAllocation:
        if not self._claim:
            raise StaleRefError(_RELEASED)
        return self

    def __exit__(self, exc_type: object, exc: object, traceback: object) -> None:
        self.release()

    async def __aenter__(self) -> BufAllocation:
        return self.__enter__()

    async def __aexit__(self, exc_type: object, exc: object, traceback: object) -> None:
        self.release()

    def __del__(self) -> None:
        try:
            claim = self._claim
        except AttributeError:  # never made by a pool
            return
        if not claim:
            return
        try:
            n = claim.pop()
        except IndexError:
            return
        self._pool._on_leak(n, self)

    def __copy__(self) -> NoReturn:
        raise TypeError("BufAllocation cannot be copied: two owners would release one budget")

    def __deepcopy__(self, memo: object) -> NoReturn:
        raise TypeError("BufAllocation cannot be copied: two owners would release one budget")

    def __reduce_ex__(self, protocol: object) -> NoReturn:
        raise TypeError("BufAllocation cannot be pickled: take bytes(a.view) instead")

    def __repr__(self) -> str:
        state = "live" if self._claim else "released"
        return f"<BufAllocation {state} {self._n} x {self._pool._buffer_size} bytes>"


def _allocation(pool: _BufPoolCore, block: bytearray, claim: list[int]) -> BufAllocation:
    """A live `BufAllocation` over `block` of the `n` buffers in the one-element `claim`, whose
    budget is charged (its __init__ refuses outsiders). Whoever pops `claim` owns the budget:
    the allocation's one winning release, or the caller's cleanup if an interrupt lands first.
    """
    allocation: BufAllocation = object.__new__(BufAllocation)
    allocation._pool = pool
    allocation._block = block
    allocation._n = claim[0]
    allocation._views = None
    allocation._claim = claim
    return allocation


class _BufPoolCore:
    """`BufPool`'s hot path: `allocate()` when the request fits at once, and giving back.

    When the install compiled it, `objpool._cbufpool.BufPoolCore` replaces this class (and
    `BufAllocation` with it): the same methods and messages, checked by the same tests.
    Everything else stays in `BufPool`, which the core calls back into.
    """

    __slots__ = (
        "_allocations",
        "_budget",
        "_buffer_size",
        "_closed",
        "_fresh",
        "_high_water",
        "_idle",
        "_in_use",
        "_line",
        "_lock",
    )
    _allocations: int
    _budget: int  # in buffers
    _buffer_size: int
    _closed: bool
    _fresh: int  # allocations that needed new memory; the rest reused an idle block
    _high_water: int
    _idle: list[list[bytearray]]  # released blocks by size class: [k] holds blocks of 2**k buffers
    _in_use: int
    _line: deque[tuple[int, Waiter]]
    _lock: threading.Lock

    def allocate(self, n: int, timeout: float | None = NO_WAIT) -> BufAllocation:
        """`n` contiguous buffers; with a `timeout`, wait up to that long for the budget.

        Raises:
            PoolExhaustedError: too little budget is free (for the whole `timeout`), or
                others are waiting ahead.
            PoolClosedError: `close()` was called (before or during the wait).
            ValueError: `n < 1`, or `n` buffers exceed the whole budget.
            TypeError: `n` is not an int, or `timeout` not a number or None.
        """
        if n.__class__ is not int or n < 1 or n > self._budget:
            n = self._check_n(n)  # raises, naming the rule
        if timeout is not NO_WAIT:  # the default skips the check: one identity test
            timeout = check_wait("timeout", timeout)
        # The common case in one locked section: budget, counters and an idle block.
        # Folding _take() and _lend() together: 3.0 -> 1.x us per allocate+release.
        k = (n - 1).bit_length()  # the size class: blocks of 2**k buffers
        block = None
        lock = self._lock
        locked = False
        try:
            locked = take_contended(lock) if lock.locked() else lock.acquire()  # not `with`: see _locking
            if not self._line and not self._closed and self._in_use + n <= self._budget:
                in_use = self._in_use = self._in_use + n
                if in_use > self._high_water:
                    self._high_water = in_use
                self._allocations += 1
                idle = self._idle[k]
                if idle:  # reused: no counter to bump (reuses = allocations - fresh ones)
                    block = idle.pop()
                else:
                    self._fresh += 1
                charged = True
            else:
                charged = False
        finally:
            if locked:
                lock.release()
        if not charged:
            return self._allocate_slow(n, timeout)
        # Budget charged. Nothing was built under the lock (a collection started there could
        # run a finaliser that releases into this pool); the memory is allocated here.
        claim = [n]
        try:
            if block is None:
                block = bytearray(self._buffer_size << k)
            return _allocation(self, block, claim)
        except BaseException:  # an interrupt: the budget goes back unless the allocation has it
            self._lend_failed(claim)
            raise

    def _give_back(self, n: int, block: bytearray | None) -> None:
        """Return `n` buffers' budget (and their block for reuse) and serve the line.

        Waiters are served one per locked section, woken after it, so that no section
        allocates (see the module docstring).
        """
        lock = self._lock
        locked = False
        try:
            locked = take_contended(lock) if lock.locked() else lock.acquire()
            self._in_use -= n
            if block is not None:
                self._idle[(len(block) // self._buffer_size).bit_length() - 1].append(block)
            waiter = self._grant_head() if self._line else None
        finally:
            if locked:
                lock.release()
        while waiter is not None:
            if not waiter.wake():  # its event loop closed: it will never take the budget
                self._leave_granted(waiter)
            waiter = self._grant_next()

    def _grant_next(self) -> Waiter | None:
        locked = False
        try:
            locked = self._lock.acquire()
            return self._grant_head() if self._line else None
        finally:
            if locked:
                self._lock.release()

    def _grant_head(self) -> Waiter | None:
        """Under the lock: charge the oldest waiter's request if it fits (head-of-line
        blocking: nobody passes it), take it out of the line, and return it to be woken."""
        entry = self._line[0]  # not unpacked: 3.11's unspecialised unpacking makes an iterator
        need = entry[0]
        waiter = entry[1]
        in_use = self._in_use + need
        if in_use > self._budget:
            return None
        # Charged and recorded with no call between (a call is where an interrupt lands):
        # the grant sits on the waiter until its allocation holds it.
        self._in_use = in_use
        waiter.index = need
        if in_use > self._high_water:
            self._high_water = in_use
        self._line.popleft()
        return waiter

    def _check_n(self, n: object) -> int:
        raise NotImplementedError  # BufPool's

    def _lend_failed(self, claim: list[int]) -> None:
        raise NotImplementedError  # BufPool's

    def _leave_granted(self, waiter: Waiter) -> None:
        raise NotImplementedError  # BufPool's

    def _on_leak(self, n: int, allocation: BufAllocation) -> None:
        raise NotImplementedError  # BufPool's

    def _allocate_slow(self, n: int, timeout: float | None) -> BufAllocation:
        raise NotImplementedError  # BufPool's



if COMPILED and not TYPE_CHECKING:  # type checkers read the Python classes above, the reference
    from ._cbufpool import BufAllocation, BufPoolCore as _BufPoolCore, _allocation


@final
class BufPool(_BufPoolCore):
    """Runs of `buffer_size`-byte buffers, at most `max_memory` bytes handed out at once.

    `allocate(n)` lends `n` contiguous buffers as one `BufAllocation`, at once or (with a
    `timeout`) once enough budget comes back; `await acquire(n)` does the same for asyncio.
    Waiters are served first come, first served (see the module docstring for the trade-off).
    Thread-safe.
    """

    __slots__ = (
        "_leaked",
        "_leaks",
        "_timeouts",
        "_waited_s",
        "__weakref__",
    )

    def __init__(self, buffer_size: int, max_memory: int) -> None:
        """Raises `TypeError`/`ValueError` for a non-int or non-positive size, or a budget
        smaller than one buffer."""
        check_size("buffer_size", buffer_size, 1)
        check_size("max_memory", max_memory, buffer_size)
        self._buffer_size = buffer_size
        self._budget = max_memory // buffer_size  # in buffers
        self._in_use = 0
        self._high_water = 0
        # One list per size class the budget allows, made now: no section ever makes one.
        self._idle = [[] for _ in range(self._budget.bit_length())]
        self._line: deque[tuple[int, Waiter]] = deque()
        self._lock = threading.Lock()
        self._closed = False
        self._allocations = 0
        self._fresh = 0  # allocations that needed new memory; the rest reused an idle block
        self._leaks = 0
        self._leaked: list[int] = []
        self._timeouts = 0
        self._waited_s = 0.0
        _fork.register(self)

    @property
    def buffer_size(self) -> int:
        """Bytes per buffer."""
        return self._buffer_size

    @property
    def max_memory(self) -> int:
        """The budget in bytes: `max_memory` rounded down to whole buffers."""
        return self._budget * self._buffer_size

    def _check_n(self, n: object) -> int:
        n = check_int("n", n, 1)
        if n > self._budget:
            raise ValueError(
                f"n must be <= {self._budget} (max_memory {self.max_memory} / buffer_size "
                f"{self._buffer_size}): a request larger than the budget could never be served, got int {n}"
            )
        return n

    def _allocate_slow(self, n: int, timeout: float | None) -> BufAllocation:
        """`allocate()` when the request does not fit at once: wait, or raise.

        From joining the line to the `return`, every exit (a timeout, `close()`, an interrupt,
        any exception) either returns an allocation or gives the budget granted back: the
        grant waits on `waiter.index` until an allocation holds it.
        """
        self._drain_leaks()
        allocation = self._lend_if_fits(n)  # raises if closed
        if allocation is not None:
            return allocation
        if timeout == 0:
            raise self._exhausted(n, timeout)
        deadline = deadline_of(timeout)  # before joining: nothing may raise between join and try
        started = time.monotonic()
        waiter = ThreadWaiter()
        entry = _entry(n, waiter)
        try:
            self._join(entry)
            while waiter.index is None and not waiter.closed:
                if waiter.sleep(next_nap(deadline, self._is_first(waiter))):
                    continue  # woken: granted, or closed
                self._drain_leaks()  # the collector that finds a leak wakes nobody
                if expired(deadline):
                    self._waited(started)
                    return self._give_up(entry, timeout)
            self._waited(started)  # before the lend: nothing may run between it and the return
            return self._lend_handed(waiter)
        except BaseException:
            self._leave(entry)
            raise

    def acquire(self, n: int, timeout: float | None = None) -> _BufAcquisition:
        """`allocate()` for asyncio: `a = await pool.acquire(n)` or `async with pool.acquire(n) as a:`.

        The event loop runs on while the task waits.

        Raises (at once): `ValueError`/`TypeError` as `allocate()`. Raises (when awaited):
        `PoolExhaustedError`, `PoolClosedError`.
        """
        return _BufAcquisition(self, self._check_n(n), check_wait("timeout", timeout))

    async def _acquire(self, n: int, timeout: float | None) -> BufAllocation:
        self._drain_leaks()
        allocation = self._lend_if_fits(n)
        if allocation is not None:
            return allocation
        if timeout == 0:
            raise self._exhausted(n, timeout)
        deadline = deadline_of(timeout)
        started = time.monotonic()
        waiter = TaskWaiter(asyncio.get_running_loop())
        entry = _entry(n, waiter)
        try:
            self._join(entry)
            while waiter.index is None and not waiter.closed:
                if await waiter.sleep(next_nap(deadline, self._is_first(waiter))):
                    continue
                self._drain_leaks()  # the collector that finds a leak wakes nobody
                if expired(deadline):
                    self._waited(started)
                    return self._give_up(entry, timeout)
            self._waited(started)  # before the lend: nothing may run between it and the return
            return self._lend_handed(waiter)
        except BaseException:
            self._leave(entry)
            raise

    # -- the budget, under the lock. Each section opens its own method, so that a collection
    # -- made due by the caller's allocations runs at the call, before the lock is taken. --

    def _take(self, n: int, claim: list[int]) -> bool:
        """Charge `n` buffers, recorded in `claim[0]`, if nobody waits ahead and they fit."""
        locked = False
        try:
            locked = self._lock.acquire()
            if self._closed:
                raise PoolClosedError(f"{self!r} is closed and lends nothing more")
            in_use = self._in_use + n
            if self._line or in_use > self._budget:
                return False
            self._in_use = in_use
            claim[0] = n  # with no call between: see _grant_head
            if in_use > self._high_water:
                self._high_water = in_use
            return True
        finally:
            if locked:
                self._lock.release()

    def _is_first(self, waiter: Waiter) -> bool:
        """Whether `waiter` heads the line: read without the lock, a hint for how often to poll."""
        try:
            return self._line[0][1] is waiter
        except IndexError:
            return False

    def _join(self, entry: tuple[int, Waiter]) -> None:
        """Grant `entry`'s request at once if it fits and nobody is ahead, else queue it."""
        locked = False
        try:
            locked = self._lock.acquire()
            if self._closed:
                raise PoolClosedError(f"{self!r} is closed and lends nothing more")
            n = entry[0]  # not unpacked: see _grant_head
            waiter = entry[1]
            in_use = self._in_use + n
            if not self._line and in_use <= self._budget:
                self._in_use = in_use
                waiter.index = n  # with no call between: see _grant_head
                if in_use > self._high_water:
                    self._high_water = in_use
                return
            self._line.append(entry)
        finally:
            if locked:
                self._lock.release()

    def _withdraw(self, entry: tuple[int, Waiter]) -> int | None:
        """Take `entry` out of the line; or, if budget was granted to it already, that grant."""
        locked = False
        try:
            locked = self._lock.acquire()
            waiter = entry[1]
            granted, waiter.index = waiter.index, None
            if granted is None and entry in self._line:  # tested first: no exception to build
                self._line.remove(entry)
        finally:
            if locked:
                self._lock.release()
        return granted

    def _leave(self, entry: tuple[int, Waiter]) -> None:
        # A grant the waiter will not use goes on; and a waiter leaving may unblock the line
        # behind a head that could not be served. Either way: give back and serve.
        self._give_back(self._withdraw(entry) or 0, None)

    def _leave_granted(self, waiter: Waiter) -> None:
        """A waiter that can never wake (its loop closed) gives its grant back."""
        locked = False
        try:
            locked = self._lock.acquire()
            granted, waiter.index = waiter.index, None
        finally:
            if locked:
                self._lock.release()
        if granted is not None:
            self._give_back(granted, None)

    def _give_up(self, entry: tuple[int, Waiter], timeout: float | None) -> BufAllocation:
        n, waiter = entry
        waiter.index = self._withdraw(entry)  # kept on the waiter until an allocation holds it
        if waiter.index is not None:  # granted as the wait ran out: it is ours
            return self._lend_handed(waiter)
        self._give_back(0, None)  # the line behind us may fit now
        if waiter.closed:
            raise PoolClosedError(f"{self!r} was closed while waiting for buffers")
        raise self._exhausted(n, timeout)

    def _lend_handed(self, waiter: Waiter) -> BufAllocation:
        """The allocation for the budget granted to `waiter` (which holds the grant until the
        claim does, so that the waiting frame's cleanup finds it wherever an interrupt lands)."""
        n = waiter.index
        if n is None:
            raise PoolClosedError(f"{self!r} was closed while waiting for buffers")
        claim = [n]
        waiter.index = None
        try:
            return self._lend_granted(claim)
        except BaseException:
            self._lend_failed(claim)
            raise

    def _waited(self, started: float) -> None:
        elapsed = time.monotonic() - started
        locked = False
        try:
            locked = self._lock.acquire()
            self._waited_s += elapsed
        finally:
            if locked:
                self._lock.release()

    def _exhausted(self, n: int, timeout: float | None) -> PoolExhaustedError:
        locked = False
        try:
            locked = self._lock.acquire()
            self._timeouts += 1
        finally:
            if locked:
                self._lock.release()
        free = self._budget - self._in_use
        text = f"{n} buffer{'s' if n != 1 else ''} of {self._buffer_size} bytes {'do' if n != 1 else 'does'} not fit: {free} of {self._budget} free"
        if self._line:
            text += f", {len(self._line)} waiting ahead"
        if timeout:
            text += f", within {timeout:g} s"
        return PoolExhaustedError(text)

    def _lend_if_fits(self, n: int) -> BufAllocation | None:
        """An allocation of `n` buffers if they fit now and nobody waits ahead, else None.

        The charge lands in `claim` in the section that makes it, and the lend runs inside
        the `try` that gives it back: no interrupt finds the budget charged and held nowhere.
        """
        claim = [0]  # [n] once charged
        try:
            if not self._take(n, claim):  # raises if closed
                return None
            return self._lend_granted(claim)
        except BaseException:
            self._lend_failed(claim)
            raise

    def _lend_granted(self, claim: list[int]) -> BufAllocation:
        """Wrap the `n` charged buffers in the one-element `claim`: an idle block of their
        class, or a new one (allocated with no lock held). The caller gives the budget back
        if this raises; whoever pops `claim` owns it."""
        k = (claim[0] - 1).bit_length()
        block = self._reuse(k)
        if block is None:
            block = bytearray(self._buffer_size << k)
        return _allocation(self, block, claim)

    def _reuse(self, k: int) -> bytearray | None:
        """Count an allocation of class `k`; its newest idle block, if any."""
        locked = False
        try:
            locked = self._lock.acquire()
            self._allocations += 1
            idle = self._idle[k]
            if idle:
                return idle.pop()
            self._fresh += 1
            return None
        finally:
            if locked:
                self._lock.release()

    def _lend_failed(self, claim: list[int]) -> None:
        """An interrupt stopped a lend before the allocation reached its caller: pop the
        claim (killing the allocation, if it was made) and give its budget back."""
        if claim:
            n = claim.pop()
            if n:  # 0: nothing was charged
                self._give_back(n, None)

    def _on_leak(self, n: int, allocation: BufAllocation) -> None:
        # From BufAllocation.__del__, maybe inside the garbage collector, maybe while this very
        # thread holds _lock: so only an atomic append and a warning. The memory may still be
        # referenced, so it is dropped, not reused; the budget comes back in _drain_leaks().
        self._leaked.append(n)
        warn_user(
            f"a BufAllocation of {n} buffers was garbage-collected while still live{allocation_site(allocation)}; "
            "release it, or use 'with pool.allocate(n) as a:'",
            ResourceWarning,
            source=allocation,
        )

    def _drain_leaks(self) -> None:
        """Give leaked allocations' budget back (outside the collector, no lock held)."""
        leaked = self._leaked
        while leaked:
            try:
                n = leaked.pop()
            except IndexError:  # another thread drained it first
                return
            locked = False
            try:
                locked = self._lock.acquire()
                self._leaks += 1
            finally:
                if locked:
                    self._lock.release()
            self._give_back(n, None)

    # -- the rest ---------------------------------------------------------------------------

    def trim(self) -> int:
        """Free every idle block; return the bytes freed."""
        fresh: list[list[bytearray]] = [[] for _ in self._idle]  # built before the section
        idle = self._swap_idle(fresh)
        return sum(len(block) for blocks in idle for block in blocks)  # freed as `idle` goes

    def _swap_idle(self, fresh: list[list[bytearray]]) -> list[list[bytearray]]:
        locked = False
        try:
            locked = self._lock.acquire()
            idle = self._idle
            self._idle = fresh
        finally:
            if locked:
                self._lock.release()
        return idle

    def close(self) -> None:
        """Lend nothing more; waiters get `PoolClosedError`. Live allocations stay valid."""
        waiters = self._close(deque())  # built here: a section allocates nothing
        for _, waiter in waiters:
            waiter.closed = True  # before the wake: a woken waiter reads it
            waiter.wake()

    def _close(self, fresh: deque[tuple[int, Waiter]]) -> deque[tuple[int, Waiter]]:
        locked = False
        try:
            locked = self._lock.acquire()
            self._closed = True
            waiters = self._line
            self._line = fresh  # swapped, not copied: the old line is woken outside the lock
        finally:
            if locked:
                self._lock.release()
        return waiters

    def fork_locks(self) -> tuple[threading.Lock]:
        """The pool's lock, for the fork hook (`objpool._fork`)."""
        return (self._lock,)

    def forked_child(self) -> None:
        """In a child process: the parent's waiting threads are not there; forget them."""
        self._line = deque()

    def stats(self) -> BufPoolStats:
        """A snapshot of the counters, in bytes where they are sizes (leaks found since the
        last call are counted first, and their budget returned)."""
        self._drain_leaks()
        size = self._buffer_size
        # Read in one section, which allocates nothing (ints only); built after it.
        in_use, high_water, idle, waiting, waited_s, timeouts, allocations, fresh, leaks = self._counters()
        return BufPoolStats(
            budget=self._budget * size,
            in_use=in_use * size,
            high_water=high_water * size,
            idle=idle * size,
            waiting=waiting,
            waited_s=waited_s,
            timeouts=timeouts,
            allocations=allocations,
            reused=allocations - fresh,
            leaks=leaks,
        )

    def _counters(self) -> tuple[int, int, int, int, float, int, int, int, int]:
        locked = False
        try:
            locked = self._lock.acquire()
            idle = self._idle
            idle_buffers = 0
            k = len(idle)
            while k:  # not `for`: an iterator is an object the collector tracks
                k -= 1
                idle_buffers += len(idle[k]) << k
            in_use = self._in_use
            high_water = self._high_water
            waiting = len(self._line)
            waited_s = self._waited_s
            timeouts = self._timeouts
            allocations = self._allocations
            fresh = self._fresh
            leaks = self._leaks
        finally:
            if locked:
                self._lock.release()
        return in_use, high_water, idle_buffers, waiting, waited_s, timeouts, allocations, fresh, leaks

    def __repr__(self) -> str:
        return (
            f"<BufPool {self._in_use}/{self._budget} x {self._buffer_size} bytes in use"
            f"{', closed' if self._closed else ''}>"
        )


@final
class _BufAcquisition:
    """What `BufPool.acquire()` returns: await it, or use it with `async with`."""

    __slots__ = ("_allocation", "_n", "_pool", "_timeout")

    def __init__(self, pool: BufPool, n: int, timeout: float | None) -> None:
        self._pool = pool
        self._n = n
        self._timeout = timeout
        self._allocation: BufAllocation | None = None

    def __await__(self) -> Generator[object, None, BufAllocation]:
        return self._pool._acquire(self._n, self._timeout).__await__()

    async def __aenter__(self) -> BufAllocation:
        self._allocation = await self._pool._acquire(self._n, self._timeout)
        return self._allocation

    async def __aexit__(self, exc_type: object, exc: object, traceback: object) -> None:
        if self._allocation is not None:
            self._allocation.release()
