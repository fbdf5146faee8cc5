"""`Pool[T]`: a fixed array of objects, a stack of free indices, and linear handles.

This module is the reference for both builds: where the install compiled
`objpool/_cpool.pyx`, its `PoolCore` replaces `_PoolCore` below (the hot path), and
everything else here runs as it is. The handles are `objpool._ownedref`'s.

Invariant: every slot index is in exactly one place: on the free stack `_free`, in one
thread's cache (`SlotCache.free`, with thread caches on), in the one-element claim list of
exactly one live `OwnedRef`, in `_leaked` (its handle was garbage-collected and the slot awaits
a fresh object), held by one thread in transit (being rebuilt, or between a pop and its handle,
where that thread's cleanup gives it back; both count as lent), or retired (counted in
`_retired`).

Thread safety without a lock on the hot path: CPython's `list.pop()` and `list.append()`
are atomic, so `allocate()` pops an index and `deallocate()` wins a handle by popping its
claim list; of two threads releasing one handle, exactly one gets the index. A slot's
counters are written only by the thread that holds the slot at that moment, so they
need no lock either.

No user code (a factory, a reset, the finaliser of an object the pool drops, a warnings
filter) ever runs while `_lock` is held: the lock guards only `+=` on the rare-path counters,
statements that allocate nothing the garbage collector tracks and call nothing, so neither a
finaliser nor a reentrant call into the pool can run inside it. Slots in transit (popped
from `_leaked`, or won from a handle whose reset failed) are owned by the one thread
rebuilding them, outside the lock.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Generic, NoReturn, Protocol, TypeVar, cast, final, overload, runtime_checkable

from ._compiled import COMPILED
from . import _fork
from ._acquisition import Acquisition
from ._errors import NOT_A_HANDLE, ForeignRefError, PoolClosedError, PoolExhaustedError, StaleRefError
from ._locking import gil_enabled
from ._ownedref import OwnedRef
from ._threadnumber import THIS_THREAD, cache_for_this_thread
from ._validate import check_callable, check_optional_str, check_seconds, check_size, reject
from ._waiting import NO_WAIT, Line, Waiter, pop_or_none, wait, wait_async
from ._warn import allocation_site, warn_user

__all__ = ["COMPILED", "Pool", "PoolStats", "Reset"]


@runtime_checkable
class Reset(Protocol):
    """Anything that can be put back into its just-built state, keeping its capacity."""

    def reset(self) -> None:
        """Forget all contents; keep allocated memory for the next user."""


T = TypeVar("T")  # invariant: a Pool[T] both hands out and takes back T
R = TypeVar("R", bound=Reset)
# from_items' own element type: a classmethod called on the bare class cannot solve the class's
# T from its arguments in every checker (pyright infers Pool[Unknown]), so it gets a new one.
U = TypeVar("U")

MAX_CAPACITY: Final = sys.maxsize // 8
"""The most slots a pool can have: the most references a list holds (`PY_SSIZE_T_MAX` divided
by the size of a pointer). A larger capacity is refused at once rather than built until the
machine runs out of memory."""

# Handle reuse needs a reference count that tells the truth: CPython's, with the GIL.
# Elsewhere (PyPy, free-threaded builds) every allocation makes a fresh handle.
_COUNTS_ARE_EXACT = sys.implementation.name == "cpython" and gil_enabled()
getrefcount: Callable[[object], int] = getattr(sys, "getrefcount", lambda obj: 0)

CACHE_DEPTH: Final = 4
"""Free slots a thread's cache keeps (see `Pool.thread_cache`): a burst of 4 releases, then 4
allocations, touch nothing another thread touches. A release is kept only while the shared
stack has as many free slots left for the others."""


@final
@dataclass(frozen=True, slots=True)
class PoolStats:
    """An immutable snapshot of a pool's counters, from `Pool.stats()`.

    Counts obey `allocations == deallocations + reset_failures + leaks + lent`.
    """

    capacity: int
    """Slots in circulation: the initial capacity less `retired` slots."""
    lent: int
    """Objects lent through live handles."""
    free: int
    """Objects ready to lend."""
    allocations: int
    """Successful `allocate()`/`try_allocate()` calls."""
    deallocations: int
    """Releases whose reset succeeded, putting the object back in circulation."""
    exhausted: int
    """Allocation attempts that found every object lent (for their whole timeout)."""
    waiting: int
    """Threads and tasks waiting for an object now."""
    high_water: int
    """The most slots ever out of the pool at once (lent, leaked or retired; with thread caches
    on, the most ever out of the shared stack, which counts slots kept in a thread's cache)."""
    leaks: int
    """Handles garbage-collected while live (each raised a `ResourceWarning`)."""
    reset_failures: int
    """Releases whose reset raised; the object left circulation."""
    retired: int
    """Slots taken out of circulation for good (no factory to rebuild their object)."""
    closed: bool
    """Whether `close()` was called."""


class SlotCache:
    """One thread's cache of free slots in front of a `Pool`'s shared stack (`thread_cache`).

    Only its thread adds slots and counts; other threads may take slots (`free.pop()`, atomic)
    when the shared stack runs dry. `objpool._cpool.SlotCache` replaces it in the compiled build.
    """

    __slots__ = ("allocations", "free", "pool")

    def __init__(self, pool: object) -> None:
        self.pool = pool  # whose free slots these are
        self.free: list[int] = []  # LIFO, at most CACHE_DEPTH
        self.allocations = 0  # lent from `free` by this cache's thread


def _reset_method(objects: list[Any]) -> Callable[[Any], object]:
    """The fastest correct way to call `obj.reset()` on these objects."""
    kinds = {type(obj) for obj in objects}
    method = getattr(kinds.pop(), "reset", None)
    if not kinds and callable(method):
        # One class: its unbound method is twice as fast to call as a wrapper or
        # operator.methodcaller("reset").
        return cast("Callable[[Any], object]", method)
    return _call_reset


def _call_reset(obj: Reset) -> None:
    obj.reset()


class _PoolCore(Generic[T]):
    """`Pool`'s hot path: lend, take back, and nothing else.

    When the install compiled it, `objpool._cpool.PoolCore` replaces this class (and
    `objpool._cpool.OwnedRef` the handle above): the same methods and messages, checked by
    the same tests. Rare paths stay in `Pool`, which the core calls back into.

    Handle reuse: `deallocate` parks the dead handle in `_handles[index]`, and the next
    `allocate` of that slot revives it instead of making a new one, but only when the
    pool's list is its only holder (the reference count says so). Anyone still holding the
    dead handle keeps the count up, so a handle that reached user code after its release
    is never revived: it stays dead for good. A lent slot's entry is always `None`, so a
    live handle is referenced only by its users, and dropping it still runs `__del__`
    (leak detection is unchanged).

    In the `with` form (and `pool.deallocate(pool.allocate())`) the handle never reaches a
    user's name and is reused every time, saving its construction and its finaliser
    (CPython 3.11, instructions per cycle under valgrind's callgrind: 4,792 -> 3,434 here,
    1,769 -> 1,415 compiled). `ref = pool.allocate(); ...; ref.release()` in a flat loop still
    holds the last dead handle when the next allocation runs, so it pays the test and gets
    a fresh handle (5,800 -> 6,440 here, 2,097 -> 2,160 compiled). The price: a pool
    caching dead handles is in a reference cycle with them, so a dropped pool is freed by
    the cyclic garbage collector.
    """

    __slots__ = ("_blocked", "_cache_depth", "_caches", "_closed", "_free", "_handles", "_items", "_reset", "_uses")
    _caches: list[SlotCache | None] | None  # by thread number (objpool._threadnumber); None: off
    _cache_depth: int  # the most free slots a thread's cache keeps
    _closed: bool
    _free: list[int]
    _handles: list[OwnedRef[T] | None]  # per slot: its parked dead handle, or None
    _items: list[T]
    _reset: Callable[[Any], object]  # one class's unbound reset(), _call_reset, or the user's
    _uses: list[int]  # allocations per slot, written only by the slot's holder: no lock
    _blocked: bool  # closed, or someone waits: kept by objpool._waiting.Line, hot-path tested

    def _start(self, items: list[T], cache_depth: int) -> None:
        """Take `items` as the slots' objects, every slot free and every count zero, with a
        cache of up to `cache_depth` free slots per thread (0: none)."""
        size = len(items)
        self._caches = [] if cache_depth else None
        self._cache_depth = cache_depth
        self._items = items
        self._free = list(range(size - 1, -1, -1))  # slot 0 is lent first
        self._handles = [None] * size
        self._uses = [0] * size
        self._closed = False
        self._blocked = False

    def _counts(self) -> tuple[int, int]:
        """(allocations so far, the most slots ever out of the free stack at once).

        Slots leave the LIFO stack top-down and return on top, so the number of slots ever
        used is exactly the most that were ever out at once.
        """
        uses = self._uses
        return sum(uses), sum(1 for n in uses if n)

    # -- the hot path ---------------------------------------------------------------

    def allocate(self, timeout: float | None = NO_WAIT) -> OwnedRef[T]:
        """Lend an object through a handle; with a `timeout`, wait that long for one.

        `timeout=0` (the default) raises at once when every object is lent; a positive
        timeout waits up to that many seconds for a release, `None` forever. Waiters are
        served first come, first served (threads and `acquire()` tasks alike), and while
        anyone waits a new caller waits behind them. The waiting thread does not hold the
        GIL.

        Raises:
            PoolExhaustedError: every object is lent (for the whole `timeout`); release one
                first, or call `try_allocate()` to get `None` instead.
            PoolClosedError: `close()` was called (before or during the wait).
            TypeError, ValueError: `timeout` is not a number >= 0 or None.
        """
        if timeout is not NO_WAIT:  # the default skips the check: one identity test
            timeout = check_seconds("timeout", timeout, none_ok=True)
        if self._blocked:  # closed, or someone waits (no barging past them)
            return self._allocate_blocked(timeout)
        if self._caches is not None:  # this thread's cache first (see Pool.thread_cache)
            ref = self._lend_cached()
            if ref is not None:
                return ref
        try:
            # Whoever pops `claim` owns the slot: the handle, or the cleanup below if an
            # interrupt (KeyboardInterrupt, a tracer's exception) lands before the return.
            claim = [self._free.pop()]
        except IndexError:
            return self._allocate_slow(timeout)
        try:
            # _lend(claim), inlined: a call would cost ~9% of a cycle.
            index = claim[0]
            # The slot is ours alone (popped above), so nothing else reads or writes its entry.
            handles = self._handles
            # The parked handle is revived if `handles` is its only holder; if a user still
            # holds the dead handle it stays dead and a fresh one is made. The count is read
            # through the subscript's own reference, strong in every version (a local's load
            # may be borrowed from 3.14 on, and whether it is depends on the code around it).
            # (None's count is never that low, which saves a test for None: ~20 Ir.)
            if getrefcount(handles[index]) == _SOLE_HOLDER:
                ref = handles[index]
                handles[index] = None
                ref._claim = claim  # type: ignore[union-attr]  # not None: see above
            else:
                handles[index] = None
                ref = OwnedRef()
                ref._pool = self  # type: ignore[assignment]  # the core is only ever Pool's base
                ref._value = self._items[index]
                ref._claim = claim
            self._uses[index] += 1
            return ref  # type: ignore[return-value]  # not None: see above
        except BaseException:
            self._lend_failed(claim)
            raise

    def try_allocate(self) -> OwnedRef[T] | None:
        """Like `allocate()`, but return `None` when every object is lent.

        Raises:
            PoolClosedError: `close()` was called (a closed pool is not merely full).
        """
        try:
            return self.allocate()
        except PoolExhaustedError:
            return None

    def _lend_cached(self) -> OwnedRef[T] | None:
        """A live handle on the newest slot in this thread's cache, or None if it is empty.

        Counted in the cache, not per slot: a cache's counts have one writer, its thread, so
        threads sharing the pool write nothing in common (the high water needs no count here:
        a cached slot left the shared stack when it was first lent).
        """
        try:
            cache = self._caches[THIS_THREAD.number]  # type: ignore[index]  # on: not None
        except (AttributeError, IndexError):  # this thread's first allocation here
            cache = None
        if cache is None:
            cache = self._new_cache()
        try:
            claim = [cache.free.pop()]
        except IndexError:
            return None
        try:
            ref: OwnedRef[T] = OwnedRef()
            ref._pool = self  # type: ignore[assignment]  # the core is only ever Pool's base
            ref._value = self._items[claim[0]]
            ref._claim = claim
            cache.allocations += 1
            return ref
        except BaseException:
            self._lend_failed(claim)
            raise

    def _new_cache(self) -> SlotCache:
        raise NotImplementedError  # Pool's

    def _lend_free(self) -> OwnedRef[T] | None:
        """A live handle on a free slot, or None if none is free.

        The pop and the lend run in one frame, inside the `try` that gives the slot back:
        an interrupt at the entry of a function called with the index would lose it.
        """
        try:
            claim = [self._free.pop()]
        except IndexError:
            return None
        try:
            return self._lend_claimed(claim)
        except BaseException:
            self._lend_failed(claim)
            raise

    def _lend_claimed(self, claim: list[int]) -> OwnedRef[T]:
        """A live handle on the slot in the one-element `claim`, which the caller owns and
        gives back if this raises (`allocate()` inlines this). Whoever pops `claim` owns it."""
        index = claim[0]
        handles = self._handles
        if getrefcount(handles[index]) == _SOLE_HOLDER:  # as in allocate()
            ref = handles[index]
            handles[index] = None
            ref._claim = claim  # type: ignore[union-attr]  # not None: see allocate()
        else:
            handles[index] = None
            ref = OwnedRef()
            ref._pool = self  # type: ignore[assignment]  # the core is only ever Pool's base
            ref._value = self._items[index]
            ref._claim = claim
        self._uses[index] += 1
        return ref  # type: ignore[return-value]  # not None: see allocate()

    def _lend_failed(self, claim: list[int]) -> None:
        raise NotImplementedError  # Pool's

    def deallocate(self, ref: OwnedRef[T]) -> None:
        """Reset the handle's object, return it to the pool and kill the handle.

        Raises:
            StaleRefError: the handle was already released.
            ForeignRefError: another pool lent the handle; neither pool changes.
            TypeError: `ref` is not an `OwnedRef`.
            Exception: whatever the reset raised. The handle is dead, the object left
                circulation, and its slot holds a fresh `factory()` object (or is
                retired when there is no factory).
        """
        try:
            pool: object = ref._pool
            claim = ref._claim
        except AttributeError:
            if isinstance(ref, OwnedRef):
                raise TypeError(NOT_A_HANDLE) from None
            reject(TypeError, "ref", "an OwnedRef", ref)
        if pool is not self:
            raise ForeignRefError(f"{ref!r} was lent by another pool, not by {self!r}")
        try:
            index = claim.pop()
        except IndexError:
            raise StaleRefError(f"{ref!r} was already released") from None
        try:
            self._reset(ref._value)
        except BaseException:
            self._reset_failed(index)
            raise
        if self._caches is not None and not self._blocked:
            # Into this thread's cache while the shared stack keeps as many for the others:
            # when objects are scarce every thread and waiter finds the free ones at once, and
            # the line decides who is next. (No call before the append: a signal's handler
            # could run at its entry, losing `index`.)
            try:
                cache = self._caches[THIS_THREAD.number]
            except (AttributeError, IndexError):  # no cache yet: allocated on another thread
                cache = None
            if cache is not None and len(cache.free) < self._cache_depth <= len(self._free):
                cache.free.append(index)
                if self._blocked:  # appended first, then tested, as below
                    self._serve()
                return
        self._handles[index] = ref  # parked, dead, for the next allocate() of this slot
        self._free.append(index)
        if self._blocked:  # appended first, then tested: see objpool._waiting
            self._serve()

    def _allocate_slow(self, timeout: float | None) -> OwnedRef[T]:
        raise NotImplementedError  # Pool's

    def _give_back(self, index: int) -> None:
        raise NotImplementedError  # Pool's

    def _allocate_blocked(self, timeout: float | None) -> OwnedRef[T]:
        raise NotImplementedError  # Pool's

    def _serve(self) -> None:
        raise NotImplementedError  # Pool's

    def _reset_failed(self, index: int) -> None:
        raise NotImplementedError  # Pool's


def _sole_holder_count() -> int:
    """What `getrefcount(handles[index])` reads in `allocate()` when `handles` is the handle's only holder.

    Taken through the same expression in the same kind of frame, because the interpreter's
    own temporaries count too and differ between versions. 0 (never read) where counts
    cannot be trusted.

    A tracer or profiler that reads `frame.f_locals` adds a reference (CPython before 3.13
    keeps the snapshot on the frame), and a count calibrated one too high would revive a
    handle its user still holds. So both are suspended while measuring, and the least of
    several measurements is kept: nothing can make a count lower than the truth.
    """
    if not _COUNTS_ARE_EXACT:
        return 0
    trace, profile = sys.gettrace(), sys.getprofile()
    # A C profiler (cProfile) shows as an object `setprofile` cannot take back; it keeps no
    # frame alive, so it stays on. A Python tracer or profiler is a callable.
    if callable(trace):
        sys.settrace(None)
    if callable(profile):
        sys.setprofile(None)
    try:
        return min(_measure_sole_holder() for _ in range(3))
    finally:
        if callable(trace):
            sys.settrace(trace)
        if callable(profile):
            sys.setprofile(profile)


def _measure_sole_holder() -> int:
    handles: list[object | None] = [OwnedRef()]
    index = 0
    return getrefcount(handles[index])


_SOLE_HOLDER = _sole_holder_count()


if COMPILED and not TYPE_CHECKING:  # type checkers read the Python classes above, the reference
    from ._cpool import PoolCore as _PoolCore
    from ._cpool import SlotCache


@final
class Pool(_PoolCore[T]):
    """A fixed-capacity pool: objects built up front, lent through linear handles.

    `allocate()` pops the most recently released object (LIFO, so caches stay warm),
    `deallocate(ref)` resets it and pushes it back. Every method is thread-safe, and a
    call that raises leaves the pool as it was (a failing reset aside: see `deallocate`).
    """

    __slots__ = (
        "_exhausted",
        "_factory",
        "_leaked",
        "_leaks",
        "_line",
        "_lock",
        "_name",
        "_reset_failures",
        "_retired",
        "_size",
        "_user_reset",
        "__weakref__",
    )

    @overload
    def __init__(
        self: Pool[R],
        factory: Callable[[], R],
        capacity: int,
        *,
        name: str | None = None,
        thread_cache: bool | None = None,
    ) -> None: ...
    @overload
    def __init__(
        self,
        factory: Callable[[], T],
        capacity: int,
        *,
        reset: Callable[[T], object],
        name: str | None = None,
        thread_cache: bool | None = None,
    ) -> None: ...
    def __init__(
        self,
        factory: Callable[[], Any],
        capacity: int,
        *,
        reset: Callable[[Any], object] | None = None,
        name: str | None = None,
        thread_cache: bool | None = None,
    ) -> None:
        """Build `capacity` objects with `factory()` now.

        `reset` puts an object back in its just-built state; it defaults to the objects'
        own `reset()` method (the `Reset` protocol). The factory also rebuilds objects
        whose reset failed or whose handle leaked. `name` shows in `repr()` and warnings.
        `thread_cache` turns the per-thread caches of free slots on or off (None: on where
        the interpreter runs without a GIL; see the `thread_cache` property).

        Raises:
            TypeError: `factory` or `reset` is not callable, `capacity` is not an int, or
                the objects have no `reset()` and no `reset=` was given.
            ValueError: `capacity < 1`, or `factory()` returned one object twice.
        """
        check_callable("factory", factory)
        check_size("capacity", capacity, 1, MAX_CAPACITY, "the most slots a list can hold")
        check_optional_str("name", name)
        self._setup([factory() for _ in range(capacity)], factory, reset, name, "factory()", thread_cache)

    @overload
    @classmethod
    def from_items(
        cls, items: Iterable[R], *, name: str | None = None, thread_cache: bool | None = None
    ) -> Pool[R]: ...
    @overload
    @classmethod
    def from_items(
        cls,
        items: Iterable[U],
        *,
        reset: Callable[[U], object],
        name: str | None = None,
        thread_cache: bool | None = None,
    ) -> Pool[U]: ...
    @classmethod
    def from_items(
        cls,
        items: Iterable[Any],
        *,
        reset: Callable[[Any], object] | None = None,
        name: str | None = None,
        thread_cache: bool | None = None,
    ) -> Pool[Any]:
        """A pool over objects you built; its capacity is their number.

        With no factory, an object whose reset fails or whose handle leaks cannot be
        rebuilt: its slot is retired and `capacity` shrinks by one.

        Raises:
            TypeError: as for `Pool(...)`.
            ValueError: `items` is empty or holds one object twice.
        """
        check_optional_str("name", name)
        objects = list(items)
        if not objects:
            raise ValueError("items must hold at least one object, got none")
        pool: Pool[Any] = cls.__new__(cls)
        pool._setup(objects, None, reset, name, "items", thread_cache)
        return pool

    def _setup(
        self,
        objects: list[T],
        factory: Callable[[], T] | None,
        reset: Callable[[T], object] | None,
        name: str | None,
        source: str,
        thread_cache: bool | None,
    ) -> None:
        seen: dict[int, int] = {}
        for i, obj in enumerate(objects):
            first = seen.setdefault(id(obj), i)
            if first != i:
                raise ValueError(f"{source} must give distinct objects; #{i} is #{first} again: {obj!r}")
        if reset is None:
            for obj in objects:
                if not isinstance(obj, Reset):
                    raise TypeError(
                        f"{source} gave {type(obj).__name__!r}, which has no reset() method; "
                        "pass reset=... to say how to clean one"
                    )
            self._reset = _reset_method(objects)
        else:
            check_callable("reset", reset)
            self._reset = reset
        self._user_reset = reset
        if thread_cache is None:
            thread_cache = not gil_enabled()
        self._start(objects, CACHE_DEPTH if thread_cache else 0)
        self._line = Line(self)
        self._name = name
        self._size = len(objects)
        self._factory = factory
        self._leaked: list[int] = []
        self._lock = threading.Lock()
        self._exhausted = 0
        self._leaks = 0
        self._reset_failures = 0
        self._retired = 0
        _fork.register(self)

    # -- rare paths -----------------------------------------------------------------

    if TYPE_CHECKING:  # the hot path lives in _PoolCore; restated so type errors name Pool

        def allocate(self, timeout: float | None = NO_WAIT) -> OwnedRef[T]:
            return super().allocate(timeout)

        def try_allocate(self) -> OwnedRef[T] | None:
            return super().try_allocate()

        def deallocate(self, ref: OwnedRef[T]) -> None:
            super().deallocate(ref)

    def _reset_failed(self, index: int) -> None:
        """A reset raised in `deallocate`: rebuild the slot and count it (the caller re-raises)."""
        self._rebuild(index, leaked=False)

    def _allocate_slow(self, timeout: float | None) -> OwnedRef[T]:
        """The free stack was empty: take back leaked slots, or wait, or report exhaustion."""
        self._drain_leaks()
        ref = self._lend_free()
        if ref is None:
            ref = self._lend_stolen()
        if ref is None:
            return self._wait(timeout)
        return ref

    def _exhausted_error(self, timeout: float | None) -> PoolExhaustedError:
        locked = False
        try:
            locked = self._lock.acquire()
            self._exhausted += 1
        finally:
            if locked:
                self._lock.release()
        lent = f"all {self._size - self._retired} objects of {self!r} are lent out"
        return PoolExhaustedError(lent if not timeout else f"{lent}, and none came back within {timeout:g} s")

    # -- waiting (see objpool._waiting) ---------------------------------------------

    def _allocate_blocked(self, timeout: float | None) -> OwnedRef[T]:
        """`allocate()` found the pool closed, or threads or tasks waiting: raise, or queue."""
        if self._closed:
            raise PoolClosedError(f"{self!r} is closed and lends nothing more")
        return self._wait(timeout)

    def _wait(self, timeout: float | None) -> OwnedRef[T]:
        """Queue behind earlier waiters and park this thread until handed an index (see
        `objpool._waiting.wait`)."""
        if timeout == 0:
            raise self._exhausted_error(timeout)
        return wait(self, 1, timeout)

    def _lend_handed(self, waiter: Waiter) -> OwnedRef[T]:
        """A live handle on the slot handed to `waiter` (which holds it until the claim does,
        so that the waiting frame's cleanup finds it wherever an interrupt lands)."""
        index = waiter.grant
        if index is None:  # woken by close()
            raise PoolClosedError(f"{self!r} was closed while waiting for an object")
        claim = [index]
        waiter.grant = None
        try:
            return self._lend_claimed(claim)
        except BaseException:
            self._lend_failed(claim)
            raise

    def _lend_failed(self, claim: list[int]) -> None:
        """An interrupt stopped a lend before its handle reached the caller: take the slot
        back from the handle (popping `claim` kills it) and give it back to the pool.

        Where it landed after the count (on the `return` line) the allocation stays
        counted, as one that was released at once.
        """
        try:
            index = claim.pop()
        except IndexError:  # released already: nothing to give back
            return
        self._give_back(index)

    def _recover_for_waiters(self) -> None:
        # Leaks are found inside the garbage collector, which wakes nobody: waiters look.
        if self._leaked:
            self._drain_leaks()

    def _give_up(self, waiter: Waiter, timeout: float | None) -> OwnedRef[T]:
        """The deadline passed: leave the line, unless an index was handed over meanwhile."""
        waiter.grant = self._line.leave(waiter)  # kept on the waiter until a handle holds it
        if waiter.grant is not None:  # handed over as the wait ran out: it is ours, take it
            return self._lend_handed(waiter)
        if waiter.closed:
            raise PoolClosedError(f"{self!r} was closed while waiting for an object")
        raise self._exhausted_error(timeout)

    def _leave(self, waiter: Waiter) -> None:
        index = self._line.leave(waiter)
        if index is not None:  # handed over, but the waiter is gone: serve the next one
            self._give_back(index)

    def _give_back(self, index: int) -> None:
        self._free.append(index)
        if self._blocked:
            self._serve()

    def _serve(self) -> None:
        self._line.serve()

    def _grant(self, waiter: Waiter) -> bool:
        """Under the line's lock: a free index for `waiter` (whose need is always 1 here),
        from the shared stack or else from a thread's cache.

        Stored on the waiter last, and never read back from it: a waiter whose nap just ran
        out looks at its grant without the lock and may take it at once, and a read-back of
        the emptied field would call the grant failed, leaving the served waiter at the head
        of the line to be handed (and to lose) the next free slot.
        """
        grant = pop_or_none(self._free)
        caches = self._caches
        if grant is None and caches is not None:
            i = len(caches)
            while i and grant is None:  # not `for`: an iterator is an object the collector tracks
                i -= 1
                cache = caches[i]
                if cache is not None:
                    grant = pop_or_none(cache.free)
        waiter.grant = grant
        return grant is not None

    def _return_grant(self, grant: int) -> None:
        self._free.append(grant)

    def acquire(self, timeout: float | None = None) -> Acquisition[OwnedRef[T], T]:
        """Wait for an object from asyncio: `ref = await pool.acquire()`, or
        `async with pool.acquire() as obj:` (released at the end of the block).

        The event loop runs on while the task waits; waiters are served first come, first
        served with `allocate(timeout=...)` callers on any thread. A task cancelled (or
        timing out) at the very moment an object was handed to it passes the object on.

        Raises (when awaited):
            PoolExhaustedError: no object came back within `timeout` seconds.
            PoolClosedError: `close()` was called (before or during the wait).
        Raises (at once):
            TypeError, ValueError: `timeout` is not a number >= 0 or None.
        """
        timeout = check_seconds("timeout", timeout, none_ok=True)
        return Acquisition(lambda: self._acquire(timeout), OwnedRef.__enter__)

    async def _acquire(self, timeout: float | None) -> OwnedRef[T]:
        if self._closed:
            raise PoolClosedError(f"{self!r} is closed and lends nothing more")
        if not self._blocked:
            ref = self._lend_free()
            if ref is not None:
                return ref
            self._drain_leaks()
            ref = self._lend_free()
            if ref is None:
                ref = self._lend_stolen()
            if ref is not None:
                return ref
        if timeout == 0:
            raise self._exhausted_error(timeout)
        return await wait_async(self, 1, timeout)

    # -- thread caches (see thread_cache) -------------------------------------------

    def _new_cache(self) -> SlotCache:
        """This thread's cache, made on its first allocation (or inherited with its number
        from an ended thread)."""
        assert self._caches is not None
        return cache_for_this_thread(self._caches, self._lock, SlotCache(self))

    def _lend_stolen(self) -> OwnedRef[T] | None:
        """The shared stack is empty: a live handle on a slot from some thread's cache, or
        None if every cache is empty too."""
        caches = self._caches
        if caches is None:
            return None
        i = len(caches)
        while i:
            i -= 1
            cache = caches[i]
            if cache is None:
                continue
            try:
                claim = [cache.free.pop()]
            except IndexError:
                continue
            try:
                return self._lend_claimed(claim)
            except BaseException:
                self._lend_failed(claim)
                raise
        return None

    def _cached(self) -> tuple[int, int]:
        """(free slots in the threads' caches, allocations they served)."""
        free = allocations = 0
        for cache in self._caches or ():
            if cache is not None:
                free += len(cache.free)
                allocations += cache.allocations
        return free, allocations

    @property
    def thread_cache(self) -> bool:
        """Whether each thread keeps up to 4 free slots of its own in front of the shared stack.

        On by default where there is no GIL (`sys._is_gil_enabled()`), off under it. Threads
        sharing one pool then touch nothing in common in a cycle that the cache serves: two
        threads sharing a pool run about as fast as two with a pool each (see the README).
        A release keeps its slot in its thread's cache only while the shared stack still has
        4 free slots (so a small or nearly exhausted pool is one shared stack, and its line
        decides who is next), and a thread that finds the shared stack empty takes from the
        other threads' caches, as waiters do: nothing is lent twice, and every free slot can
        be lent. A slot in a cache counts as free; `high_water` counts slots out of the
        shared stack.
        """
        return self._caches is not None

    def _on_leak(self, index: int, ref: OwnedRef[T]) -> None:
        # Called from OwnedRef.__del__, possibly inside the garbage collector, on any
        # thread: so only an atomic append and a warning (no lock is ever held around
        # code that can collect). The slot is rebuilt later by _drain_leaks(), on a
        # caller's own thread.
        self._leaked.append(index)
        warn_user(
            f"an OwnedRef of {self!r} was garbage-collected while still live{allocation_site(ref)}; "
            "release it, or use 'with pool.allocate() as obj:'",
            ResourceWarning,
            source=ref,
        )

    def _drain_leaks(self) -> None:
        """Rebuild every slot whose handle leaked; runs factory() with no lock held."""
        leaked = self._leaked
        while leaked:
            try:
                index = leaked.pop()
            except IndexError:  # another thread drained it first
                return
            self._rebuild(index, leaked=True)

    def _rebuild(self, index: int, *, leaked: bool) -> None:
        """Put a fresh object in a slot whose object left circulation, or retire the slot;
        then count why it left (`leaked`, else its reset failed).

        The slot belongs to the calling thread alone (in no list; it counts as lent until it
        is free again), so no lock is needed, and none is held while `factory()` runs.
        Whatever `factory()` raises, the slot ends in exactly one place: back on the free
        stack, or retired. The old object may still be referenced elsewhere (a leak) or be
        half-reset (a failed reset), so it is never lent again: that would alias it.
        """
        factory = self._factory
        if factory is None:
            self._retire(leaked)
            return
        try:
            fresh = factory()
            if any(fresh is obj for obj in self._items):
                raise ValueError(f"factory() returned {fresh!r}, which is already in the pool")
            if self._reset is not _call_reset and type(fresh) is not type(self._items[index]):
                # _reset may be one class's unbound reset(); a new class needs the general
                # call (or, with a user's reset=..., nothing changes: it takes any T).
                if self._user_reset is None:
                    if not isinstance(fresh, Reset):
                        raise TypeError(f"factory() returned {fresh!r}, which has no reset() method")
                    self._reset = _call_reset
        except Exception as exc:
            # Raising here would fail an unrelated call (stats(), another allocate()), and
            # swallowing would hide it: retire the slot and say why.
            self._retire(leaked)
            warn_user(f"{self!r}: factory() failed to rebuild a slot ({exc!r}); the slot is retired", RuntimeWarning)
            return
        except BaseException:  # KeyboardInterrupt, SystemExit: retire the slot, then let it out
            self._retire(leaked)
            raise
        old = self._items[index]
        self._items[index] = fresh
        self._give_back(index)  # to a waiter, if anyone waits
        # Counted once the slot is free: a snapshot in between sees a slot neither lent
        # nor counted, so `deallocations` (derived) is one high for a moment, never negative.
        self._count_rebuilt(leaked)
        del old  # its finaliser, if this was the last reference, runs here: no lock is held

    def _count_rebuilt(self, leaked: bool, *, retired: bool = False) -> None:
        """Count why a slot left circulation (`leaked`, else its reset failed), once it is free
        again or `retired`: one section, so capacity and lent drop as the cause is counted."""
        locked = False
        try:
            locked = self._lock.acquire()
            if retired:
                self._retired += 1
            if leaked:
                self._leaks += 1
            else:
                self._reset_failures += 1
        finally:
            if locked:
                self._lock.release()

    def _retire(self, leaked: bool) -> None:
        self._count_rebuilt(leaked, retired=True)

    def fork_locks(self) -> tuple[threading.Lock, threading.Lock]:
        """The pool's locks, for the fork hook (`objpool._fork`); never nested."""
        return self._lock, self._line._lock

    def forked_child(self) -> None:
        """In a child process: the parent's waiting threads are not there; forget them."""
        self._line.clear_after_fork()

    def close(self) -> None:
        """Stop lending: later `allocate()` calls raise `PoolClosedError`.

        Idempotent. Handles still out stay valid and may be released. Threads and tasks
        waiting for an object get `PoolClosedError`.
        """
        self._closed = True
        self._blocked = True  # allocate() tests this flag, not _closed
        self._line.close()

    @property
    def name(self) -> str | None:
        """The name given at construction, if any."""
        return self._name

    @property
    def closed(self) -> bool:
        """Whether `close()` was called."""
        return self._closed

    @property
    def capacity(self) -> int:
        """Objects in circulation: the initial capacity less retired slots."""
        self._drain_leaks()
        return self._size - self._retired

    @property
    def lent(self) -> int:
        """Objects lent through live handles now. O(1), like `free`; `stats()` is O(capacity)."""
        self._drain_leaks()
        return self._size - self._retired - len(self._free) - self._cached()[0]

    @property
    def waiting(self) -> int:
        """Threads (`allocate(timeout=...)`) and tasks (`acquire()`) waiting for an object now."""
        return len(self._line.queue)

    @property
    def free(self) -> int:
        """Objects ready to lend now."""
        self._drain_leaks()
        return len(self._free) + self._cached()[0]

    def stats(self) -> PoolStats:
        """A snapshot of the counters (exact when no other thread is mid-call).

        Leaked handles found since the last call are counted first, and their slots rebuilt.
        """
        self._drain_leaks()
        # No lock: each counter is one atomic read, and one taken under the lock would be
        # no more consistent while other threads allocate and release on the lock-free path.
        # The identities hold in every snapshot by construction: `lent` is what is neither
        # free nor retired (a slot being rebuilt counts as lent), `deallocations` the rest.
        retired = self._retired
        cached_free, cached_allocations = self._cached()
        free = len(self._free) + cached_free
        leaks = self._leaks
        reset_failures = self._reset_failures
        capacity = self._size - retired
        lent = capacity - free
        allocations, high_water = self._counts()
        allocations += cached_allocations
        # A slot popped by a thread that has not yet counted its use (the pure build's
        # lock-free allocate) is lent already: count it as allocated, so that no snapshot
        # shows fewer allocations than slots out, nor negative deallocations.
        allocations = max(allocations, lent + leaks + reset_failures)
        return PoolStats(
            capacity=capacity,
            lent=lent,
            free=free,
            allocations=allocations,
            deallocations=allocations - lent - leaks - reset_failures,
            exhausted=self._exhausted,
            waiting=self.waiting,
            high_water=high_water,
            leaks=leaks,
            reset_failures=reset_failures,
            retired=retired,
            closed=self._closed,
        )

    def __repr__(self) -> str:
        # Lock-free, like every read: __repr__ runs inside OwnedRef.__del__, possibly in the
        # garbage collector. Pending leaks count as free.
        free = len(self._free) + len(self._leaked) + self._cached()[0]
        capacity = self._size - self._retired
        closed = ", closed" if self._closed else ""
        name = "" if self._name is None else f" {self._name!r}"
        return f"<Pool{name} {capacity - free}/{capacity} lent, {free} free{closed}>"

    def __copy__(self) -> NoReturn:
        raise TypeError("Pool cannot be copied: two pools would lend the same objects")

    def __deepcopy__(self, memo: object) -> NoReturn:
        raise TypeError("Pool cannot be copied: two pools would lend the same objects")

    def __reduce_ex__(self, protocol: object) -> NoReturn:
        raise TypeError("Pool cannot be pickled: its handles are only meaningful in this process")
