# cython: language_level=3, auto_pickle=False, embedsignature=True, freethreading_compatible=True
"""The compiled hot path of `objpool.sv2._codec`: `DecoderCore` as an extension type.

`objpool/sv2/_codec.py` is the reference: its `_DecoderCore` defines every behaviour and
message, and this class repeats `feed()` and the completion of a frame for speed (CPython's
heapq/_heapq pattern); the test suite runs against both builds. `Decoder`, in Python,
subclasses whichever core the install has and keeps the other ways in and the rare paths.

`_begin` and `_take` are C functions called directly by `feed()`, with `def` doors of the same
names for the Python code of `Decoder` (`_advance()`). Everything a method written in Python
also reads or writes is a public attribute.

Without the GIL (the module declares it safe): one thread feeds a `Decoder`, as with the GIL;
its frames may be released on any thread (`Slice`'s rule).
Its methods that touch object fields hold a critical section on the object (no cost with the
GIL): the generated attribute accessors hold one too, so two threads misusing one object at
once get wrong results, as in the pure build, never a field freed twice.
"""

cimport cython

from objpool._errors import FrameError
from objpool._validate import as_byte_view
from objpool.sv2._decoding import FRAME_STEP, MissingBytes, _Phase
from objpool.sv2._framing import _HEADER, CHANNEL_ID_LEN, CHANNEL_MSG_FLAG, HEADER_LEN, Frame

cdef object _WAIT_HEADER = _Phase.HEADER
cdef object _IN_PAYLOAD = _Phase.PAYLOAD
cdef object _BROKEN = _Phase.BROKEN
cdef object _unpack_header = _HEADER.unpack_from
cdef object _frame = Frame._checked
cdef Py_ssize_t _HEADER_LEN = HEADER_LEN
cdef Py_ssize_t _FRAME_STEP = FRAME_STEP
cdef Py_ssize_t _CHANNEL_MSG_FLAG = CHANNEL_MSG_FLAG
cdef Py_ssize_t _CHANNEL_ID_LEN = CHANNEL_ID_LEN


cdef class DecoderCore:
    """`Decoder`'s hot path, compiled (see `_codec._DecoderCore`)."""

    cdef public object _buffer
    cdef public object _chunk
    cdef public object _error
    cdef public Py_ssize_t _got
    cdef public object _head
    cdef public Py_ssize_t _head_filled
    cdef public Py_ssize_t _max_payload
    cdef public Py_ssize_t _offset
    cdef public object _phase
    cdef public Py_ssize_t _raw_ext
    cdef public object _region
    cdef public Py_ssize_t _region_filled
    cdef public Py_ssize_t _region_size
    cdef public Py_ssize_t _size
    cdef public Py_ssize_t _type_len
    cdef public bint _whole

    @cython.critical_section  # see the module docstring
    def feed(self, data):
        """Copy `data` (any bytes-like object, any length) in; return the frames it completed.

        If the bytes go bad after some frames completed, those frames are returned and the
        `FrameError` is raised by the next call; the rest of `data` is dropped.

        Raises:
            FrameError: the decoder is broken (and no frame completed in this call).
            TypeError: `data` is not a bytes-like object.
        """
        cdef Py_ssize_t pos, end, take
        if self._phase is _BROKEN:
            self._raise()
        src = as_byte_view(data)
        if self._chunk is not None:
            self._drop_chunk()
        frames = []
        pos = 0
        end = len(src)
        try:
            while pos < end:
                if self._phase is _WAIT_HEADER and not self._head_filled and end - pos >= _HEADER_LEN:
                    # Fast path: the whole header is in `data`: parse it there, once, and
                    # copy it with as much of its payload as `data` holds.
                    raw_ext, type_len = _unpack_header(src, pos)
                    ev = self._begin_c(raw_ext, type_len, src, pos, end - pos - _HEADER_LEN)
                    # _begin took the frame's bytes from `data`: all of them, or _got so far.
                    pos += self._size if type(ev) is Frame else self._got
                else:
                    dst = self._want(end - pos)
                    take = min(len(dst), end - pos)
                    dst[:take] = src[pos : pos + take]
                    pos += take
                    ev = self._advance(take)
                if type(ev) is Frame:
                    frames.append(ev)
        except FrameError:
            if not frames:
                raise
        return frames

    @cython.critical_section  # see the module docstring
    def _begin(self, raw_ext, type_len, src, pos, avail):
        """Start a frame whose header is `src[pos:pos+6]`, followed there by `avail` bytes."""
        return self._begin_c(raw_ext, type_len, src, pos, avail)

    @cython.critical_section  # see the module docstring
    def _take(self):
        """Hand the complete frame over as one slice and wait for the next header."""
        return self._take_c()

    cdef object _begin_c(self, Py_ssize_t raw_ext, Py_ssize_t type_len, object src, Py_ssize_t pos, Py_ssize_t avail):
        cdef Py_ssize_t length, size, step, take
        length = type_len >> 8
        # The header rules, tested inline so that a good header costs no call (calling the
        # reference's `_check_header` on every frame measured +1,350 Ir, 10% of a 64-byte
        # frame's feed); a bad one goes to it for the message. The differential test's header
        # sweep (tests/differential_driver.py) proves both copies refuse the same headers.
        if length > self._max_payload or (raw_ext & _CHANNEL_MSG_FLAG and length < _CHANNEL_ID_LEN):
            try:
                self._check_header(raw_ext, length)  # raises, naming the rule
            except FrameError:
                if src is not self._head:  # keep the rejected header where pending counts it
                    self._head[:] = src[pos : pos + _HEADER_LEN]
                self._head_filled = _HEADER_LEN
                raise
        size = _HEADER_LEN + length
        step = _HEADER_LEN + min(length, avail if avail > _FRAME_STEP else _FRAME_STEP)
        region = self._buffer.get_writable(step)
        take = _HEADER_LEN + min(avail, step - _HEADER_LEN)
        region[:take] = src[pos : pos + take]
        self._raw_ext = raw_ext
        self._type_len = type_len
        self._size = size
        self._got = take
        self._head_filled = 0
        self._phase = _IN_PAYLOAD
        if take == size:
            region.release()
            return self._take_c()
        if take < step:
            self._region = region
            self._region_size = step
            self._region_filled = take
        else:
            region.release()  # the step is full; the next _want() opens another
        return MissingBytes(size - take)

    cdef object _take_c(self):
        cdef Py_ssize_t size, offset
        data = self._buffer.get_data_owned()
        size = self._size
        offset = self._offset
        self._offset = offset + size
        self._phase = _WAIT_HEADER
        self._got = 0  # _size stays: feed() reads it to know how much the frame took
        if data._len != size:
            n = data._len
            data.release()
            self._fail(f"the buffer handed over {n} bytes for a {size}-byte frame: something else wrote into it", offset)
        return _frame(data, self._raw_ext, self._type_len)
