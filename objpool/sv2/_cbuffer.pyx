# cython: language_level=3, auto_pickle=False, embedsignature=True, freethreading_compatible=True
"""The compiled hot path of `BufferFromSystemMemory`: `SystemMemoryCore` as an extension type.

`objpool/sv2/_buffer.py` is the reference: its `_SystemMemoryCore` defines every behaviour and
message, and this class repeats it for speed (CPython's heapq/_heapq pattern); the test suite
runs against both builds.

Without the GIL (the module declares it safe): one thread writes into a buffer, as with the
GIL; its slices own fresh memory each and may be released on any thread.
Its methods that touch object fields hold a critical section on the object (no cost with the
GIL): the generated attribute accessors hold one too, so two threads misusing one object at
once get wrong results, as in the pure build, never a field freed twice.
"""

cimport cython

from objpool.sv2._cslice cimport _make
from objpool.sv2._sizes import MIN_ALLOC as _MIN_ALLOC, NO_BYTES as _NO_BYTES, MAX_SIZE, check_size

cdef object _MAX_SIZE = MAX_SIZE
cdef Py_ssize_t _MIN = _MIN_ALLOC


cdef class SystemMemoryCore:
    """`BufferFromSystemMemory`'s hot path, compiled (see `_buffer._SystemMemoryCore`)."""

    cdef public object _borrow
    cdef public Py_ssize_t _cap
    cdef public Py_ssize_t _len
    cdef public object _mv  # the current bytearray's whole view; never handed out itself
    cdef public Py_ssize_t _start

    @cython.critical_section  # see the module docstring
    def get_writable(self, n):
        cdef Py_ssize_t pos, end
        if type(n) is not int or n < 0 or n > _MAX_SIZE:
            n = check_size(n)
        borrow = self._borrow
        if borrow is not None:
            borrow.release()
        pos = self._len
        end = pos + <Py_ssize_t>n
        if end > self._cap:
            self._grow_c(pos, end)
        self._len = end
        borrow = self._borrow = self._mv[pos:end]
        return borrow

    @cython.critical_section  # see the module docstring
    def _grow(self, Py_ssize_t pos, Py_ssize_t end):
        self._grow_c(pos, end)

    cdef _grow_c(self, Py_ssize_t pos, Py_ssize_t end):
        cdef Py_ssize_t cap = max(end, 2 * self._cap, _MIN)
        new = memoryview(bytearray(cap))
        if pos:
            new[:pos] = self._mv[:pos]
        self._mv = new
        self._cap = cap

    @cython.critical_section  # see the module docstring
    def get_data_owned(self):
        cdef Py_ssize_t n
        borrow = self._borrow
        if borrow is not None:
            borrow.release()
            self._borrow = None
        n = self._len
        self._start = 0
        if n == 0:
            return _make(memoryview(bytearray()), None, None, False)
        view = self._mv[:n]
        self._mv = _NO_BYTES
        self._cap = 0
        self._len = 0
        return _make(view, None, None, False)
