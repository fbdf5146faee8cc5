# The compiled ByteBuffer's C interface, cimported by PooledBuffer's and SizedPool's twins.

cdef class ByteBuffer:
    cdef object _data  # a bytearray of our own, or the memory given to __init__
    cdef object _base  # memoryview of _data: never handed out; handed views are slices
    cdef Py_ssize_t _size
    cdef Py_ssize_t _len
    cdef Py_ssize_t _dirty  # bytes from offset 0 that a user may have written
    cdef bint _zero
    cdef list _views

    cdef object _writable(self)
    cdef int _refuse_commit(self, object n) except -1
    cdef int _commit(self, Py_ssize_t n) except -1
    cdef int _reset(self) except -1
