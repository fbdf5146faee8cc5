"""`BufPool`: contiguous runs of fixed-size buffers under one memory budget, with waiting.

Invariant: `_in_use` is the number of buffers charged to live `BufAllocation`s, to waiters
they were granted to, and to leaked allocations not yet recovered (in `_leaked`), never more
than `_budget`; every change to it, to the idle blocks and to the line happens under `_lock`,
which guards only that bookkeeping (no user code, no allocation of a buffer's memory runs
under it). A leak is found by the garbage collector, which may run inside a locked section
on the same thread, so it only appends to `_leaked` (atomic); the budget comes back at the
next call that needs it (`_drain_leaks`), and waiters look for it as they do in `Pool`.

Waiting: on `Pool`'s line (`objpool._waiting`), whose lock is `_lock`: a waiter asks for its
`n` buffers, and the section that grants them charges the budget (`_grant`). Budget granted
to a waiter belongs to that waiter until it either returns an allocation or gives the budget
back (timeout, cancellation, interrupt), so none is lost. First come, first served, with
head-of-line blocking: while the oldest waiter's request does not fit, later (smaller)
requests wait behind it even if they would fit. That is what keeps a large request from
being starved by a stream of small ones; the price is idle budget while the head waits for
enough to come back.

Memory reuse: a released block goes to an idle list by size class (the request's buffer count
rounded up to a power of two), and a later request of the same class reuses it without a new
allocation; `trim()` frees the idle blocks. The budget counts the bytes handed out
(`n * buffer_size`; the block behind an allocation may be up to twice that, its class) and
the idle blocks: `_in_use + _idle_buffers <= _budget` always. A new block first gives up idle
ones (largest class first, oldest first within it), and a released block that would not fit
is freed rather than kept; given-up blocks are freed after the section (`_evicted`).

Thread caches (`thread_cache`, on by default without a GIL): a thread keeps up to
`CACHE_DEPTH` of its released blocks in its own `BlockCache`, their budget still charged (so
`_in_use` counts them, and every invariant above holds unchanged), and its next request of
the same size takes one back without the lock. A cache keeps a block only while nobody waits
and the shared budget has `CACHE_DEPTH` times as much free for the others. Whenever that
is not enough (a request that does not fit, a waiter, `trim()`, `close()`, `stats()` reads
around them) the caches' blocks come back to the shared budget (`_reclaim_cached`), outside
any lock: a cache's list is taken from only by `pop()`, atomic, and its counts have one
writer, its thread.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, NoReturn, final

from . import _fork
from ._acquisition import Acquisition
from ._compiled import COMPILED
from ._errors import ForeignRefError, PoolClosedError, PoolExhaustedError, StaleRefError
from ._locking import gil_enabled, take_contended
from ._pool import CACHE_DEPTH
from ._threadnumber import THIS_THREAD, cache_for_this_thread
from ._validate import check_int, check_optional_str, check_seconds, check_size, reject
from ._views import release_all, remember
from ._waiting import NO_WAIT, Line, Waiter, wait, wait_async
from ._warn import allocation_site, warn_user

__all__ = ["BufAllocation", "BufPool", "BufPoolStats"]

_RELEASED: Final = "this BufAllocation was released; its buffers belong to the pool again"
_COUNTS: Final = 10  # stats(): the ints read in one section (see BufPool._read_counts)


@final
@dataclass(frozen=True, slots=True)
class BufPoolStats:
    """An immutable snapshot of a `BufPool`'s counters, from `BufPool.stats()`.

    In every snapshot `allocations == deallocations + leaks + lent` and
    `lent_bytes + idle_bytes <= budget_bytes`.
    """

    lent: int
    """Allocations live now (budget granted to a waiter not yet woken counts too)."""
    allocations: int
    """Allocations ever lent (`allocate`, `try_allocate`, `acquire`)."""
    deallocations: int
    """Allocations given back (`release`, `deallocate`, `with`)."""
    leaks: int
    """Allocations garbage-collected while live (each raised a `ResourceWarning`)."""
    hits: int
    """Allocations served by an idle block, without allocating memory."""
    waiting: int
    """Threads and tasks waiting for budget now."""
    exhausted: int
    """Requests refused for too little budget: `timeout=0` calls and waits that ran out."""
    waited_seconds: float
    """Total seconds callers spent waiting for budget."""
    lent_bytes: int
    """Bytes handed out through live allocations."""
    idle_bytes: int
    """Bytes of released blocks kept for reuse (`trim()` frees them)."""
    high_water_bytes: int
    """The most bytes ever handed out at once (with thread caches on, counting the blocks
    kept in a thread's cache, whose budget stays charged)."""
    budget_bytes: int
    """Bytes that may be handed out at once (`max_memory`, rounded down to whole buffers)."""
    closed: bool
    """Whether `close()` was called."""


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
    def pool(self) -> BufPool:
        """The `BufPool` that lent it."""
        return self._pool  # type: ignore[return-value]  # the core is only ever BufPool's base

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


@final
class BlockCache:
    """One thread's released blocks in front of a `BufPool`'s budget (`thread_cache`).

    `kept` holds (returned at, block, buffers charged), newest last, at most `CACHE_DEPTH`;
    their budget stays charged to the pool. Only its thread adds to it and counts; other
    threads take from it only by `kept.pop()` (atomic), to give the budget back.
    `objpool._cbufpool.BlockCache` replaces it in the compiled build.
    """

    __slots__ = ("allocations", "kept", "pool", "releases")

    def __init__(self, pool: object) -> None:
        self.pool = pool  # whose budget the kept blocks hold
        self.kept: list[tuple[float, bytearray, int]] = []
        self.allocations = 0  # lent from `kept` by this cache's thread
        self.releases = 0  # kept by this cache's thread


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
        "_blocked",
        "_budget",
        "_buffer_size",
        "_caches",
        "_closed",
        "_evicted",
        "_high_water",
        "_hits",
        "_idle",
        "_idle_buffers",
        "_in_use",
        "_lent",
        "_line",
        "_lock",
    )
    _allocations: int
    _blocked: bool  # closed, or someone waits: kept by objpool._waiting.Line, hot-path tested
    _budget: int  # in buffers
    _buffer_size: int
    _caches: list[BlockCache | None] | None  # by thread number (objpool._threadnumber); None: off
    _closed: bool
    _evicted: list[bytearray]  # idle blocks given up to make room, freed by whoever drains it
    _high_water: int
    _hits: int  # allocations that reused an idle block
    _idle: list[list[tuple[float, bytearray]]]  # by size class: [k] holds (returned at, block of 2**k buffers)
    _idle_buffers: int  # buffers in the idle blocks: _in_use + _idle_buffers <= _budget, always
    _in_use: int
    _lent: int  # budget charges outstanding: live allocations, and grants on their way
    _line: Line
    _lock: threading.Lock  # the line's lock too

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
            timeout = check_seconds("timeout", timeout, none_ok=True)
        if self._caches is not None and not self._blocked:  # this thread's cache first
            cached = self._lend_cached(n)
            if cached is not None:
                return cached
        # The common case in one locked section: budget, counters and an idle block.
        # Folding _take() and _lend() together: 3.0 -> 1.x us per allocate+release.
        k = (n - 1).bit_length()  # the size class: blocks of 2**k buffers
        block = None
        lock = self._lock
        locked = False
        try:
            locked = take_contended(lock) if lock.locked() else lock.acquire()  # not `with`: see _locking
            if not self._blocked and self._in_use + n <= self._budget:
                in_use = self._in_use = self._in_use + n
                if in_use > self._high_water:
                    self._high_water = in_use
                self._allocations += 1
                self._lent += 1
                idle = self._idle[k]
                if idle:
                    block = idle.pop()[1]
                    self._idle_buffers -= 1 << k
                    self._hits += 1
                elif in_use + self._idle_buffers > self._budget:
                    self._evict()  # idle memory counts against the budget: make room
                charged = True
            else:
                charged = False
        finally:
            if locked:
                lock.release()
        if not charged:
            return self._allocate_slow(n, timeout)
        if self._evicted:
            self._free_evicted()
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

        `n == 0` only serves the line (a waiter leaving may unblock the ones behind it).
        """
        if self._caches is not None and block is not None and not self._blocked and self._keep_cached(n, block):
            return
        entry = None if block is None else (time.monotonic(), block)  # built before the section
        lock = self._lock
        locked = False
        try:
            locked = take_contended(lock) if lock.locked() else lock.acquire()
            self._in_use -= n
            if n:
                self._lent -= 1
            if entry is not None and not self._closed:  # a closed pool keeps nothing
                buffers = len(entry[1]) // self._buffer_size
                if self._in_use + self._idle_buffers + buffers <= self._budget:  # else freed
                    self._idle[buffers.bit_length() - 1].append(entry)
                    self._idle_buffers += buffers
        finally:
            if locked:
                lock.release()
        if self._blocked:  # given back first, then tested: see objpool._waiting
            self._serve()

    def _lend_cached(self, n: int) -> BufAllocation | None:
        """An allocation of `n` buffers from a block this thread kept for them (its budget
        still charged), or None if it kept none of that size. A block of the same class kept
        for another size goes to the shared idle blocks, where the caller's shared path then
        reuses it, as it would without caches."""
        try:
            cache = self._caches[THIS_THREAD.number]  # type: ignore[index]  # on: not None
        except (AttributeError, IndexError):  # no number yet, or no cache in this pool
            cache = None
        if cache is None:
            cache = self._new_cache()
        kept = cache.kept
        claim = [0]  # [n] once the block is ours
        k = (n - 1).bit_length()
        try:
            same_class = -1
            i = len(kept)
            while i:  # newest first
                i -= 1
                size = kept[i][2]
                if size == n:
                    block = kept.pop(i)[1]  # IndexError: another thread took it meanwhile
                    claim[0] = n  # the budget is now the claim's
                    cache.allocations += 1
                    return _allocation(self, block, claim)
                if same_class < 0 and (size - 1).bit_length() == k:
                    same_class = i
            if same_class >= 0:
                returned_at, block, size = kept.pop(same_class)
                self._return_kept(size, (returned_at, block))
            return None
        except IndexError:
            return None
        except BaseException:  # an interrupt: the budget goes back unless the allocation has it
            self._lend_failed(claim)
            raise

    def _keep_cached(self, n: int, block: bytearray) -> bool:
        """Keep a released block of `n` buffers in this thread's cache, its budget still
        charged, if the cache has room and the shared budget keeps `CACHE_DEPTH` times as much
        free for the others; whether it did."""
        try:
            cache = self._caches[THIS_THREAD.number]  # type: ignore[index]  # on: not None
        except (AttributeError, IndexError):
            return False
        if cache is None or len(cache.kept) >= CACHE_DEPTH or self._budget - self._in_use < CACHE_DEPTH * n:
            return False
        cache.kept.append((time.monotonic(), block, n))
        cache.releases += 1
        if self._blocked:  # kept first, then tested: a waiter that came meanwhile reclaims it
            self._serve()
        return True

    def _new_cache(self) -> BlockCache:
        raise NotImplementedError  # BufPool's

    def _return_kept(self, n: int, entry: tuple[float, bytearray]) -> None:
        raise NotImplementedError  # BufPool's

    def _serve(self) -> None:
        raise NotImplementedError  # BufPool's

    def _evict(self) -> None:
        raise NotImplementedError  # BufPool's

    def _free_evicted(self) -> None:
        raise NotImplementedError  # BufPool's

    def _check_n(self, n: object) -> int:
        raise NotImplementedError  # BufPool's

    def _lend_failed(self, claim: list[int]) -> None:
        raise NotImplementedError  # BufPool's

    def _on_leak(self, n: int, allocation: BufAllocation) -> None:
        raise NotImplementedError  # BufPool's

    def _allocate_slow(self, n: int, timeout: float | None) -> BufAllocation:
        raise NotImplementedError  # BufPool's



if COMPILED and not TYPE_CHECKING:  # type checkers read the Python classes above, the reference
    from ._cbufpool import BlockCache, BufAllocation, BufPoolCore as _BufPoolCore, _allocation


@final
class BufPool(_BufPoolCore):
    """Runs of `buffer_size`-byte buffers, at most `max_memory` bytes handed out at once.

    `allocate(n)` lends `n` contiguous buffers as one `BufAllocation`, at once or (with a
    `timeout`) once enough budget comes back; `try_allocate(n)` returns None instead of
    raising, and `await acquire(n)` waits in asyncio. `deallocate(a)` and `a.release()` give
    it back. Waiters are served first come, first served (see the module docstring for the
    trade-off). `close()` lends nothing more and frees the idle blocks; allocations still out
    can be released, and their memory is freed. `name` is shown in `repr` and warnings.
    `thread_cache` turns the per-thread caches of released blocks on or off (None: on where
    the interpreter runs without a GIL; see the `thread_cache` property). Thread-safe.
    """

    __slots__ = (
        "_exhausted",
        "_leaked",
        "_leaks",
        "_name",
        "_waited_seconds",
        "__weakref__",
    )

    def __init__(
        self, buffer_size: int, max_memory: int, *, name: str | None = None, thread_cache: bool | None = None
    ) -> None:
        """Raises `TypeError`/`ValueError` for a non-int or non-positive size, a budget
        smaller than one buffer, or a `name` that is not a str."""
        check_size("buffer_size", buffer_size, 1)
        check_size("max_memory", max_memory, buffer_size)
        check_optional_str("name", name)
        if thread_cache is None:
            thread_cache = not gil_enabled()
        self._caches = [] if thread_cache else None
        self._name = name
        self._buffer_size = buffer_size
        self._budget = max_memory // buffer_size  # in buffers
        self._in_use = 0
        self._high_water = 0
        # One list per size class a request can need, made now: no section ever makes one.
        # (A request of n buffers takes a block of the power of two >= n: class (n-1).bit_length().)
        self._idle = [[] for _ in range((self._budget - 1).bit_length() + 1)]
        self._idle_buffers = 0
        self._evicted: list[bytearray] = []
        self._lock = threading.Lock()
        self._closed = False
        self._blocked = False
        self._line = Line(self, self._lock)  # one lock guards the budget and the line
        self._allocations = 0
        self._lent = 0
        self._hits = 0
        self._leaks = 0
        self._leaked: list[int] = []
        self._exhausted = 0
        self._waited_seconds = 0.0
        _fork.register(self)

    @property
    def buffer_size(self) -> int:
        """Bytes per buffer."""
        return self._buffer_size

    @property
    def max_memory(self) -> int:
        """The budget in bytes: `max_memory` rounded down to whole buffers."""
        return self._budget * self._buffer_size

    def _evict(self) -> None:
        """Under the lock: move idle blocks, largest class first and oldest first within
        it, to `_evicted` until `_in_use + _idle_buffers <= _budget` again. Nothing is
        freed here: the caller drains `_evicted` after the section."""
        idle = self._idle
        k = len(idle)
        while k and self._in_use + self._idle_buffers > self._budget:
            k -= 1
            entries = idle[k]
            while entries and self._in_use + self._idle_buffers > self._budget:
                self._evicted.append(entries.pop(0)[1])
                self._idle_buffers -= 1 << k

    def _free_evicted(self) -> None:
        """Free the evicted blocks, with no lock held (a big block takes a while to unmap)."""
        evicted = self._evicted
        while evicted:
            try:
                evicted.pop()
            except IndexError:  # another thread freed the last one
                return

    def _check_n(self, n: object) -> int:
        n = check_int("n", n, 1)
        if n > self._budget:
            raise ValueError(
                f"n must be <= {self._budget} (max_memory {self.max_memory} / buffer_size "
                f"{self._buffer_size}): a request larger than the budget could never be served, got int {n}"
            )
        return n

    def _allocate_slow(self, n: int, timeout: float | None) -> BufAllocation:
        """`allocate()` when the request does not fit at once: wait (see
        `objpool._waiting.wait`), or raise."""
        self._reclaim_cached()
        self._drain_leaks()
        allocation = self._lend_if_fits(n)  # raises if closed
        if allocation is not None:
            return allocation
        if timeout == 0:
            raise self._exhausted_error(n, timeout)
        return wait(self, n, timeout)

    def acquire(self, n: int, timeout: float | None = None) -> Acquisition[BufAllocation, BufAllocation]:
        """`allocate()` for asyncio: `a = await pool.acquire(n)` or `async with pool.acquire(n) as a:`.

        The event loop runs on while the task waits.

        Raises (at once): `ValueError`/`TypeError` as `allocate()`. Raises (when awaited):
        `PoolExhaustedError`, `PoolClosedError`.
        """
        n = self._check_n(n)
        timeout = check_seconds("timeout", timeout, none_ok=True)
        return Acquisition(lambda: self._acquire(n, timeout), BufAllocation.__enter__)

    async def _acquire(self, n: int, timeout: float | None) -> BufAllocation:
        self._reclaim_cached()
        self._drain_leaks()
        allocation = self._lend_if_fits(n)  # raises if closed
        if allocation is not None:
            return allocation
        if timeout == 0:
            raise self._exhausted_error(n, timeout)
        return await wait_async(self, n, timeout)

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
            if self._blocked or in_use > self._budget:
                return False
            self._in_use = in_use
            claim[0] = n  # with no call between: see _grant
            self._allocations += 1
            self._lent += 1
            if in_use > self._high_water:
                self._high_water = in_use
            if in_use + self._idle_buffers > self._budget:
                self._evict()
            return True
        finally:
            if locked:
                self._lock.release()
                if self._evicted:
                    self._free_evicted()

    # -- waiting (see objpool._waiting) ------------------------------------------------

    def _grant(self, waiter: Waiter) -> bool:
        """Under the lock (the line's): charge `waiter.need` buffers to it if they fit."""
        need = waiter.need
        in_use = self._in_use + need
        if in_use > self._budget:
            return False
        # Charged and recorded with no call between (a call is where an interrupt lands).
        # Lent from here (on its way, as a slot handed to a `Pool` waiter is); counted as an
        # allocation when the waiter takes it (`_lend_handed`), as `Pool` counts: a grant its
        # waiter never takes (a timeout, a cancellation at the hand-off) is no allocation.
        self._in_use = in_use
        waiter.grant = need
        self._lent += 1
        if in_use > self._high_water:
            self._high_water = in_use
        if in_use + self._idle_buffers > self._budget:
            self._evict()  # freed by the waiter's lend, or the next serve (_free_evicted)
        return True

    def _return_grant(self, grant: int) -> None:
        """A grant whose waiter can never wake (its loop closed) comes back, serving nobody."""
        locked = False
        try:
            locked = self._lock.acquire()
            self._in_use -= grant
            self._lent -= 1
        finally:
            if locked:
                self._lock.release()

    def _serve(self) -> None:
        self._reclaim_cached()  # the line comes before any thread's cache
        self._line.serve()
        if self._evicted:
            self._free_evicted()

    def _recover_for_waiters(self) -> None:
        self._drain_leaks()  # the collector that finds a leak wakes nobody
        if self._caches is not None:  # a block kept as this waiter joined the line
            self._give_back(0, None)  # serves, reclaiming the caches first

    # -- thread caches (see thread_cache) -------------------------------------------

    def _new_cache(self) -> BlockCache:
        """This thread's cache, made on its first allocation (or inherited with its number
        from an ended thread)."""
        assert self._caches is not None
        return cache_for_this_thread(self._caches, self._lock, BlockCache(self))

    def _reclaim_cached(self) -> None:
        """Give every block the threads' caches keep back to the shared budget and its idle
        blocks (with no lock held: each block in a section of its own)."""
        caches = self._caches
        if caches is None:
            return
        for cache in caches:
            if cache is None:
                continue
            kept = cache.kept
            while kept:
                try:
                    returned_at, block, n = kept.pop()
                except IndexError:  # its thread took the last one meanwhile
                    break
                self._return_kept(n, (returned_at, block))

    def _return_kept(self, n: int, entry: tuple[float, bytearray]) -> None:
        """Under the lock: `n` buffers' budget back from a cache, its block idle (if it fits).

        The idle rule is `_give_back`'s, which inlines it (the pure hot path saves a call per
        release there, as the compiled twin does); this one leaves `_lent` alone, since a
        kept block's allocation was already counted as given back by its cache."""
        locked = False
        try:
            locked = self._lock.acquire()
            self._in_use -= n
            if not self._closed:  # a closed pool keeps nothing
                buffers = len(entry[1]) // self._buffer_size
                if self._in_use + self._idle_buffers + buffers <= self._budget:  # else freed
                    self._idle[buffers.bit_length() - 1].append(entry)
                    self._idle_buffers += buffers
        finally:
            if locked:
                self._lock.release()

    def _cached(self) -> tuple[int, int, int]:
        """(buffers charged to the caches' blocks, allocations they served, releases they kept),
        read without their threads' help: a snapshot that may lag one cycle behind."""
        buffers = allocations = releases = 0
        for cache in self._caches or ():
            if cache is not None:
                for entry in list(cache.kept):  # a copy: the thread may change its list meanwhile
                    buffers += entry[2]
                allocations += cache.allocations
                releases += cache.releases
        return buffers, allocations, releases

    @property
    def thread_cache(self) -> bool:
        """Whether each thread keeps up to 4 of its released blocks in front of the budget.

        On by default where there is no GIL (`sys._is_gil_enabled()`), off under it, as in
        `Pool` and `SizedPool`. A kept block's budget stays charged, so the thread's next
        request of the same size takes it back touching nothing the other threads touch.
        A release is kept only while nobody waits and the shared budget has 4 times its size
        free for the others, and the caches give everything back to the shared budget
        whenever a request does not fit, anyone waits, or `trim()` or `close()` runs: nothing
        kept ever makes a request wait or fail. Kept blocks count as idle in `stats()`, and
        their requests as hits; `high_water_bytes` counts them as handed out.
        """
        return self._caches is not None

    def _leave(self, waiter: Waiter) -> None:
        # A grant the waiter will not use goes on; and a waiter leaving may unblock the line
        # behind a head that could not be served. Either way: give back and serve.
        self._give_back(self._line.leave(waiter) or 0, None)

    def _give_up(self, waiter: Waiter, timeout: float | None) -> BufAllocation:
        """The deadline passed: leave the line, unless granted meanwhile (then lend)."""
        waiter.grant = self._line.leave(waiter)  # kept on the waiter until an allocation holds it
        if waiter.grant is not None:  # granted as the wait ran out: it is ours
            return self._lend_handed(waiter)
        self._waited(waiter.since)
        self._give_back(0, None)  # the line behind us may fit now
        if waiter.closed:
            raise PoolClosedError(f"{self!r} was closed while waiting for buffers")
        raise self._exhausted_error(waiter.need, timeout)

    def _lend_handed(self, waiter: Waiter) -> BufAllocation:
        """The allocation for the budget granted to `waiter` (which holds the grant until the
        claim does, so that the waiting frame's cleanup finds it wherever an interrupt lands)."""
        if self._evicted:  # blocks given up to make room for this grant
            self._free_evicted()
        self._waited(waiter.since)  # before the lend: nothing may run between it and the return
        n = waiter.grant
        if n is None:
            raise PoolClosedError(f"{self!r} was closed while waiting for buffers")
        claim = [n]
        waiter.grant = None
        try:
            self._count_allocation()
            return self._lend_granted(claim)
        except BaseException:
            self._lend_failed(claim)
            raise

    def _count_allocation(self) -> None:
        locked = False
        try:
            locked = self._lock.acquire()
            self._allocations += 1
        finally:
            if locked:
                self._lock.release()

    def _waited(self, started: float) -> None:
        elapsed = time.monotonic() - started
        locked = False
        try:
            locked = self._lock.acquire()
            self._waited_seconds += elapsed
        finally:
            if locked:
                self._lock.release()

    def _exhausted_error(self, n: int, timeout: float | None) -> PoolExhaustedError:
        locked = False
        try:
            locked = self._lock.acquire()
            self._exhausted += 1
        finally:
            if locked:
                self._lock.release()
        free = self._budget - self._in_use
        text = f"{n} buffer{'s' if n != 1 else ''} of {self._buffer_size} bytes {'do' if n != 1 else 'does'} not fit: {free} of {self._budget} free"
        if self._line.queue:
            text += f", {len(self._line.queue)} waiting ahead"
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
        """Class `k`'s newest idle block, if any (counted as a hit)."""
        locked = False
        try:
            locked = self._lock.acquire()
            idle = self._idle[k]
            if idle:
                self._hits += 1
                self._idle_buffers -= 1 << k
                return idle.pop()[1]
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

    def trim(self, max_idle_seconds: float = 0.0) -> int:
        """Free every block idle for longer than `max_idle_seconds` (0: every idle one);
        return the bytes freed."""
        max_idle_seconds = check_seconds("max_idle_seconds", max_idle_seconds)
        self._reclaim_cached()
        if not max_idle_seconds:
            fresh: list[list[tuple[float, bytearray]]] = [[] for _ in self._idle]  # built before the section
            idle = self._swap_idle(fresh)
            return sum(len(entry[1]) for entries in idle for entry in entries)  # freed as `idle` goes
        freed: list[bytearray] = []
        self._take_idle(time.monotonic() - max_idle_seconds, freed)
        return sum(len(block) for block in freed)  # freed as `freed` goes

    def _swap_idle(self, fresh: list[list[tuple[float, bytearray]]]) -> list[list[tuple[float, bytearray]]]:
        locked = False
        try:
            locked = self._lock.acquire()
            idle = self._idle
            self._idle = fresh
            self._idle_buffers = 0
        finally:
            if locked:
                self._lock.release()
        return idle

    def _take_idle(self, returned_before: float, freed: list[bytearray]) -> None:
        """Move the blocks returned at or before `returned_before` to `freed`, oldest first."""
        locked = False
        try:
            locked = self._lock.acquire()
            idle = self._idle
            for k in range(len(idle)):  # a range's iterator is not tracked
                entries = idle[k]
                while entries and entries[0][0] <= returned_before:
                    freed.append(entries.pop(0)[1])
                    self._idle_buffers -= 1 << k
        finally:
            if locked:
                self._lock.release()

    @property
    def closed(self) -> bool:
        """Whether `close()` was called."""
        return self._closed

    @property
    def name(self) -> str | None:
        """The name given at construction, shown in `repr` and warnings."""
        return self._name

    def close(self) -> None:
        """Lend nothing more and free the idle blocks; idempotent. Waiters get
        `PoolClosedError`; allocations still out stay valid, and their memory is freed
        when they are released."""
        fresh: list[list[tuple[float, bytearray]]] = [[] for _ in self._idle]  # built here: a
        self._close(fresh)  # section allocates nothing
        self._reclaim_cached()  # after the flag: a release that saw it open serves, so reclaims too
        self._line.close()

    def _close(self, fresh_idle: list[list[tuple[float, bytearray]]]) -> None:
        locked = False
        try:
            locked = self._lock.acquire()
            self._closed = True
            self._blocked = True  # with _closed, in one section: the fast path tests only this
            self._idle = fresh_idle  # the old blocks are freed as the caller's frame ends
            self._idle_buffers = 0
        finally:
            if locked:
                self._lock.release()

    def deallocate(self, allocation: BufAllocation) -> None:
        """Give `allocation` back: the same as `allocation.release()`, checked to be this pool's.

        Raises:
            StaleRefError: it was already released.
            ForeignRefError: another pool lent it; neither pool changes.
            TypeError: `allocation` is not a `BufAllocation`.
            BufferError: a view of its buffers is still exported; release that first.
        """
        if not isinstance(allocation, BufAllocation):
            reject(TypeError, "allocation", "a BufAllocation", allocation)
        if allocation.pool is not self:
            raise ForeignRefError(f"{allocation!r} was lent by another pool, not by {self!r}")
        allocation.release()

    def try_allocate(self, n: int) -> BufAllocation | None:
        """Like `allocate(n)`, but return `None` when the buffers do not fit now.

        Raises:
            PoolClosedError: `close()` was called (a closed pool is not merely full).
            ValueError, TypeError: as `allocate()`.
        """
        try:
            return self.allocate(n)
        except PoolExhaustedError:
            return None

    def fork_locks(self) -> tuple[threading.Lock]:
        """The pool's lock, for the fork hook (`objpool._fork`)."""
        return (self._lock,)

    def forked_child(self) -> None:
        """In a child process: the parent's waiting threads are not there; forget them."""
        self._line.clear_after_fork()

    def stats(self) -> BufPoolStats:
        """A snapshot of the counters, in bytes where they are sizes (leaks found since the
        last call are counted first, and their budget returned)."""
        self._drain_leaks()
        size = self._buffer_size
        # Read in one section, which allocates nothing (ints only); built after it.
        counts = [0] * _COUNTS
        waited = self._read_counts(counts)
        in_use, high_water, idle, waiting, exhausted, allocations, lent, hits, leaks, closed = counts
        if self._caches is not None:  # read after the shared counts: see _cached
            kept, cached_allocations, cached_releases = self._cached()
            kept = min(kept, in_use)
            in_use -= kept
            idle += kept
            allocations += cached_allocations
            hits += cached_allocations
            lent = max(0, lent + cached_allocations - cached_releases)
        # A grant on its way to its waiter is lent but not yet an allocation (see _grant):
        # counted as one here, so that no snapshot shows negative deallocations.
        allocations = max(allocations, lent + leaks)
        return BufPoolStats(
            lent=lent,
            allocations=allocations,
            deallocations=allocations - leaks - lent,
            leaks=leaks,
            hits=hits,
            waiting=waiting,
            exhausted=exhausted,
            waited_seconds=waited,
            lent_bytes=in_use * size,
            idle_bytes=idle * size,
            high_water_bytes=high_water * size,
            budget_bytes=self._budget * size,
            closed=bool(closed),
        )

    def _read_counts(self, counts: list[int]) -> float:
        """Under the lock: the counters into `counts` (see stats()); the seconds waited."""
        locked = False
        try:
            locked = self._lock.acquire()
            counts[0] = self._in_use
            counts[1] = self._high_water
            counts[2] = self._idle_buffers
            counts[3] = len(self._line.queue)
            counts[4] = self._exhausted
            counts[5] = self._allocations
            counts[6] = self._lent
            counts[7] = self._hits
            counts[8] = self._leaks
            counts[9] = self._closed
            return self._waited_seconds
        finally:
            if locked:
                self._lock.release()

    def __repr__(self) -> str:
        name = "" if self._name is None else f" {self._name!r}"
        return (
            f"<BufPool{name} {self._in_use - (self._cached()[0] if self._caches else 0)}/{self._budget} x {self._buffer_size} bytes in use"
            f"{', closed' if self._closed else ''}>"
        )
