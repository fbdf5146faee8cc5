# cython: language_level=3, auto_pickle=False, embedsignature=True, freethreading_compatible=True
"""The compiled hot path of `PooledBuffer`: `PooledBufferCore` as an extension type.

`objpool/sv2/_pooled_buffer.py` is the reference: its `_PooledBufferCore` defines every
behaviour and message, and this class repeats it for speed (CPython's heapq/_heapq pattern);
the test suite runs against both builds. `PooledBuffer`, in Python, subclasses whichever core
the install has and keeps the rare paths (system-memory fallback, giving a buffer back).

Without the GIL (the module declares it safe): one thread writes into a `PooledBuffer`, as
with the GIL; its slices may be released on any thread, which releases their `ByteBuffer`
handles through the compiled `Pool` core (see `objpool._cpool`).
Its methods that touch object fields hold a critical section on the object (no cost with the
GIL): the generated attribute accessors hold one too, so two threads misusing one object at
once get wrong results, as in the pure build, never a field freed twice.
"""

cimport cython

from objpool._cbytebuffer cimport ByteBuffer
from objpool._cpool cimport OwnedRef, PoolCore
from objpool.sv2._cslice cimport _make
from objpool._errors import PoolClosedError, PoolExhaustedError
from objpool.sv2._sizes import MAX_SIZE, check_size

cdef object _MAX_SIZE = MAX_SIZE


cdef class PooledBufferCore:
    """`PooledBuffer`'s hot path, compiled (see `_pooled_buffer._PooledBufferCore`)."""

    cdef public object _borrow
    cdef public Py_ssize_t _free
    cdef public bint _in_sys
    cdef public Py_ssize_t _len
    cdef public object _pool
    cdef public Py_ssize_t _pooled
    cdef public object _ref
    cdef public Py_ssize_t _start
    cdef public object _sys
    cdef public Py_ssize_t _system
    cdef public object _timeout
    cdef public object _wv

    @cython.critical_section  # see the module docstring
    def get_writable(self, n):
        cdef Py_ssize_t pos, end
        if type(n) is not int or n < 0 or n > _MAX_SIZE:
            n = check_size(n)
        borrow = self._borrow
        if borrow is not None:
            borrow.release()
        if not self._in_sys:
            wv = self._wv
            if wv is None:
                wv = self._take_c()
            pos = self._len
            end = pos + <Py_ssize_t>n
            if wv is not None and end <= self._free:
                self._len = end
                borrow = self._borrow = wv[pos:end]
                return borrow
            self._move_to_system_memory()
        borrow = self._borrow = self._sys.get_writable(n)
        return borrow

    @cython.critical_section  # see the module docstring
    def _take(self):
        return self._take_c()

    cdef object _take_c(self):
        # The pool is a Pool (PooledBuffer checks) and its core is compiled, so this lends
        # through the core's C entry, as allocate() would, without a Python call; the
        # same for the ByteBuffer's writable() and commit(): 9,266 -> 7,906 Ir per
        # 8,000-byte message (CPython 3.11).
        pool = self._pool
        try:
            if isinstance(pool, PoolCore):
                ref = (<PoolCore>pool)._allocate(self._timeout)
            else:
                ref = pool.allocate(self._timeout)
        except (PoolExhaustedError, PoolClosedError):
            return None
        return self._hold_c(ref)

    @cython.critical_section  # see the module docstring
    def _hold(self, ref):
        return self._hold_c(ref)

    cdef object _hold_c(self, object ref):
        self._ref = ref
        value = (<OwnedRef>ref)._value if type(ref) is OwnedRef else ref.value
        if type(value) is ByteBuffer:
            wv = (<ByteBuffer>value)._writable()
        else:
            wv = value.writable()
        self._wv = wv
        self._free = len(wv)
        return wv

    @cython.critical_section  # see the module docstring
    def get_data_owned(self):
        cdef Py_ssize_t n
        borrow = self._borrow
        if borrow is not None:
            borrow.release()
            self._borrow = None
        self._start = 0
        if self._in_sys:
            self._in_sys = False
            s = self._sys.get_data_owned()
            if len(s):
                self._system += 1
            return s
        wv = self._wv
        ref = self._ref
        n = self._len
        if wv is None or ref is None or not n:
            self._give_back()  # hold no ByteBuffer between messages
            return _make(memoryview(bytearray()), None, None, False)
        value = ref.value
        if type(value) is ByteBuffer:
            (<ByteBuffer>value)._commit(n)
        else:
            value.commit(n)
        view = wv[:n]
        wv.release()
        self._ref = None
        self._wv = None
        self._len = 0
        self._pooled += 1
        return _make(view, None, ref.release, True)
