"""`SizedPool`: byte buffers of any size, from power-of-two size classes, with bounded retention.

Invariant: every `ByteBuffer` this pool made is, at any moment, in exactly one place: lent
through one live `OwnedRef` (counted in its class's `lent`), idle on its class's stack or
in one thread's cache (`_retained` counts the stacks' bytes and the caches' credits, never
more than `max_retained`), or dropped (evicted, trimmed, leaked, or an oversize buffer
returned). The stacks, the counters and `_retained` change only under `_lock`, which
guards nothing else: no buffer is allocated, reset or freed while it is held (a 64 MiB
`bytearray` takes milliseconds to zero or to unmap). A thread cache's contents change
under its own lock (see `_threadcache`).

Each class's stack is ordered by return time, oldest first: `get` pops the newest (LIFO,
the memory most likely still cached and mapped), eviction and trimming take the oldest.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, NoReturn, final

from ._bytebuffer import ByteBuffer
from ._compiled import COMPILED
from . import _fork
from ._errors import ForeignRefError, PoolClosedError, StaleRefError
from ._fork import HeldLock
from ._locking import gil_enabled, take_contended
from ._pinned import mlock_error, pinned_block
from ._ownedref import OwnedRef, end_handle, handle_for
from ._threadcache import CACHE_MAX_SIZE, ThreadCache
from ._validate import check_int, check_optional_str, check_seconds, check_size, reject
from ._warn import allocation_site, warn_user

__all__ = ["DEFAULT_MAX_IDLE_SECONDS", "SizeClassStats", "SizedPool", "SizedPoolStats"]

DEFAULT_MAX_IDLE_SECONDS: Final = 60.0
"""How long a buffer may sit idle before the pool frees it (.NET's `ArrayPool` trims at 60 s)."""

_SWEEPS_PER_MAX_IDLE: Final = 4  # so an idle buffer outlives max_idle_seconds by at most a quarter of it
_FOREVER: Final = float("inf")  # a return time every idle buffer is older than
_GLOBAL_COUNTS: Final = 7  # stats(): oversize bytes lent and handles out, oversize allocations,
# leaks, pinned bytes, the high water in bytes, closed
_CLASS_COUNTS: Final = 8  # stats(): per class, the fields of SizeClassStats (idle and lent in buffers)


@final
@dataclass(frozen=True, slots=True)
class SizeClassStats:
    """One size class's counters, in `SizedPoolStats.classes`."""

    size: int
    """The capacity of every buffer of this class, in bytes."""
    hits: int
    """`allocate` calls served by an idle buffer (no allocation)."""
    misses: int
    """`allocate` calls that allocated a new buffer."""
    evictions: int
    """Idle buffers freed to keep `max_retained`, or returned too big to keep."""
    trimmed: int
    """Idle buffers freed for being idle too long (`trim`, the pool's own sweeps, `close`)."""
    lent: int
    """Handles of this class live now."""
    lent_bytes: int
    """Bytes lent through live handles now (`lent * size`)."""
    idle_bytes: int
    """Bytes idle in this class now."""
    high_water_bytes: int
    """The most bytes of this class ever lent at once."""


@final
@dataclass(frozen=True, slots=True)
class SizedPoolStats:
    """An immutable snapshot of a `SizedPool`'s counters, from `SizedPool.stats()`.

    In every snapshot `allocations == deallocations + leaks + lent` and
    `idle_bytes <= max_retained`.
    """

    classes: tuple[SizeClassStats, ...]
    """Per size class, smallest first."""
    lent: int
    """Handles live now (oversize ones included)."""
    allocations: int
    """Handles ever lent (`hits + misses` of every class, plus `oversize`)."""
    deallocations: int
    """Handles given back (`deallocate`, `release`, `with`)."""
    leaks: int
    """Handles garbage-collected while live (each raised a `ResourceWarning`)."""
    oversize: int
    """`allocate(n)` calls with `n > max_size`: served by a fresh buffer that is never kept."""
    lent_bytes: int
    """Bytes lent through live handles (oversize buffers included)."""
    idle_bytes: int
    """Bytes idle, ready to lend again (at most `max_retained`)."""
    high_water_bytes: int
    """The most bytes lent at once. With thread caches on, the classes they serve count
    only when lent from the shared stacks (see `SizedPool.thread_cache`)."""
    pinned_bytes: int
    """Bytes of this pool's buffers locked in RAM now (lent or idle); 0 unless `pinned=True`."""
    closed: bool
    """Whether `close()` was called."""


class _SizeClass:
    """One size class's idle stack and counters (guarded by the pool's lock)."""

    __slots__ = ("evictions", "high_water", "hits", "idle", "lent", "misses", "size", "trimmed")

    def __init__(self, size: int) -> None:
        self.size = size
        self.idle: deque[tuple[float, ByteBuffer]] = deque()  # (returned at, buffer), oldest first
        self.hits = 0
        self.misses = 0
        self.evictions = 0
        self.trimmed = 0
        self.lent = 0  # buffers
        self.high_water = 0  # buffers


class _SizedPoolCore:
    """`SizedPool`'s hot path: `allocate` and `deallocate` when nothing needs evicting or sweeping.

    When the install compiled it, `objpool._csizedpool.SizedPoolCore` replaces this class
    (with its `SizeClass` and `CLock`): the same methods and messages, checked by the same
    tests. Everything else stays in `SizedPool`, which the core calls back into.
    """

    __slots__ = (
        "_cached_classes",
        "_classes",
        "_clock",
        "_high_water_bytes",
        "_lent_bytes",
        "_lock",
        "_max_retained",
        "_max_size",
        "_min_shift",
        "_next_sweep",
        "_pinned",
        "_retained",
        "_zero",
    )
    _cached_classes: int  # classes below this index go through thread caches (0: no caches)
    _classes: list[_SizeClass]
    _clock: Callable[[], float]
    _high_water_bytes: int
    _lent_bytes: int  # by the classes without thread caches, and oversize buffers: see stats()
    _lock: threading.Lock
    _max_retained: int  # 0 once closed: nothing is kept
    _max_size: int  # -1 once closed: every allocate() takes the slow path, which refuses
    _min_shift: int  # log2(min_size)
    _next_sweep: float
    _pinned: bool
    _retained: int
    _zero: bool

    # -- the hot path -------------------------------------------------------------------------

    def allocate(self, n: int) -> OwnedRef[ByteBuffer]:
        """Lend an empty `ByteBuffer` of at least `n` bytes (its class's newest idle one, or new).

        Raises:
            PoolClosedError: `close()` was called.
            TypeError: `n` is not an int.
            ValueError: `n < 0`.
        """
        if n.__class__ is not int or n < 0:
            check_int("n", n)  # raises, naming the rule
        if n > self._max_size:  # or closed
            return self._allocate_oversize(n)
        k = (n - 1).bit_length() - self._min_shift if n else 0
        if k < 0:
            k = 0
        if k < self._cached_classes:
            return self._allocate_cached(k)
        size_class = self._classes[k]
        buffer = None
        lock = self._lock
        locked = False
        try:
            locked = take_contended(lock) if lock.locked() else lock.acquire()  # not `with`: see _locking
            if size_class.idle:
                buffer = size_class.idle.pop()[1]
                self._retained -= size_class.size
                size_class.hits += 1
            else:
                size_class.misses += 1
            lent = size_class.lent = size_class.lent + 1
            if lent > size_class.high_water:
                size_class.high_water = lent
            lent = self._lent_bytes = self._lent_bytes + size_class.size
            if lent > self._high_water_bytes:
                self._high_water_bytes = lent
        finally:
            if locked:
                lock.release()
        if buffer is None:  # allocated outside the lock (a miss: a call is nothing beside it)
            buffer = self._new_buffer(size_class.size)
        return handle_for(self, buffer, k)

    def deallocate(self, ref: OwnedRef[ByteBuffer]) -> None:
        """Reset the handle's buffer, keep it for the next `allocate` (or free it), kill the handle.

        Raises:
            StaleRefError: the handle was already released.
            ForeignRefError: another pool lent the handle.
            TypeError: `ref` is not an `OwnedRef`.
            MemoryError: `zero_on_reset` could not wipe the buffer; the handle is dead and
                the buffer dropped.
        """
        if not isinstance(ref, OwnedRef):
            reject(TypeError, "ref", "an OwnedRef", ref)
        if ref.pool is not self:  # TypeError for a handle made outside any pool
            raise ForeignRefError(f"{ref!r} was lent by another pool, not by {self!r}")
        try:
            buffer = ref.value
        except StaleRefError:
            raise StaleRefError(f"{ref!r} was already released") from None
        # The clock is read while the handle is still live: if it raises (a bug, an interrupt
        # in a clock that sleeps) nothing has changed. The idle entry is built here too, so
        # that a collection it makes due runs at the end_handle() call, not in the section.
        entry = (self._clock(), buffer)
        k = end_handle(ref)
        if k < 0:  # another thread released it just now
            raise StaleRefError(f"{ref!r} was already released")
        classes = len(self._classes)
        if k >= classes:  # oversize, k - classes bytes: never kept
            self._return_oversize(k - classes)
            return
        size_class = self._classes[k]
        try:
            buffer.reset()  # outside the lock: with zero_on_reset it wipes up to 64 MiB
        except BaseException:  # only a MemoryError can get here: the buffer is dropped
            self._drop_lent(k)
            raise
        if k < self._cached_classes:
            self._put_cached(k, entry)
            return
        lock = self._lock
        locked = False
        try:
            locked = take_contended(lock) if lock.locked() else lock.acquire()
            size_class.lent -= 1
            size = size_class.size
            self._lent_bytes -= size
            if self._retained + size <= self._max_retained and entry[0] < self._next_sweep:
                size_class.idle.append(entry)
                self._retained += size
                return
        finally:
            if locked:
                lock.release()
        self._keep_slow(size_class, entry)  # evictions first, or a sweep is due

    def _allocate_oversize(self, n: int) -> OwnedRef[ByteBuffer]:
        raise NotImplementedError  # SizedPool's

    def _allocate_cached(self, k: int) -> OwnedRef[ByteBuffer]:
        raise NotImplementedError  # SizedPool's

    def _put_cached(self, k: int, entry: tuple[float, ByteBuffer]) -> None:
        raise NotImplementedError  # SizedPool's

    def _drop_lent(self, k: int) -> None:
        raise NotImplementedError  # SizedPool's

    def _new_buffer(self, size: int) -> ByteBuffer:
        raise NotImplementedError  # SizedPool's

    def _on_leak(self, k: int, ref: OwnedRef[ByteBuffer]) -> None:
        raise NotImplementedError  # SizedPool's

    def _return_oversize(self, nbytes: int) -> None:
        raise NotImplementedError  # SizedPool's

    def _keep_slow(self, size_class: _SizeClass, entry: tuple[float, ByteBuffer]) -> None:
        raise NotImplementedError  # SizedPool's



_Lock = threading.Lock

if COMPILED and not TYPE_CHECKING:  # type checkers read the Python classes above, the reference
    from ._csizedpool import CLock as _Lock, SizeClass as _SizeClass, SizedPoolCore as _SizedPoolCore, ThreadCache


@final
class SizedPool(_SizedPoolCore):
    """Byte buffers of any size: `allocate(n)` lends a `ByteBuffer` with `capacity >= n`, `len() == 0`.

    Capacities are powers of two from `min_size` to `max_size`; a request is served by its
    class's most recently returned buffer, or a new one. Handles follow `Pool`'s rules:
    release once (`ref.release()`, `with pool.allocate(n) as buf:` or `pool.deallocate(ref)`); a
    second release raises `StaleRefError`, another pool's handle `ForeignRefError`, and a
    handle collected while live warns (`ResourceWarning`) and its buffer is never reused.

    **A reused buffer holds the previous user's bytes** (reuse skips zero-filling; that is
    much of the saving): everything past `len()` is stale data, not zeros, unless the pool
    was built with `zero_on_reset=True`, which wipes what each user may have written.

    `n > max_size` gets a fresh buffer of exactly `n` bytes that is never kept (counted in
    `stats().oversize`): a loader meeting one huge tensor still works, and `max_size` bounds
    what the pool keeps.

    At most `max_retained` bytes sit idle (default: four buffers of `max_size`); past it the
    buffers idle longest are freed first, except that a returned buffer larger than half of
    `max_retained` is dropped rather than evict others to make room. A buffer idle longer
    than `max_idle_seconds` is freed by the pool's own sweep, which runs inside a later release
    at most every quarter of `max_idle_seconds` (no background thread), or at once by
    `trim()`. `clock` is for tests; `name` is shown in `repr` and so in warnings.

    `close()` frees the idle buffers and lends nothing more (`PoolClosedError`); handles
    still out can be released, and their buffers are freed.

    `pinned=True` puts every buffer on anonymous `mmap` memory locked in RAM (`mlock`), so
    it is never swapped out. Where locking fails (a low `RLIMIT_MEMLOCK`, no permission, no
    `mlock`) the buffer uses ordinary memory instead and the pool warns once
    (`RuntimeWarning`); `stats().pinned_bytes` says how many bytes are locked.

    Thread-safe: one lock, held only for the bookkeeping (no allocation, reset or free).
    Without a GIL (a free-threaded build) each thread also keeps up to 4 idle buffers per
    class up to 256 KiB, behind its own lock (`thread_cache=None` follows the interpreter;
    True or False overrides it). The caches share `max_retained` (at most half of it),
    are trimmed and counted like the rest, and go when their thread ends.
    """

    __slots__ = (
        "_caches",
        "_credits",
        "_closed",
        "_leaked",
        "_leaks",
        "_local",
        "_max_idle_seconds",
        "_name",
        "_oversize",
        "_orphans",
        "_oversize_lent",
        "_oversize_out",
        "_pin_warned",
        "_pinned_made",
        "_unpinned",
        "__weakref__",
    )

    def __init__(
        self,
        *,
        min_size: int = 4096,
        max_size: int = 64 << 20,
        max_retained: int | None = None,
        max_idle_seconds: float = DEFAULT_MAX_IDLE_SECONDS,
        zero_on_reset: bool = False,
        pinned: bool = False,
        thread_cache: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
        name: str | None = None,
    ) -> None:
        """Raises `TypeError`/`ValueError` for sizes that are not powers of two with
        `min_size <= max_size`, a negative `max_retained`, a `max_idle_seconds` that is not
        > 0, or a `name` that is not a str."""
        _check_power_of_two("min_size", min_size)
        _check_power_of_two("max_size", max_size)
        if max_size < min_size:
            reject(ValueError, "max_size", f">= min_size ({min_size})", max_size)
        if max_retained is None:
            max_retained = 4 * max_size
        check_size("max_retained", max_retained, 0)
        max_idle_seconds = check_seconds("max_idle_seconds", max_idle_seconds, positive=True)
        if not callable(clock):
            reject(TypeError, "clock", "a callable returning seconds", clock)
        check_optional_str("name", name)
        self._min_shift = min_size.bit_length() - 1
        self._max_size = max_size
        self._classes = [_SizeClass(min_size << k) for k in range(max_size.bit_length() - min_size.bit_length() + 1)]
        self._max_retained = max_retained
        self._max_idle_seconds = max_idle_seconds
        self._zero = bool(zero_on_reset)
        self._pinned = bool(pinned)
        self._pinned_made = 0  # bytes
        self._unpinned: list[int] = []  # bytes of pinned blocks freed since, appended by finalizers
        self._pin_warned = False
        self._clock = clock
        self._lock = _Lock()
        self._retained = 0
        self._oversize = 0
        self._oversize_lent = 0  # bytes
        self._oversize_out = 0  # handles
        self._lent_bytes = 0
        self._high_water_bytes = 0
        self._closed = False
        self._name = name
        self._leaks = 0
        self._leaked: list[int] = []  # the indices of leaked handles
        self._next_sweep = clock() + self._max_idle_seconds / _SWEEPS_PER_MAX_IDLE
        if thread_cache is None:
            thread_cache = not gil_enabled()
        self._cached_classes = sum(c.size <= CACHE_MAX_SIZE for c in self._classes) if thread_cache else 0
        self._local = threading.local()
        self._caches: list[ThreadCache] = []  # every live thread's, and dead ones' until settled
        self._orphans: list[ThreadCache] = []  # caches of threads that ended, appended by finalizers
        self._credits = 0  # bytes the caches may hold, counted in _retained
        _fork.register(self)

    # -- the rest -------------------------------------------------------------------------------

    if TYPE_CHECKING:  # the hot path lives in _SizedPoolCore; restated so type errors name SizedPool

        def allocate(self, n: int) -> OwnedRef[ByteBuffer]:
            return super().allocate(n)

        def deallocate(self, ref: OwnedRef[ByteBuffer]) -> None:
            super().deallocate(ref)

    # -- thread caches (free-threaded builds; see _threadcache) ----------------------------------

    def _allocate_cached(self, k: int) -> OwnedRef[ByteBuffer]:
        """`allocate` of a cached class: this thread's newest idle buffer, else the shared path."""
        try:
            cache: ThreadCache = self._local.cache
        except AttributeError:
            cache = self._new_thread_cache()
        buffer = cache.pop(k)
        if buffer is None:  # allocate()'s shared path (inlined there, ~100 ns a call), but that
            size_class = self._classes[k]  # the high water adds up the caches' counts
            buffer = self._take_shared(size_class, k)
            if buffer is None:
                buffer = self._new_buffer(size_class.size)
        return handle_for(self, buffer, k)

    def _take_shared(self, size_class: _SizeClass, k: int) -> ByteBuffer | None:
        """Under the lock: class `k`'s newest idle buffer from the shared stack, if any."""
        locked = False
        try:
            locked = self._lock.acquire()
            buffer = None
            if size_class.idle:
                buffer = size_class.idle.pop()[1]
                self._retained -= size_class.size
                size_class.hits += 1
            else:
                size_class.misses += 1
            size_class.lent += 1
            # The caches' counts, read without their locks: a high water sampled here,
            # on the shared path, not on every get (see stats()).
            lent = size_class.lent
            caches = self._caches
            i = len(caches)
            while i:  # not `for`, nor sum(): an iterator is an object the collector tracks
                i -= 1
                lent += caches[i].lent[k]
            if lent > size_class.high_water:
                size_class.high_water = lent
            return buffer
        finally:
            if locked:
                self._lock.release()

    def _put_cached(self, k: int, entry: tuple[float, ByteBuffer]) -> None:
        """`deallocate` of a cached class: into this thread's cache, its oldest spilling over
        to the shared stack when the cache is full and may not grow (stamped anew there:
        its idle time restarts, so it may outlive `max_idle_seconds` by at most that much).
        Once the pool is closed the cache has no credit, so the buffer spills and is freed."""
        try:
            cache: ThreadCache = self._local.cache
        except AttributeError:
            cache = self._new_thread_cache()
        if cache.wants_credit(k):
            self._grant_credit(cache, k)
        spilled = cache.push(k, entry)
        if spilled is not None:
            self._keep_slow(self._classes[k], (entry[0], spilled))  # sweeps too, if one is due
        elif entry[0] >= self._next_sweep:
            freed: list[ByteBuffer] = []  # freed after the lock is released
            self._sweep(entry[0], freed)

    def _grant_credit(self, cache: ThreadCache, k: int) -> None:
        """Room for one more buffer of class `k` in `cache`, within half the budget for all."""
        size = self._classes[k].size
        locked = False
        try:
            locked = self._lock.acquire()
            if self._credits + size <= self._max_retained // 2 and self._retained + size <= self._max_retained:
                cache.grant(k)
                self._credits += size
                self._retained += size
        finally:
            if locked:
                self._lock.release()

    def _new_thread_cache(self) -> ThreadCache:
        cache = ThreadCache(self._cached_classes)
        # The thread-local slot dies with the thread; the token's finalizer then hands the
        # cache to the next settle, from wherever the thread ended: so only an append.
        token = _ThreadToken()
        weakref.finalize(token, self._orphans.append, cache)
        freed: list[ByteBuffer] = []
        self._add_cache(cache, freed)
        self._local.cache = cache
        self._local.token = token
        return cache

    def _add_cache(self, cache: ThreadCache, freed: list[ByteBuffer]) -> None:
        locked = False
        try:
            locked = self._lock.acquire()
            self._settle_orphans(freed)
            self._caches.append(cache)  # may grow the list: memory, not a tracked object
        finally:
            if locked:
                self._lock.release()

    def _settle_orphans(self, freed: list[ByteBuffer]) -> None:
        """Under the lock: fold the caches of ended threads into the classes, free their
        buffers (counted as trimmed) and return their credits."""
        orphans = self._orphans
        while orphans:
            cache = orphans.pop()
            if cache not in self._caches:  # settled already (after a fork, see forked_child)
                continue
            self._caches.remove(cache)
            for k in range(self._cached_classes):  # a range's iterator is not tracked
                size_class = self._classes[k]
                taken = cache.take_idle(k, _FOREVER, freed)
                size_class.trimmed += taken
                size_class.hits += cache.hits[k]
                size_class.lent += cache.lent[k]
                credit = (cache.credit[k] + taken) * size_class.size
                self._credits -= credit
                self._retained -= credit

    @property
    def thread_cache(self) -> bool:
        """Whether each thread keeps a few idle buffers of the classes up to 256 KiB.

        On by default where there is no GIL (`sys._is_gil_enabled()`), off under it:
        measured on CPython 3.13t, see the README.
        """
        return self._cached_classes > 0

    def _new_buffer(self, size: int) -> ByteBuffer:
        if self._pinned:
            return self._new_pinned(size)
        return ByteBuffer(size, zero_on_reset=self._zero)

    def _return_oversize(self, nbytes: int) -> None:
        locked = False
        try:
            locked = self._lock.acquire()
            self._oversize_lent -= nbytes
            self._oversize_out -= 1
            self._lent_bytes -= nbytes
        finally:
            if locked:
                self._lock.release()

    def _drop_lent(self, k: int) -> None:
        """A lent buffer of class `k` is dropped instead of kept (its reset failed)."""
        locked = False
        try:
            locked = self._lock.acquire()
            self._classes[k].lent -= 1
            if k >= self._cached_classes:
                self._lent_bytes -= self._classes[k].size
        finally:
            if locked:
                self._lock.release()

    def _keep_slow(self, size_class: _SizeClass, entry: tuple[float, ByteBuffer]) -> None:
        """Keep a returned buffer when that means evicting others first, or a sweep is due."""
        freed: list[ByteBuffer] = []  # freed after the lock is released
        self._keep_evicting(size_class, entry, freed)

    def _keep_evicting(self, size_class: _SizeClass, entry: tuple[float, ByteBuffer], freed: list[ByteBuffer]) -> None:
        locked = False
        try:
            locked = self._lock.acquire()
            self._settle_orphans(freed)
            size = size_class.size
            room = self._max_retained - self._retained
            if size > self._max_retained or (2 * size > self._max_retained and size > room):
                # Too big to keep, or big enough that keeping it would cost more than half
                # the budget in other buffers: dropped (the bench's eviction trace: this
                # allocates the fewest bytes of the policies tried).
                size_class.evictions += 1
            else:
                while self._retained + size > self._max_retained:
                    freed.append(self._evict_oldest())
                size_class.idle.append(entry)
                self._retained += size
            if entry[0] >= self._next_sweep:
                self._sweep_locked(entry[0], freed)
        finally:
            if locked:
                self._lock.release()

    def _allocate_oversize(self, n: int) -> OwnedRef[ByteBuffer]:
        """`allocate(n)` with `n > max_size`, or any `allocate` once the pool is closed.

        The buffer is made before anything is counted: a size no buffer can have (2**63)
        raises there, and leaves no bytes counted as lent.
        """
        if self._closed:
            raise PoolClosedError(f"{self!r} is closed and lends nothing more")
        buffer = self._new_buffer(n)
        locked = False
        try:
            locked = self._lock.acquire()
            closed = self._closed
            if not closed:
                self._oversize += 1
                self._oversize_out += 1
                self._oversize_lent += n
                lent = self._lent_bytes = self._lent_bytes + n
                if lent > self._high_water_bytes:
                    self._high_water_bytes = lent
        finally:
            if locked:
                self._lock.release()
        if closed:  # closed while the buffer was made
            raise PoolClosedError(f"{self!r} is closed and lends nothing more")
        # The handle's index says "oversize, n bytes" (past the class indices), so that a
        # release or a leak knows the size without the buffer.
        return handle_for(self, buffer, len(self._classes) + n)

    def _new_pinned(self, size: int) -> ByteBuffer:
        """A buffer on memory locked in RAM; on ordinary memory, with one warning, if locking fails."""
        block = pinned_block(size)
        if block is None:
            if not self._pin_warned:
                self._pin_warned = True
                warn_user(
                    f"{self!r} could not pin {size} bytes ({mlock_error()}); its buffers use ordinary "
                    "memory until locking works again",
                    RuntimeWarning,
                )
            return ByteBuffer(size, zero_on_reset=self._zero)
        locked = False
        try:
            locked = self._lock.acquire()
            self._pinned_made += size
        finally:
            if locked:
                self._lock.release()
        # Counted back when the block is freed, wherever that happens (evicted, trimmed,
        # leaked, or an oversize buffer returned): in the collector, so only an append.
        weakref.finalize(block, self._unpinned.append, size)
        return ByteBuffer(size, zero_on_reset=self._zero, memory=block)

    def _evict_oldest(self) -> ByteBuffer:
        """Under the lock: take out the idle buffer returned longest ago, in any class."""
        classes = self._classes
        oldest = None
        for k in range(len(classes)):  # not min(key=...): no object is made under the lock
            c = classes[k]
            if c.idle and (oldest is None or c.idle[0][0] < oldest.idle[0][0]):
                oldest = c
        assert oldest is not None  # called only while more is retained than fits
        oldest.evictions += 1
        self._retained -= oldest.size
        return oldest.idle.popleft()[1]

    def _sweep(self, now: float, freed: list[ByteBuffer]) -> None:
        """Move every buffer idle for longer than `max_idle_seconds` to `freed` (freed by the caller)."""
        locked = False
        try:
            locked = self._lock.acquire()
            self._sweep_locked(now, freed)
        finally:
            if locked:
                self._lock.release()

    def _sweep_locked(self, now: float, freed: list[ByteBuffer]) -> None:
        self._next_sweep = now + self._max_idle_seconds / _SWEEPS_PER_MAX_IDLE
        self._take_idle(now - self._max_idle_seconds, freed)

    def _take_idle(self, returned_before: float, freed: list[ByteBuffer]) -> None:
        """Under the lock: move every buffer returned at or before `returned_before` to `freed`."""
        classes = self._classes
        for k in range(len(classes)):  # a range's iterator is not tracked: no object is made
            size_class = classes[k]
            idle = size_class.idle
            while idle and idle[0][0] <= returned_before:
                freed.append(idle.popleft()[1])
                size_class.trimmed += 1
                self._retained -= size_class.size
        caches = self._caches
        for i in range(len(caches)):  # their credits go back with their buffers
            cache = caches[i]
            for k in range(self._cached_classes):
                size_class = classes[k]
                taken = cache.take_idle(k, returned_before, freed)
                size_class.trimmed += taken
                self._retained -= taken * size_class.size
                self._credits -= taken * size_class.size

    def trim(self, max_idle_seconds: float = 0.0) -> int:
        """Free every buffer idle for longer than `max_idle_seconds` (0: every idle one);
        return the bytes freed."""
        max_idle_seconds = check_seconds("max_idle_seconds", max_idle_seconds)
        freed: list[ByteBuffer] = []
        returned_before = self._clock() - max_idle_seconds if max_idle_seconds else _FOREVER
        return self._trim(returned_before, freed)  # the buffers are freed as `freed` goes

    def _trim(self, returned_before: float, freed: list[ByteBuffer]) -> int:
        locked = False
        try:
            locked = self._lock.acquire()
            self._settle_orphans(freed)  # first: a dead thread's unused credits are not bytes freed
            before = self._retained
            self._take_idle(returned_before, freed)
            return before - self._retained
        finally:
            if locked:
                self._lock.release()

    def _on_leak(self, k: int, ref: OwnedRef[ByteBuffer]) -> None:
        # From OwnedRef.__del__, maybe inside the garbage collector, maybe while this very
        # thread holds _lock: so only an atomic append and a warning; the counts are
        # settled by the next stats(). The buffer is dropped, not kept: it may still be
        # referenced.
        self._leaked.append(k)
        warn_user(
            f"an OwnedRef of {self!r} was garbage-collected while still live{allocation_site(ref)}; "
            "release it, or use 'with pool.allocate(n) as buf:'",
            ResourceWarning,
            source=ref,
        )

    @property
    def min_size(self) -> int:
        """The smallest class's capacity, in bytes."""
        return self._classes[0].size

    @property
    def max_size(self) -> int:
        """The largest class's capacity; larger requests get unpooled buffers."""
        return self._classes[-1].size

    @property
    def max_retained(self) -> int:
        """The most bytes kept idle (0 once closed)."""
        return self._max_retained

    @property
    def closed(self) -> bool:
        """Whether `close()` was called."""
        return self._closed

    @property
    def name(self) -> str | None:
        """The name given at construction, shown in `repr` and warnings."""
        return self._name

    def close(self) -> None:
        """Free every idle buffer and lend nothing more; idempotent.

        Afterwards `allocate` raises `PoolClosedError`, and handles still out can be
        released: their buffers are freed, not kept (counted in `evictions`).
        """
        freed: list[ByteBuffer] = []  # freed after the lock is released
        self._close(freed)

    def _close(self, freed: list[ByteBuffer]) -> None:
        locked = False
        try:
            locked = self._lock.acquire()
            if self._closed:
                return
            self._closed = True
            self._max_size = -1  # every allocate() now takes the slow path, which refuses
            self._max_retained = 0  # nothing returned from now on is kept
            self._settle_orphans(freed)
            self._take_idle(_FOREVER, freed)
            caches = self._caches
            for i in range(len(caches)):  # the credits they still hold, unused, go too
                for k in range(self._cached_classes):
                    unused = caches[i].revoke(k, freed) * self._classes[k].size
                    self._credits -= unused
                    self._retained -= unused
        finally:
            if locked:
                self._lock.release()

    def _settle_leaks(self) -> None:
        """Under the lock: count the handles found leaked since the last call."""
        leaked = self._leaked
        classes = len(self._classes)
        while leaked:
            k = leaked.pop()
            self._leaks += 1
            if k < classes:
                self._classes[k].lent -= 1
                if k >= self._cached_classes:
                    self._lent_bytes -= self._classes[k].size
            else:
                self._oversize_lent -= k - classes
                self._oversize_out -= 1
                self._lent_bytes -= k - classes

    def stats(self) -> SizedPoolStats:
        """A snapshot of the counters (leaks found since the last call counted first)."""
        freed: list[ByteBuffer] = []
        # Read in one section into a list made before it (ints only: nothing the collector
        # tracks is made under the lock), then built into the stats objects after it.
        counts = [0] * (_GLOBAL_COUNTS + _CLASS_COUNTS * len(self._classes))
        self._read_counts(counts, freed)
        oversize_lent, oversize_out, oversize, leaks, pinned, high_water, closed = counts[:_GLOBAL_COUNTS]
        classes = []
        for k in range(len(self._classes)):
            at = _GLOBAL_COUNTS + _CLASS_COUNTS * k
            size, hits, misses, evictions, trimmed, idle, lent, class_high_water = counts[at : at + _CLASS_COUNTS]
            classes.append(
                SizeClassStats(
                    size=size,
                    hits=hits,
                    misses=misses,
                    evictions=evictions,
                    trimmed=trimmed,
                    lent=lent,
                    lent_bytes=lent * size,
                    idle_bytes=idle * size,
                    high_water_bytes=class_high_water * size,
                )
            )
        lent = sum(c.lent for c in classes) + oversize_out
        allocations = sum(c.hits + c.misses for c in classes) + oversize
        lent_bytes = sum(c.lent_bytes for c in classes) + oversize_lent
        return SizedPoolStats(
            classes=tuple(classes),
            lent=lent,
            allocations=allocations,
            deallocations=allocations - leaks - lent,
            leaks=leaks,
            oversize=oversize,
            lent_bytes=lent_bytes,
            idle_bytes=sum(c.idle_bytes for c in classes),
            high_water_bytes=max(high_water, lent_bytes),  # the cached classes' bytes now count too
            pinned_bytes=pinned,
            closed=bool(closed),
        )

    def _read_counts(self, counts: list[int], freed: list[ByteBuffer]) -> None:
        """Under the lock: the counters into `counts` (see stats()), the caches' included."""
        locked = False
        try:
            locked = self._lock.acquire()
            self._settle_leaks()
            self._settle_orphans(freed)
            while self._unpinned:
                self._pinned_made -= self._unpinned.pop()
            counts[0] = self._oversize_lent
            counts[1] = self._oversize_out
            counts[2] = self._oversize
            counts[3] = self._leaks
            counts[4] = self._pinned_made
            counts[5] = self._high_water_bytes
            counts[6] = self._closed
            classes = self._classes
            caches = self._caches
            for k in range(len(classes)):
                c = classes[k]
                at = _GLOBAL_COUNTS + _CLASS_COUNTS * k
                counts[at] = c.size
                counts[at + 1] = c.hits
                counts[at + 2] = c.misses
                counts[at + 3] = c.evictions
                counts[at + 4] = c.trimmed
                counts[at + 5] = len(c.idle)
                counts[at + 6] = c.lent
                counts[at + 7] = c.high_water
                if k < self._cached_classes:
                    for i in range(len(caches)):
                        caches[i].add_counts(k, counts, at + 1)  # hits, then idle and lent
        finally:
            if locked:
                self._lock.release()

    def fork_locks(self) -> list[HeldLock]:
        """The pool's lock, then every thread cache's (the order its own code nests them)."""
        return [self._lock, *(cache.lock for cache in self._caches)]

    def forked_child(self) -> None:
        """In a child process: the caches of the parent's other threads are orphans now
        (their buffers are freed, counted as trimmed, by the next settle)."""
        mine = getattr(self._local, "cache", None)
        self._orphans.extend(cache for cache in self._caches if cache is not mine and cache not in self._orphans)

    def __copy__(self) -> NoReturn:
        raise TypeError("SizedPool cannot be copied: its handles name one pool")

    def __deepcopy__(self, memo: object) -> NoReturn:
        raise TypeError("SizedPool cannot be copied: its handles name one pool")

    def __reduce_ex__(self, protocol: object) -> NoReturn:
        raise TypeError("SizedPool cannot be pickled: its buffers live in this process")

    def __repr__(self) -> str:
        name = "" if self._name is None else f" {self._name!r}"
        closed = ", closed" if self._closed else ""
        return (
            f"<SizedPool{name} {self.min_size}..{self.max_size} bytes, {self._retained} retained"
            f" of {self._max_retained}{closed}>"
        )


class _ThreadToken:
    """Lives in a thread's slot of the pool's `threading.local`: its death ends the thread's cache."""

    __slots__ = ("__weakref__",)


def _check_power_of_two(name: str, value: object) -> int:
    n = check_int(name, value, 1)
    if n & (n - 1):
        reject(ValueError, name, "a power of two", value)
    return n
