# The compiled Pool core's C interface, cimported by PooledBuffer's twin so that it lends and
# takes back ByteBuffers without a Python call.

# How a handle lent by another lender than a PoolCore goes home: `lender` takes `ref` back.
ctypedef int (*ReleaseFn)(object lender, object ref) except -1


cdef class OwnedRef:
    cdef object _pool  # None: made outside a pool, inert
    cdef object _value
    cdef Py_ssize_t _index  # the slot while live, -1 once released
    cdef ReleaseFn _release  # NULL: lent by a PoolCore, which takes it back in C


cdef class SlotCache:
    cdef readonly object pool  # the PoolCore whose free slots these are
    cdef readonly list free
    cdef Py_ssize_t _allocations  # one writer: the cache's thread


cdef class PoolCore:
    cdef readonly list _caches  # by thread number; None: thread caches off
    cdef Py_ssize_t _cache_depth  # the most free slots a thread's cache keeps
    cdef Py_ssize_t _serial  # unique for the process's life: the thread-locals' key
    cdef public bint _closed
    cdef readonly list _free
    cdef readonly list _handles  # per slot: its parked dead handle, or None
    cdef readonly list _items
    cdef public object _reset
    cdef Py_ssize_t _allocations
    cdef Py_ssize_t _most_out  # the most slots ever out of the free stack at once
    cdef public bint _blocked  # closed, or someone waits: kept by objpool._waiting.Line

    cdef OwnedRef _allocate(self, object timeout)
    cdef int _deallocate(self, OwnedRef handle) except -1
