# cython: language_level=3, auto_pickle=False, embedsignature=True, freethreading_compatible=True
"""The compiled hot path of `objpool._sizedpool`: `SizedPoolCore`, `SizeClass` and `CLock`.

`objpool/_sizedpool.py` is the reference: its `_SizedPoolCore` and `_SizeClass` define every
behaviour and message, and this module repeats them for speed (CPython's heapq/_heapq
pattern). The test suite runs against both builds. Evictions, sweeps, oversize buffers,
leaks and stats stay in Python, in `SizedPool`, which subclasses whichever core the install
has.

`ThreadCache` is `objpool._threadcache.ThreadCache`'s twin: a thread's cache of idle buffers,
whose `pop` and `push` the hot path calls in C, under the cache's own `CLock`, found through
C thread-locals keyed by the pool's serial number (see `_cpool`'s, which `Pool` uses alike).

`CLock` is the pool's lock in this build: a bare `PyThread` lock, taken from C without a
method call. A contended acquire releases the GIL while it blocks, as `threading.Lock` does.
With the GIL, the hot path takes it only while a Python section (a `with` block) holds it
(see `CLock`); without the GIL, always. A handle's `_index` is taken by an atomic swap
(`objpool._catomic`), so of two threads releasing one handle exactly one wins.
"""

cimport cython
from cpython.pythread cimport (
    NOWAIT_LOCK,
    WAIT_LOCK,
    PyThread_acquire_lock,
    PyThread_allocate_lock,
    PyThread_free_lock,
    PyThread_release_lock,
    PyThread_type_lock,
)

from objpool._catomic cimport objpool_add_fetch, objpool_load, objpool_swap
from objpool._cbytebuffer cimport ByteBuffer
from objpool._cclock cimport c_clock_agrees, objpool_monotonic
from objpool._cpool cimport OwnedRef
from objpool._cthreadlocal cimport objpool_tl_remember, objpool_tl_seen

import time

from objpool._errors import ForeignRefError, StaleRefError
from objpool._errors import NOT_A_HANDLE as _NOT_A_HANDLE
from objpool._locking import gil_enabled
from objpool._threadcache import CACHE_DEPTH
from objpool._validate import check_int, reject


# The last serial given to a pool (the first is 1: the thread-locals start at 0, no pool).
cdef Py_ssize_t _serials = 0

cdef Py_ssize_t _CACHE_DEPTH = CACHE_DEPTH
cdef object _MONOTONIC = time.monotonic
# Without the GIL other threads run during the hot path's C sections too: take the lock always.
cdef bint _NO_GIL = not gil_enabled()
# The default clock read without a Python call: one per release, ~10% of a 1 MiB cycle.
cdef bint _C_CLOCK = c_clock_agrees()


@cython.final
cdef class CLock:
    """A lock for `with`: `threading.Lock`'s behaviour, without its method calls from C.

    `held` is true while a `with` block (Python code, which the GIL can leave) holds it.
    With the GIL, the compiled hot path takes the lock only then: its own sections are C
    code that allocates nothing and runs no Python code, so while one runs this thread keeps
    the GIL and no other thread runs at all. That skips a trywait and a post on the lock's
    semaphore per section: a 1 MiB get+put went from 2,441 to 2,117 Ir. Without the GIL
    the hot path always takes it.
    """

    cdef PyThread_type_lock _lock
    cdef bint held

    def __cinit__(self):
        self._lock = PyThread_allocate_lock()
        if self._lock is NULL:
            raise MemoryError("cannot allocate a lock")

    def __dealloc__(self):
        if self._lock is not NULL:
            PyThread_free_lock(self._lock)

    cdef inline void take(self) noexcept:
        if not PyThread_acquire_lock(self._lock, NOWAIT_LOCK):
            with nogil:  # another thread holds it: let it run while this one waits
                PyThread_acquire_lock(self._lock, WAIT_LOCK)

    cdef inline void give(self) noexcept:
        PyThread_release_lock(self._lock)

    def __enter__(self):
        self.take()
        self.held = True  # set with the GIL held, before any Python code runs under it
        return True

    def __exit__(self, exc_type, exc, traceback):
        self.held = False
        self.give()

    def acquire(self):
        """Take the lock, as `__enter__` (Python sections use this: `with` makes two bound
        methods, objects the collector tracks, on CPython 3.11-3.13)."""
        self.take()
        self.held = True
        return True

    def release(self):
        """Let the lock go, as `__exit__`."""
        self.held = False
        self.give()

    def locked(self):
        """Whether some thread holds the lock now (as `threading.Lock.locked()`)."""
        if PyThread_acquire_lock(self._lock, NOWAIT_LOCK):
            PyThread_release_lock(self._lock)
            return False
        return True


@cython.final
cdef class SizeClass:
    """One size class's idle stack and counters (see `_sizedpool._SizeClass`)."""

    cdef public Py_ssize_t size
    cdef public object idle  # deque of (returned at, buffer), oldest first
    cdef public Py_ssize_t hits
    cdef public Py_ssize_t misses
    cdef public Py_ssize_t evictions
    cdef public Py_ssize_t trimmed
    cdef public Py_ssize_t lent  # buffers
    cdef public Py_ssize_t high_water  # buffers
    # idle's own pop and append, bound once: calling them skips a method lookup per call
    # (idle is never replaced, only changed in place).
    cdef object _pop
    cdef object _append

    def __init__(self, Py_ssize_t size):
        from collections import deque

        self.size = size
        self.idle = deque()
        self._pop = self.idle.pop
        self._append = self.idle.append


@cython.final
cdef class ThreadCache:
    """One thread's idle buffers of the cached classes, its credits and its counters (see
    `_threadcache.ThreadCache`, the reference: the same methods, and its invariant)."""

    cdef readonly CLock lock
    cdef readonly list idle  # per class: [(returned at, buffer)], oldest first
    cdef readonly list credit  # per class: the buffers this cache may hold
    cdef readonly list hits
    cdef readonly list lent  # lent from here minus returned here: may go negative

    def __init__(self, Py_ssize_t classes):
        self.lock = CLock()
        self.idle = [[] for _ in range(classes)]
        self.credit = [0] * classes
        self.hits = [0] * classes
        self.lent = [0] * classes

    def pop(self, Py_ssize_t k):
        """Class `k`'s newest idle buffer, counted as a hit and lent; None if there is none."""
        return self._pop(k)

    cdef object _pop(self, Py_ssize_t k):
        cdef list idle = <list>self.idle[k]
        cdef bint locked = self.lock.held or _NO_GIL  # see CLock
        buffer = None
        if locked:
            self.lock.take()
        try:
            if idle:
                self.hits[k] += 1
                self.lent[k] += 1
                buffer = idle.pop()[1]
        finally:
            if locked:
                self.lock.give()
        return buffer

    def wants_credit(self, Py_ssize_t k):
        """Whether class `k` is full and may still grow (see the reference)."""
        return self._wants_credit(k)

    cdef bint _wants_credit(self, Py_ssize_t k):
        cdef Py_ssize_t credit = self.credit[k]
        return len(<list>self.idle[k]) >= credit and credit < _CACHE_DEPTH

    def grant(self, Py_ssize_t k):
        """One more buffer of class `k` may be kept (the pool has counted it)."""
        cdef bint locked = self.lock.held or _NO_GIL
        if locked:
            self.lock.take()
        try:
            self.credit[k] += 1
        finally:
            if locked:
                self.lock.give()

    def push(self, Py_ssize_t k, tuple entry not None):
        """Keep `entry` as class `k`'s newest; return the buffer left without room, if any."""
        return self._push(k, entry)

    cdef object _push(self, Py_ssize_t k, tuple entry):
        cdef list idle = <list>self.idle[k]
        cdef bint locked = self.lock.held or _NO_GIL
        if locked:
            self.lock.take()
        try:
            self.lent[k] -= 1
            if len(idle) < <Py_ssize_t>self.credit[k]:
                idle.append(entry)
                return None
            if not idle:
                return entry[1]
            idle.append(entry)
            return idle.pop(0)[1]
        finally:
            if locked:
                self.lock.give()

    def take_idle(self, Py_ssize_t k, double returned_before, list freed not None):
        """Move class `k`'s buffers returned at or before `returned_before` to `freed`,
        with their credits; return how many."""
        cdef list idle = <list>self.idle[k]
        cdef Py_ssize_t taken = 0
        cdef bint locked = self.lock.held or _NO_GIL
        if locked:
            self.lock.take()
        try:
            while idle and <double>(<tuple>idle[0])[0] <= returned_before:
                freed.append(idle.pop(0)[1])
                taken += 1
            self.credit[k] -= taken
            return taken
        finally:
            if locked:
                self.lock.give()

    def revoke(self, Py_ssize_t k, list freed not None):
        """Take back class `k`'s credits, its idle buffers to `freed`; return how many credits."""
        cdef list idle = <list>self.idle[k]
        cdef bint locked = self.lock.held or _NO_GIL
        if locked:
            self.lock.take()
        try:
            while idle:
                freed.append(idle.pop()[1])
            credit = self.credit[k]
            self.credit[k] = 0
            return credit
        finally:
            if locked:
                self.lock.give()

    def add_counts(self, Py_ssize_t k, list counts not None, Py_ssize_t at):
        """Add class `k`'s hits, idle buffers and lent buffers now to `counts[at]`,
        `counts[at + 4]` and `counts[at + 5]`."""
        cdef bint locked = self.lock.held or _NO_GIL
        if locked:
            self.lock.take()
        try:
            counts[at] += self.hits[k]
            counts[at + 4] += len(<list>self.idle[k])
            counts[at + 5] += self.lent[k]
        finally:
            if locked:
                self.lock.give()


cdef class SizedPoolCore:
    """`SizedPool`'s hot path, compiled (see `_sizedpool._SizedPoolCore`)."""

    cdef public Py_ssize_t _cached_classes
    cdef public list _classes
    cdef public object _clock
    cdef public Py_ssize_t _high_water_bytes
    cdef public Py_ssize_t _lent_bytes
    cdef public CLock _lock
    cdef public Py_ssize_t _max_retained
    cdef public Py_ssize_t _max_size
    cdef public Py_ssize_t _min_shift
    cdef public double _next_sweep
    cdef public bint _pinned
    cdef public Py_ssize_t _retained
    cdef public bint _zero
    cdef Py_ssize_t _serial  # unique for the process's life: the thread-locals' key

    def __cinit__(self, *args, **kwargs):
        global _serials
        self._serial = objpool_add_fetch(&_serials, 1)

    def allocate(self, n):
        """Lend an empty `ByteBuffer` of at least `n` bytes (its class's newest idle one, or new).

        Raises:
            PoolClosedError: `close()` was called.
            TypeError: `n` is not an int.
            ValueError: `n < 0`.
        """
        cdef Py_ssize_t m, bits, k
        cdef SizeClass size_class
        cdef CLock lock = self._lock
        cdef bint locked
        if lock is None:  # built with __new__, never initialised: refuse, never crash
            raise TypeError("this SizedPool was never initialised")
        if type(n) is not int or n < 0:
            check_int("n", n)  # raises, naming the rule
        if n > self._max_size:  # or closed
            return self._allocate_oversize(n)
        m = n
        bits = 0
        m -= 1
        while m > 0:  # (n - 1).bit_length()
            m >>= 1
            bits += 1
        k = bits - self._min_shift
        if k < 0:
            k = 0
        if k < self._cached_classes:
            return _allocate_cached(self, k)
        size_class = <SizeClass>self._classes[k]
        buffer = None
        locked = lock.held or _NO_GIL  # see CLock
        if locked:
            lock.take()
        try:
            if size_class.idle:
                buffer = size_class._pop()[1]
                self._retained -= size_class.size
                size_class.hits += 1
            else:
                size_class.misses += 1
            size_class.lent += 1
            if size_class.lent > size_class.high_water:
                size_class.high_water = size_class.lent
            self._lent_bytes += size_class.size
            if self._lent_bytes > self._high_water_bytes:
                self._high_water_bytes = self._lent_bytes
        finally:
            if locked:
                lock.give()
        if buffer is None:  # allocated outside the lock (a miss: a call is nothing beside it)
            buffer = self._new_buffer(size_class.size)
        return _handle(self, buffer, k)

    def deallocate(self, ref):
        """Reset the handle's buffer, keep it for the next `allocate` (or free it), kill the handle.

        Raises:
            StaleRefError: the handle was already released.
            ForeignRefError: another pool lent the handle.
            TypeError: `ref` is not an `OwnedRef`.
            MemoryError: `zero_on_reset` could not wipe the buffer; the handle is dead and
                the buffer dropped.
        """
        if self._lock is None:  # built with __new__, never initialised: refuse, never crash
            raise TypeError("this SizedPool was never initialised")
        if type(ref) is not OwnedRef:
            reject(TypeError, "ref", "an OwnedRef", ref)
        if (<OwnedRef>ref)._pool is None:
            raise TypeError(_NOT_A_HANDLE)
        if (<OwnedRef>ref)._pool is not self:
            raise ForeignRefError(f"{ref!r} was lent by another pool, not by {self!r}")
        self._deallocate(<OwnedRef>ref)

    cdef int _deallocate(self, OwnedRef handle) except -1:
        """`deallocate` once `handle` is known to be this pool's (from `release()` it is)."""
        cdef Py_ssize_t k, classes, size
        cdef SizeClass size_class
        cdef CLock lock = self._lock
        cdef double now
        cdef bint locked
        ref = handle
        if objpool_load(&handle._index) < 0:
            raise StaleRefError(f"{ref!r} was already released")
        buffer = handle._value
        # The clock is read while the handle is still live: if it raises, nothing changed.
        if _C_CLOCK and self._clock is _MONOTONIC:
            now = objpool_monotonic()
        else:
            now = self._clock()
        entry = (now, buffer)  # allocated before the section, which must allocate nothing
        k = objpool_swap(&handle._index, -1)  # won if k >= 0: the clock may have run Python code
        if k < 0:
            raise StaleRefError(f"{ref!r} was already released")
        classes = len(self._classes)
        if k >= classes:  # oversize, k - classes bytes: never kept
            self._return_oversize(k - classes)
            return 0
        size_class = <SizeClass>self._classes[k]
        try:
            if type(buffer) is ByteBuffer:
                (<ByteBuffer>buffer)._reset()  # outside the lock: zero_on_reset may wipe 64 MiB
            else:
                buffer.reset()
        except BaseException:  # only a MemoryError can get here: the buffer is dropped
            self._drop_lent(k)
            raise
        if k < self._cached_classes:
            _put_cached(self, k, entry, now)
            return 0
        locked = lock.held or _NO_GIL  # see CLock
        if locked:
            lock.take()
        try:
            size_class.lent -= 1
            size = size_class.size
            self._lent_bytes -= size
            if self._retained + size <= self._max_retained and now < self._next_sweep:
                size_class._append(entry)
                self._retained += size
                return 0
        finally:
            if locked:
                lock.give()
        self._keep_slow(size_class, entry)  # evictions first, or a sweep is due
        return 0


cdef ThreadCache _thread_cache(SizedPoolCore pool):
    """This thread's cache in `pool` (made on its first use), found through the C
    thread-locals of `objpool._cthreadlocal`."""
    cdef void *seen = objpool_tl_seen(pool._serial)
    if seen != NULL:
        return <ThreadCache>seen
    cache = getattr(pool._local, "cache", None)
    if type(cache) is not ThreadCache:
        cache = pool._new_thread_cache()
        if type(cache) is not ThreadCache:  # keeps a tampered pool from the casts
            raise TypeError(f"a thread cache must be a ThreadCache, got {cache!r}")
    objpool_tl_remember(pool._serial, <void *>cache)  # borrowed: the pool's thread-local holds it
    return <ThreadCache>cache


cdef OwnedRef _allocate_cached(SizedPoolCore self, Py_ssize_t k):
    """`allocate` of a cached class: this thread's newest idle buffer, else the shared path
    (see `_sizedpool.SizedPool._allocate_cached`, the reference)."""
    cdef ThreadCache cache = _thread_cache(self)
    buffer = cache._pop(k)
    if buffer is None:
        size_class = self._classes[k]
        buffer = self._take_shared(size_class, k)
        if buffer is None:
            buffer = self._new_buffer((<SizeClass>size_class).size)
    return _handle(self, buffer, k)


cdef inline OwnedRef _handle(SizedPoolCore self, object buffer, Py_ssize_t k):
    """A live handle on `buffer` of class `k`, lent by this pool (both allocate paths)."""
    cdef OwnedRef ref = OwnedRef.__new__(OwnedRef)
    ref._pool = self
    ref._value = buffer
    ref._index = k
    ref._release = _release
    return ref


cdef int _put_cached(SizedPoolCore self, Py_ssize_t k, tuple entry, double now) except -1:
    """`deallocate` of a cached class (see `_sizedpool.SizedPool._put_cached`)."""
    cdef ThreadCache cache = _thread_cache(self)
    if cache._wants_credit(k):
        self._grant_credit(cache, k)
    spilled = cache._push(k, entry)
    if spilled is not None:
        self._keep_slow(self._classes[k], (entry[0], spilled))  # sweeps too, if one is due
    elif now >= self._next_sweep:
        self._sweep(entry[0], [])  # the list is freed after the lock is released
    return 0


cdef int _release(object lender, object ref) except -1:
    # OwnedRef.release() of a handle this pool lent: straight to the C entry, no lookup.
    return (<SizedPoolCore>lender)._deallocate(<OwnedRef>ref)
