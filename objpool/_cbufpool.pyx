# cython: language_level=3, auto_pickle=False, embedsignature=True, freethreading_compatible=True
"""The compiled hot path of `objpool._bufpool`: `BufPoolCore` and `BufAllocation` as extension types.

`objpool/_bufpool.py` is the reference: its `_BufPoolCore` and `BufAllocation` define every
behaviour and message, and this module repeats them for speed (CPython's heapq/_heapq
pattern). The test suite runs against both builds. Rare paths (waiting, leaks, stats) stay in
Python, in `BufPool`, which subclasses whichever core the install has.

Invariant: an allocation's `_live` is its buffer count while it is live and 0 once released.
It is taken by an atomic swap (`objpool._catomic`: a plain read and write under the GIL), so
of two threads releasing one allocation exactly one wins, as `list.pop()` on the claim list
does in `_bufpool.py`. The budget, the counters and the idle blocks change under the pool's
lock, as there, with or without the GIL. With thread caches on, a `BlockCache`'s counts have
one writer, its thread, and its list is taken from by other threads only through `pop()`.
"""

cimport cython

from objpool._catomic cimport objpool_add_fetch, objpool_bump, objpool_load, objpool_swap
from objpool._cclock cimport c_clock_agrees, objpool_monotonic
from objpool._cthreadlocal cimport find_cache, objpool_tl_seen

import time

from objpool._errors import StaleRefError
from objpool._pool import CACHE_DEPTH
from objpool._threadnumber import thread_number
from objpool._views import release_all, remember
from objpool._validate import check_seconds
from objpool._waiting import NO_WAIT

cdef object _NO_WAIT = NO_WAIT
cdef object _monotonic = time.monotonic  # the pure build's clock for idle blocks (trim)
cdef bint _C_CLOCK = c_clock_agrees()  # then read it in C, with no Python call
cdef str _RELEASED = "this BufAllocation was released; its buffers belong to the pool again"
cdef Py_ssize_t _CACHE_DEPTH = CACHE_DEPTH
# The last serial given to a pool (the first is 1: the thread-locals start at 0, no pool).
cdef Py_ssize_t _serials = 0


@cython.final
cdef class BufAllocation:
    """`n` contiguous buffers of one `BufPool`, lent until `release()`.

    `len(a)` is `n`; iterating gives `n` writable memoryviews of `buffer_size` bytes each, in
    order, and `view` the whole run. `release()` returns the budget and releases every view
    handed out; a second release raises `StaleRefError`, as does any use after it. Use it as
    a context manager (`with pool.allocate(4) as a:`) to release at the end of the block. An
    allocation garbage-collected while live is a leak: it warns (`ResourceWarning`) and its
    budget comes back, but its memory is never reused (it may still be referenced).
    """

    cdef BufPoolCore _pool  # None: made outside a pool (refused by __init__)
    cdef bytearray _block
    cdef Py_ssize_t _n
    cdef Py_ssize_t _live  # _n while live, 0 once released
    cdef list _views  # views handed out, released with the allocation (None: none yet)

    def __init__(self):
        raise TypeError("BufAllocation is made by BufPool.allocate() and BufPool.acquire() only")

    @property
    def alive(self):
        """False once released."""
        return objpool_load(&self._live) > 0

    @property
    def pool(self):
        """The `BufPool` that lent it."""
        return self._pool

    @property
    def view(self):
        """A writable view of all `n * buffer_size` bytes, released with the allocation."""
        if objpool_load(&self._live) <= 0:
            raise StaleRefError(_RELEASED)
        whole = memoryview(self._block)[: self._n * self._pool._buffer_size]
        if self._views is None:
            self._views = [whole]
            return whole
        return remember(self._views, whole)

    def __len__(self):
        return self._n

    def __iter__(self):
        whole = self.view
        size = self._pool._buffer_size
        for start in range(0, self._n * size, size):
            yield remember(self._views, whole[start : start + size])

    def release(self):
        """Return the buffers' budget to the pool (first come, first served to its waiters).

        Raises:
            StaleRefError: the allocation was already released.
            BufferError: a view of the buffers is still exported; release that first.
        """
        self._release()

    cdef int _release(self) except -1:
        cdef Py_ssize_t n
        if objpool_load(&self._live) <= 0:
            raise StaleRefError(f"{self!r} was already released")
        if self._views is not None:
            release_all(self._views)  # BufferError: nothing changed, the allocation stays live
        n = objpool_swap(&self._live, 0)  # won if n > 0: another thread may have, meanwhile
        if n <= 0:
            raise StaleRefError(f"{self!r} was already released")
        self._pool._give_back_c(n, self._block)
        return 0

    def __enter__(self):
        if objpool_load(&self._live) <= 0:
            raise StaleRefError(_RELEASED)
        return self

    def __exit__(self, exc_type, exc, traceback):
        self._release()

    async def __aenter__(self):
        return self.__enter__()

    async def __aexit__(self, exc_type, exc, traceback):
        self._release()

    def __del__(self):
        cdef Py_ssize_t n
        if self._pool is None:
            return
        n = objpool_swap(&self._live, 0)  # won if n > 0, as the claim list's pop() wins in _bufpool.py
        if n <= 0:
            return
        self._pool._on_leak(n, self)

    def __copy__(self):
        raise TypeError("BufAllocation cannot be copied: two owners would release one budget")

    def __deepcopy__(self, memo):
        raise TypeError("BufAllocation cannot be copied: two owners would release one budget")

    def __reduce_ex__(self, protocol):
        raise TypeError("BufAllocation cannot be pickled: take bytes(a.view) instead")

    def __repr__(self):
        if self._pool is None:  # built with __new__, never lent: no pool to describe
            return "<BufAllocation not made by a pool>"
        state = "live" if objpool_load(&self._live) > 0 else "released"
        return f"<BufAllocation {state} {self._n} x {self._pool._buffer_size} bytes>"


cdef BufAllocation _make(BufPoolCore pool, bytearray block, Py_ssize_t n):
    cdef BufAllocation allocation = BufAllocation.__new__(BufAllocation)
    allocation._pool = pool
    allocation._block = block
    allocation._n = n
    allocation._live = n
    return allocation


@cython.final
cdef class BlockCache:
    """One thread's released blocks in front of a `BufPool`'s budget (see `_bufpool.BlockCache`)."""

    cdef readonly object pool  # whose budget the kept blocks hold
    cdef readonly list kept  # (returned at, block, buffers charged), newest last
    cdef Py_ssize_t _allocations  # one writer: the cache's thread
    cdef Py_ssize_t _releases  # one writer: the cache's thread

    def __init__(self, pool):
        self.pool = pool
        self.kept = []

    @property
    def allocations(self):
        """Lent from `kept` by this cache's thread."""
        return objpool_load(&self._allocations)

    @property
    def releases(self):
        """Kept by this cache's thread."""
        return objpool_load(&self._releases)


cdef inline BlockCache _cache_of(BufPoolCore pool, bint number_thread):
    """This thread's cache in `pool`, or None if it has none yet. A thread without a number
    gets one if `number_thread` (Python code: never once a block is in transit)."""
    cdef void *seen = objpool_tl_seen(pool._serial)
    if seen != NULL:
        return <BlockCache>seen
    return _find_cache(pool, number_thread)


cdef BlockCache _find_cache(BufPoolCore pool, bint number_thread):
    """`_cache_of` when the thread-locals do not have it: from the pool's list, remembered."""
    return <BlockCache>find_cache(pool._caches, pool._serial, BlockCache, number_thread, thread_number)


cdef inline Py_ssize_t _size_class(Py_ssize_t n):
    """The class of a request of `n` buffers: blocks of 2**k buffers, the least >= n."""
    cdef Py_ssize_t k = 0
    while (<Py_ssize_t>1 << k) < n:
        k += 1
    return k


cdef inline BufAllocation _lend_cached(BufPoolCore pool, Py_ssize_t n):
    """An allocation of `n` buffers from a block this thread kept for them, or None (see
    `_bufpool._BufPoolCore._lend_cached`). From the pop to the return no Python code runs."""
    cdef BlockCache cache = _cache_of(pool, True)
    cdef list kept
    cdef Py_ssize_t i, size, same_class = -1
    cdef Py_ssize_t k = _size_class(n)
    cdef tuple entry
    if cache is None:
        cache = pool._new_cache()
    kept = cache.kept
    try:
        i = len(kept)
        while i:  # newest first
            i -= 1
            entry = <tuple>kept[i]
            size = <Py_ssize_t>entry[2]
            if size == n:
                entry = <tuple>kept.pop(i)  # IndexError: another thread took it meanwhile
                objpool_bump(&cache._allocations)
                return _make(pool, <bytearray>entry[1], n)
            if same_class < 0 and _size_class(size) == k:
                same_class = i
        if same_class >= 0:  # to the shared idle blocks, where the shared path reuses it
            entry = <tuple>kept.pop(same_class)
            pool._return_kept(entry[2], (entry[0], entry[1]))
    except IndexError:
        pass
    return None


def _allocation(BufPoolCore pool, bytearray block, list claim not None):
    """A live `BufAllocation` over `block` of the `n` buffers in the one-element `claim` (see
    `_bufpool._allocation`): popped and made in C, with no Python code between."""
    return _make(pool, block, claim.pop())


cdef class BufPoolCore:
    """`BufPool`'s hot path, compiled (see `_bufpool._BufPoolCore`)."""

    cdef public Py_ssize_t _allocations
    cdef public bint _blocked  # closed, or someone waits: kept by objpool._waiting.Line
    cdef public Py_ssize_t _budget  # in buffers
    cdef public Py_ssize_t _buffer_size
    cdef public list _caches  # by thread number; None: thread caches off
    cdef Py_ssize_t _serial  # unique for the process's life: the thread-locals' key
    cdef public bint _closed
    cdef public list _evicted  # idle blocks given up to make room, freed after the section
    cdef public Py_ssize_t _high_water
    cdef public Py_ssize_t _hits  # allocations that reused an idle block
    cdef public list _idle  # by size class: [k] holds (returned at, block of 2**k buffers)
    cdef public Py_ssize_t _idle_buffers  # _in_use + _idle_buffers <= _budget, always
    cdef public Py_ssize_t _in_use
    cdef public Py_ssize_t _lent  # budget charges outstanding
    cdef public object _line
    cdef public object _lock  # the line's lock too

    def __cinit__(self):
        global _serials
        self._serial = objpool_add_fetch(&_serials, 1)

    def allocate(self, n, timeout=_NO_WAIT):
        """`n` contiguous buffers; with a `timeout`, wait up to that long for the budget.

        Raises:
            PoolExhaustedError: too little budget is free (for the whole `timeout`), or
                others are waiting ahead.
            PoolClosedError: `close()` was called (before or during the wait).
            ValueError: `n < 1`, or `n` buffers exceed the whole budget.
            TypeError: `n` is not an int, or `timeout` not a number or None.
        """
        cdef Py_ssize_t count, k
        cdef bint charged = False
        cdef list idle
        cdef object block = None
        cdef BufAllocation cached
        if type(n) is not int or n < 1 or n > self._budget:
            n = self._check_n(n)  # raises, naming the rule
        count = n
        if timeout is not _NO_WAIT:  # the default skips the check: one identity test
            timeout = check_seconds("timeout", timeout, none_ok=True)
        if self._caches is not None and not self._blocked:  # this thread's cache first
            cached = _lend_cached(self, count)
            if cached is not None:
                return cached
        k = _size_class(count)  # blocks of 2**k buffers
        lock = self._lock
        lock.acquire()
        try:
            if not self._blocked and self._in_use + count <= self._budget:
                self._in_use += count
                if self._in_use > self._high_water:
                    self._high_water = self._in_use
                self._allocations += 1
                self._lent += 1
                idle = <list>self._idle[k]
                if idle:
                    block = idle.pop()[1]
                    self._idle_buffers -= (<Py_ssize_t>1) << k
                    self._hits += 1
                elif self._in_use + self._idle_buffers > self._budget:
                    self._evict_c()  # idle memory counts against the budget: make room
                charged = True
        finally:
            lock.release()
        if not charged:
            return self._allocate_slow(n, timeout)
        if self._evicted:
            self._free_evicted()
        # Budget charged; the allocation (and any new memory) is made after the section, which
        # must allocate nothing, and in C, so no interrupt can land before it holds the budget.
        if block is None:
            block = bytearray(self._buffer_size << k)
        return _make(self, block, count)

    def _give_back(self, Py_ssize_t n, block):
        """Return `n` buffers' budget (and their block for reuse) and serve the line."""
        self._give_back_c(n, block)

    cdef int _give_back_c(self, Py_ssize_t n, object block) except -1:
        cdef Py_ssize_t k, size_class
        cdef BlockCache cache
        if self._caches is not None and block is not None and not self._blocked:
            # Into this thread's cache while the budget keeps 4 times as much for the others
            # (see _bufpool.py).
            cache = _cache_of(self, False)
            if cache is not None and len(cache.kept) < _CACHE_DEPTH and self._budget - self._in_use >= _CACHE_DEPTH * n:
                cache.kept.append((objpool_monotonic() if _C_CLOCK else _monotonic(), block, n))
                objpool_bump(&cache._releases)
                if self._blocked:  # kept first, then tested: a waiter that came meanwhile reclaims it
                    self._serve()
                return 0
        entry = None if block is None else (objpool_monotonic() if _C_CLOCK else _monotonic(), block)  # before the section
        lock = self._lock
        lock.acquire()
        try:
            self._in_use -= n
            if n:
                self._lent -= 1
            if entry is not None and not self._closed:  # a closed pool keeps nothing
                size_class = len(block) // self._buffer_size
                if self._in_use + self._idle_buffers + size_class <= self._budget:  # else freed
                    k = _size_class(size_class)
                    (<list>self._idle[k]).append(entry)
                    self._idle_buffers += size_class
        finally:
            lock.release()
        if self._blocked:  # given back first, then tested: see objpool._waiting
            self._serve()
        return 0

    cdef int _evict_c(self) except -1:
        """Under the lock: see `_bufpool.BufPool._evict`."""
        cdef Py_ssize_t k = len(self._idle)
        cdef list entries
        while k and self._in_use + self._idle_buffers > self._budget:
            k -= 1
            entries = <list>self._idle[k]
            while entries and self._in_use + self._idle_buffers > self._budget:
                self._evicted.append(entries.pop(0)[1])
                self._idle_buffers -= (<Py_ssize_t>1) << k
        return 0
