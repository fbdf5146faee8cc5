# cython: language_level=3, auto_pickle=False, embedsignature=True, freethreading_compatible=True
"""The compiled hot path of `objpool.sv2._buffer_pool`: `BufferPoolCore` as an extension type.

`objpool/sv2/_buffer_pool.py` is the reference: its `_BufferPoolCore` defines every behaviour
and message, and this class repeats `get_writable` and `get_data_owned` for speed (CPython's
heapq/_heapq pattern). The test suite runs against both builds, and compares both with a plain
port of upstream on random operation sequences. `BufferPool`, in Python, subclasses whichever
core the install has and keeps the ported algorithm's slow paths.

The slot map arithmetic is done on C integers; everything a slow path written in Python also
reads or writes is a public attribute. Containers are typed `object`, so that a
`BufferPool.__new__(BufferPool)` never initialised raises instead of crashing.

Without the GIL (the module declares it safe): one thread uses a `BufferPool`, as with the
GIL; other threads only release its slices, which appends to `_released` (a list, whose
methods lock themselves) and never touches the pool's own view (see
`objpool._views.handoff_exporter`).
Its methods that touch object fields hold a critical section on the object (no cost with the
GIL): the generated attribute accessors hold one too, so two threads misusing one object at
once get wrong results, as in the pure build, never a field freed twice.
"""

cimport cython

from objpool.sv2._cslice cimport _make
from objpool.sv2._sizes import MAX_SIZE, check_size
from objpool._views import handoff_view
from objpool.sv2._modes import POOL_CAPACITY, PoolMode

cdef object _BACK = PoolMode.BACK
cdef object _ALLOC = PoolMode.ALLOC
cdef Py_ssize_t _SLOTS = POOL_CAPACITY
cdef object _MAX_SIZE = MAX_SIZE


cdef inline Py_ssize_t _mask(Py_ssize_t index) except -1:
    """Slot `index`'s bit in the map (slot 1 is the high bit); 0 for index 0, as `_MASK`."""
    if index < 0 or index > _SLOTS:
        raise IndexError("tuple index out of range")  # what the reference's _MASK[index] says
    if index == 0:
        return 0
    return 0x80 >> (index - 1)


cdef class BufferPoolCore:
    """`BufferPool`'s hot path, compiled (see `_buffer_pool._BufferPoolCore`)."""

    cdef public Py_ssize_t _back_len
    cdef public Py_ssize_t _back_start
    cdef public Py_ssize_t _bits
    cdef public object _borrow
    cdef public Py_ssize_t _capacity
    cdef public Py_ssize_t _f_back_start
    cdef public Py_ssize_t _f_capacity
    cdef public Py_ssize_t _f_len
    cdef public Py_ssize_t _ilen
    cdef public Py_ssize_t _limit
    cdef public object _mode
    cdef public object _mv
    cdef public object _exporter  # see objpool._views.handoff_exporter
    cdef public Py_ssize_t _next_front_capacity
    cdef public object _on_release
    cdef public bint _pristine
    cdef public Py_ssize_t _raw_end
    cdef public Py_ssize_t _raw_offset
    cdef public object _released
    cdef public object _slot_len
    cdef public object _slot_off
    cdef public Py_ssize_t _start
    cdef public object _sys

    @cython.critical_section  # see the module docstring
    def get_writable(self, n):
        cdef Py_ssize_t size, off, end, bits
        if type(n) is not int or n < 0 or n > _MAX_SIZE:
            n = check_size(n)
        size = n
        borrow = self._borrow
        if borrow is not None:
            borrow.release()
        # Pristine: as just reset, nothing alive (so the map is 0 and a reset is a no-op).
        if not self._pristine:
            released = self._released
            if released:  # _drain(), inlined
                bits = self._bits
                while released:
                    bits &= 0xFF ^ _mask(released.pop())
                self._bits = bits
            # B3: reset whenever nothing is alive (upstream also wants PoolBack.len != 0).
            if not self._bits:
                if self._mode is _BACK and self._raw_end == self._raw_offset:
                    # _reset() + _sync(), inlined for the common case: nothing pending
                    self._ilen = self._raw_offset = self._raw_end = 0
                    self._back_start = self._back_len = 0
                    self._limit = self._capacity
                    self._pristine = True
                else:
                    self._reset()
                    self._sync()
        if self._mode is _ALLOC and self._sys._len:
            # Mid-message in system memory: keep writing there (see the reference).
            borrow = self._borrow = self._sys.get_writable(n)
            return borrow
        off = self._raw_end
        end = off + size
        if end <= self._limit:  # fast path: PoolBack::get_writable's first branch
            self._raw_end = end
            borrow = self._borrow = self._mv[off:end]
            return borrow
        # The map is current: drained above, or pristine (nothing alive, nothing to drain).
        borrow = self._borrow = self._get_writable_(n, self._bits, False)
        self._sync()
        return borrow

    @cython.critical_section  # see the module docstring
    def get_data_owned(self):
        cdef Py_ssize_t off, end, n, ilen, mask
        borrow = self._borrow
        if borrow is not None:
            borrow.release()
            self._borrow = None
        if self._released:
            self._drain()
        self._start = 0  # upstream keeps it (#2385)
        mode = self._mode
        if mode is _ALLOC:
            return self._sys.get_data_owned()
        off = self._raw_offset
        end = self._raw_end
        n = end - off
        exporter = self._exporter  # the slice's view, in pool memory (0 bytes: no slot, below)
        view = self._mv[off:end] if exporter is None else handoff_view(exporter, off, end)
        if n:
            ilen = self._ilen
            self._slot_off[ilen] = off  # IndexError past 8: upstream panics the same way
            self._slot_len[ilen] = n
            ilen += 1
            self._ilen = ilen
            mask = _mask(ilen)
            if self._bits & mask:
                raise RuntimeError(f"objpool bug: slot {ilen} handed out while alive")
            self._bits |= mask
            self._raw_offset = end
            self._pristine = False
            s = _make(view, ilen, self._on_release[ilen], True)
        else:  # upstream: index 59, pool-backed, no slot
            s = _make(view, None, None, True)
        if mode is _BACK:
            self._back_len = self._ilen - self._back_start
            if self._ilen >= _SLOTS:  # == back_len + back_start
                self._limit = -1
        else:
            self._f_len = self._ilen
        return s
