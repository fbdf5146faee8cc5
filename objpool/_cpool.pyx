# cython: language_level=3, auto_pickle=False, embedsignature=True, freethreading_compatible=True
"""The compiled hot path of `objpool._pool`: `PoolCore` and `OwnedRef` as extension types.

`objpool/_pool.py` is the reference: its `_PoolCore` and `OwnedRef` define every behaviour
and message, and this module repeats them for speed (CPython's heapq/_heapq pattern). The
test suite runs against both builds. Rare paths stay in Python, in `Pool`, which subclasses
whichever core the install has.

Invariant: a handle's `_index` is its slot while it is live and -1 once released. It is
taken by an atomic swap (`objpool._catomic`: a plain read and write under the GIL), so of two
threads releasing one handle exactly one wins, as `list.pop()` on a claim list does in
`_pool.py`. The counters `_allocations` and `_most_out` are C integers updated the same way,
so no increment is lost with or without the GIL. Everything else a thread touches is either
its own (a slot it popped), a list (whose operations lock themselves without the GIL), or set
once when the handle or pool is made; handle reuse, the one write to a shared handle, is off
without the GIL (the reference counts are not exact there). With thread caches on, a
`SlotCache`'s count has one writer, its thread, and its list is taken from by other threads
only through `pop()`.
"""

cimport cython
from cpython.ref cimport Py_REFCNT

from objpool._catomic cimport objpool_add, objpool_add_fetch, objpool_bump, objpool_load, objpool_raise_to, objpool_swap
from objpool._cthreadlocal cimport find_cache, objpool_tl_seen

from types import GenericAlias

from objpool._errors import NOT_A_HANDLE as _NOT_A_HANDLE, ForeignRefError, PoolClosedError, PoolExhaustedError, StaleRefError
from objpool._locking import gil_enabled
from objpool._threadnumber import thread_number
from objpool._validate import check_seconds, reject
from objpool._waiting import NO_WAIT


# A parked handle taken out of `_handles` may be revived when `allocate()`'s local is its
# only reference: a count of 1. Free-threaded builds count references per thread, so there
# every allocation makes a fresh handle (0 never matches), as in `_pool.py`.
cdef Py_ssize_t _SOLE_HOLDER = 1 if gil_enabled() else 0

# The last serial given to a pool (the first is 1: the thread-locals start at 0, no pool).
cdef Py_ssize_t _serials = 0

# allocate()'s default timeout as a C global: a module-global lookup per call cost ~4% of a
# compiled cycle, an identity test of this costs nothing.
cdef object _NO_WAIT = NO_WAIT


@cython.final
cdef class OwnedRef:
    """Exclusive, linear handle on one pooled object; made only by `Pool.allocate`.

    Use it as a context manager (`with pool.allocate() as obj:`), or read `.value` and
    call `release()` (or `pool.deallocate(ref)`) exactly once. After release the handle
    is dead for good: `.value` and a second release raise `StaleRefError`. A handle that
    is garbage-collected while live is a leak: the pool warns and replaces the object.
    """

    # Fields (declared in _cpool.pxd): _pool, the lender, or the thread's `SlotCache` that
    # lent it for its pool (so threads sharing a pool do not all count references to it: a
    # shared pool's count cost two threads ~20% of their cycles, CPython 3.13t), or None in a
    # handle made outside a pool (inert); _value; _index, the slot while live and -1 once
    # released; _release, NULL when a PoolCore lent it, else the C function that hands it
    # back to its lender.

    __class_getitem__ = classmethod(GenericAlias)

    @property
    def value(self):
        """The lent object. Raises `StaleRefError` once the handle was released."""
        if self._pool is None:
            raise TypeError(_NOT_A_HANDLE)
        if objpool_load(&self._index) < 0:
            raise StaleRefError(f"{self!r} was released; its object belongs to the pool again")
        return self._value

    @property
    def alive(self):
        """True until the handle is released (or its object's reset failed)."""
        if self._pool is None:
            raise TypeError(_NOT_A_HANDLE)
        return objpool_load(&self._index) >= 0

    @property
    def pool(self):
        """The pool that lent this handle."""
        if self._pool is None:
            raise TypeError(_NOT_A_HANDLE)
        return _lender(self)

    def release(self):
        """Reset the object and give it back to its pool; same as `pool.deallocate(self)`."""
        pool = self._pool
        if pool is None:
            raise TypeError(_NOT_A_HANDLE)
        # A Pool's handle (the common case) calls the C deallocation, which skips a method
        # lookup and an argument parse; other lenders' handles call the lender's C function.
        # Telling them apart by this pointer: +11 Ir a cycle; by isinstance(pool, PoolCore):
        # +27 (CPython 3.11, valgrind's callgrind).
        if self._release is NULL:
            (<PoolCore>pool)._deallocate(self)
        else:
            self._release(pool, self)

    def __enter__(self):
        if self._pool is None:
            raise TypeError(_NOT_A_HANDLE)
        if objpool_load(&self._index) < 0:
            raise StaleRefError(f"{self!r} was released; its object belongs to the pool again")
        return self._value

    def __exit__(self, exc_type, exc, traceback):
        pool = self._pool
        if pool is None:
            raise TypeError(_NOT_A_HANDLE)
        if self._release is NULL:  # as in release()
            (<PoolCore>pool)._deallocate(self)
        else:
            self._release(pool, self)

    def __del__(self):
        cdef Py_ssize_t index
        if self._pool is None:
            return
        index = objpool_swap(&self._index, -1)  # won, as the claim list's pop() wins in _pool.py
        if index < 0:
            return
        _lender(self)._on_leak(index, self)

    def __copy__(self):
        raise TypeError("OwnedRef cannot be copied: two handles would own one object")

    def __deepcopy__(self, memo):
        raise TypeError("OwnedRef cannot be copied: two handles would own one object")

    def __reduce_ex__(self, protocol):
        raise TypeError("OwnedRef cannot be pickled: it is only meaningful in its pool's process")

    def __repr__(self):
        if self._pool is None:
            return "<OwnedRef not made by a pool>"
        state = "live" if objpool_load(&self._index) >= 0 else "released"
        return f"<OwnedRef {state} {type(self._value).__name__} from {_lender(self)!r}>"


cdef inline object _lender(OwnedRef ref):
    """The pool or other lender that lent `ref` (its `_pool`, or that cache's pool)."""
    if type(ref._pool) is SlotCache:
        return (<SlotCache>ref._pool).pool
    return ref._pool


@cython.final
cdef class SlotCache:
    """One thread's cache of free slots in front of a `Pool`'s shared stack (see
    `_pool.SlotCache`, the reference). Its count has one writer, its thread."""

    def __cinit__(self, pool):
        self.pool = pool
        self.free = []

    @property
    def allocations(self):
        """Lent from `free` by this cache's thread."""
        return objpool_load(&self._allocations)


cdef inline SlotCache _cache_of(PoolCore pool, bint number_thread):
    """This thread's cache in `pool`, or None if it has none yet. A thread without a number
    gets one if `number_thread` (Python code: never once a slot is in transit). Found
    through the C thread-locals of `objpool._cthreadlocal`."""
    cdef void *seen = objpool_tl_seen(pool._serial)
    if seen != NULL:
        return <SlotCache>seen
    return _find_cache(pool, number_thread)


cdef SlotCache _find_cache(PoolCore pool, bint number_thread):
    """`_cache_of` when the thread-locals do not have it: from the pool's list, remembered."""
    return <SlotCache>find_cache(pool._caches, pool._serial, SlotCache, number_thread, thread_number)


cdef class PoolCore:
    """`Pool`'s hot path, compiled: lend, take back, and nothing else (see `_pool._PoolCore`).

    The same handle reuse as the reference (see there). Allocations are counted in two C
    integers instead of the reference's per-slot list, whose boxed `_uses[index] += 1` cost
    12% of a compiled cycle (1,415 -> 1,243 Ir on CPython 3.11; a fresh two-attribute object
    is 1,688).
    """

    # Fields (declared in _cpool.pxd): _closed, _free, _handles (per slot: its parked dead
    # handle, or None), _items, _reset, and the counters _allocations and _most_out (the most
    # slots ever out of the free stack at once).

    __class_getitem__ = classmethod(GenericAlias)

    def _start(self, list items, Py_ssize_t cache_depth):
        """Take `items` as the slots' objects, every slot free and every count zero, with a
        cache of up to `cache_depth` free slots per thread (0: none)."""
        cdef Py_ssize_t size = len(items)
        global _serials
        self._caches = [] if cache_depth else None
        self._cache_depth = cache_depth
        self._serial = objpool_add_fetch(&_serials, 1)
        self._items = items
        self._free = list(range(size - 1, -1, -1))  # slot 0 is lent first
        self._handles = [None] * size
        self._allocations = 0
        self._most_out = 0
        self._closed = False
        self._blocked = False

    def _counts(self):
        """(allocations so far, the most slots ever out of the free stack at once)."""
        return objpool_load(&self._allocations), objpool_load(&self._most_out)

    def allocate(self, timeout=_NO_WAIT):
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
        return self._allocate(timeout)

    cdef OwnedRef _allocate(self, object timeout):
        """`allocate(timeout)`, callable from C (PooledBuffer's twin)."""
        if timeout is not _NO_WAIT:  # the default skips the check: one identity test
            return _allocate_checked(self, check_seconds("timeout", timeout, none_ok=True))
        return _allocate_checked(self, timeout)

    def _lend_free(self):
        """A live handle on a free slot, or None if none is free: popped and lent in C, with
        no Python code between (see `_pool._PoolCore._lend_free`)."""
        cdef Py_ssize_t index
        try:
            index = self._free.pop()
        except IndexError:
            return None
        return _lend(self, index)

    def _lend_claimed(self, list claim not None):
        """A live handle on the slot in the one-element `claim`, which the caller owns.

        Popped and lent in C, with no Python code between: an interrupt finds the index in
        the claim (the caller's to give back) or in the handle, never in neither.
        """
        return _lend(self, claim.pop())

    def try_allocate(self):
        """Like `allocate()`, but return `None` when every object is lent.

        Raises:
            PoolClosedError: `close()` was called (a closed pool is not merely full).
        """
        try:
            return self._allocate(_NO_WAIT)
        except PoolExhaustedError:
            return None

    def deallocate(self, ref):
        """Reset the handle's object, return it to the pool and kill the handle.

        Raises:
            StaleRefError: the handle was already released.
            ForeignRefError: another pool lent the handle; neither pool changes.
            TypeError: `ref` is not an `OwnedRef`.
            Exception: whatever the reset raised. The handle is dead, the object left
                circulation, and its slot holds a fresh `factory()` object (or is
                retired when there is no factory).
        """
        if type(ref) is not OwnedRef:
            reject(TypeError, "ref", "an OwnedRef", ref)
        if (<OwnedRef>ref)._pool is None:
            raise TypeError(_NOT_A_HANDLE)
        self._deallocate(<OwnedRef>ref)

    cdef int _deallocate(self, OwnedRef handle) except -1:
        """`deallocate()` once `handle` is known to be a handle some pool made."""
        cdef Py_ssize_t index
        if handle._pool is not self and not (type(handle._pool) is SlotCache and (<SlotCache>handle._pool).pool is self):
            raise ForeignRefError(f"{handle!r} was lent by another pool, not by {self!r}")
        index = objpool_swap(&handle._index, -1)
        if index < 0:
            raise StaleRefError(f"{handle!r} was already released")
        cdef SlotCache cache
        try:
            self._reset(handle._value)
        except BaseException:
            self._reset_failed(index)
            raise
        if self._caches is not None and not self._blocked:
            # Into this thread's cache while the shared stack keeps as many for the others
            # (see _pool.py).
            cache = _cache_of(self, False)
            if cache is not None and len(cache.free) < self._cache_depth <= len(self._free):
                cache.free.append(index)
                if self._blocked:  # appended first, then tested, as below
                    self._serve()
                return 0
        self._handles[index] = handle  # parked, dead, for the next allocate() of this slot
        self._free.append(index)
        if self._blocked:  # appended first, then tested: see objpool._waiting
            self._serve()
        return 0


cdef inline OwnedRef _allocate_checked(PoolCore self, object timeout):
    """`allocate()` with a checked timeout. A C function, so the compiler inlines it, taking
    `timeout` as it came: an argument the function reassigns is increfed on entry, and
    without a GIL every thread's increfs of the one default object contend (~20% of a
    cycle with two threads, CPython 3.13t)."""
    cdef Py_ssize_t index
    cdef SlotCache cache
    if self._blocked:  # closed, or someone waits (no barging past them)
        return self._allocate_blocked(timeout)
    if self._caches is not None:  # this thread's cache first (see Pool.thread_cache)
        cache = _cache_of(self, True)
        if cache is None:
            cache = self._new_cache()
        if cache.free:
            try:
                index = cache.free.pop()
            except IndexError:  # another thread took it since the test
                pass
            else:
                return _lend_cached(self, cache, index)
    try:
        index = self._free.pop()
    except IndexError:
        return self._allocate_slow(timeout)
    # From the pop to the return no Python code runs, so no interrupt can land between.
    return _lend(self, index)


cdef inline OwnedRef _lend(PoolCore self, Py_ssize_t index):
    """A live handle on slot `index`, which the caller owns: a C function, so the compiler
    inlines it into `allocate()` (a method call through the vtable cost ~1% of a cycle)."""
    cdef Py_ssize_t out
    cdef object parked
    cdef OwnedRef ref
    objpool_add(&self._allocations, 1)
    out = len(self._items) - len(self._free)
    objpool_raise_to(&self._most_out, out)
    parked = self._handles[index]
    self._handles[index] = None
    # Now `parked` is its only holder, unless a user still holds the dead handle: then
    # it stays dead and a fresh one is made. The type test keeps a tampered `_handles`
    # from reaching the unchecked cast below.
    if type(parked) is OwnedRef and Py_REFCNT(parked) == _SOLE_HOLDER:
        ref = <OwnedRef>parked
        ref._index = index
        return ref
    ref = OwnedRef.__new__(OwnedRef)
    ref._pool = self
    ref._value = self._items[index]
    ref._index = index
    return ref


cdef inline OwnedRef _lend_cached(PoolCore self, SlotCache cache, Py_ssize_t index):
    """A live handle on slot `index`, just popped from this thread's `cache`: counted there,
    so that threads sharing the pool write nothing in common (see `_pool._lend_cached`)."""
    cdef OwnedRef ref = OwnedRef.__new__(OwnedRef)
    ref._pool = cache  # this thread's, not the shared pool: see OwnedRef's fields
    ref._value = self._items[index]
    ref._index = index
    ref._release = _release_cached
    objpool_bump(&cache._allocations)
    return ref


cdef int _release_cached(object cache, object ref) except -1:
    """How a handle lent from a thread's cache goes home: its cache's pool takes it back."""
    return (<PoolCore>(<SlotCache>cache).pool)._deallocate(<OwnedRef>ref)


def handle_for(lender, value, Py_ssize_t index):
    """A live handle on `value` lent by `lender` (a `SizedPool`); see `_pool.handle_for`."""
    if index < 0:
        raise ValueError(f"index must be >= 0, got {index}")
    cdef OwnedRef ref = OwnedRef.__new__(OwnedRef)
    ref._pool = lender
    ref._value = value
    ref._index = index
    ref._release = _release_through_python
    return ref


def end_handle(OwnedRef ref not None):
    """Kill a live handle and return its index, or -1 if it was released already (atomic:
    no Python call between the test and the write)."""
    cdef Py_ssize_t index = objpool_swap(&ref._index, -1)
    return -1 if index < 0 else index


cdef int _release_through_python(object lender, object ref) except -1:
    """How a handle made by handle_for() goes home: its lender's deallocate()."""
    lender.deallocate(ref)
    return 0
