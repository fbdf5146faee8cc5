# cython: language_level=3, auto_pickle=False, embedsignature=True, freethreading_compatible=True
"""`ByteBuffer` as an extension type: the compiled twin of `objpool._bytebuffer.ByteBuffer`.

`objpool/_bytebuffer.py` is the reference: every behaviour and message here repeats it, and
the test suite runs against both builds. The memory handling is the same: one `bytearray`
allocated once, a fill length, and the views handed out remembered so `reset()` can release
them.

Without the GIL (the module declares it safe): a `ByteBuffer` has one user at a time (the
holder of its pool's handle), like a `bytearray`; its object fields are set once, in
`__init__`, and its list of views changes only through the list's own (locked) methods.
"""

from objpool._errors import BufferFullError
from objpool._views import writable_memory
from objpool._validate import as_byte_view, check_int, reject
from objpool._views import remember


cdef inline object _remember(object views, object view):
    """`remember(views, view)`, with its common case inline: below 32 views it only appends.

    Saves the Python call on every handed-out view (1,400 Ir of a 60-byte PooledBuffer
    message, CPython 3.11).
    """
    if type(views) is list and len(<list>views) < 32:
        (<list>views).append(view)
        return view
    return remember(views, view)


cdef inline check_count(object n):
    """`check_int("n", n)`, with its common case inline: an int >= 0 passes at once."""
    if type(n) is not int or n < 0:
        check_int("n", n)


cdef class ByteBuffer:
    """Bytes whose memory survives `reset()`: the byte-buffer `Reset` implementation.

    Fill it with `write()`, `reserve()`, `readinto()`, or `writable()` then `commit()`;
    read the filled part with `view()` or `bytes(buf)`. `Pool(lambda: ByteBuffer(64 *
    1024), 32)` lends such buffers with no allocation per use.

    Views from `view()`, `reserve()` and `writable()` are released by `reset()`, so a
    stale one raises `ValueError` instead of showing the next user's bytes. A view you
    derive yourself (`v[2:10]`, `memoryview(v)`, `numpy.frombuffer(v)`) is a new export
    of the memory that `reset()` cannot reach: drop it before you release the buffer.
    """

    # Fields (declared in _cbytebuffer.pxd): _data; _base, its memoryview, never handed out
    # (handed views are slices of it); _size; _len; _dirty, the bytes from offset 0 a user
    # may have written; _zero; _views.

    def __init__(self, capacity, *, zero_on_reset=False, memory=None):
        """Allocate `capacity` bytes once, or sit on `memory` (exactly `capacity` bytes).

        `zero_on_reset=True` wipes every byte a user could have written on each
        `reset()`, so one user's data never reaches the next. `memory` is any writable
        buffer, an `mmap` (pinned, shared) for instance; the buffer keeps it referenced and
        exported (so it cannot be resized or closed) for as long as the buffer lives, and
        starts empty whatever the memory holds.

        Raises:
            TypeError: `capacity` is not an int, or `memory` not a writable buffer.
            ValueError: `capacity < 0`, or `memory` is not `capacity` contiguous bytes.
        """
        capacity = check_int("capacity", capacity)
        if memory is None:
            self._data = bytearray(capacity)
            self._base = memoryview(self._data)
        else:
            self._data = memory
            self._base = writable_memory(memory, capacity)
        self._size = capacity
        self._len = 0
        self._zero = bool(zero_on_reset)
        self._dirty = 0
        self._views = []

    @property
    def capacity(self):
        """Bytes of memory, fixed at construction."""
        return self._size

    @property
    def free(self):
        """Bytes that can still be written."""
        return self._size - self._len

    @property
    def zero_on_reset(self):
        """Whether `reset()` wipes the bytes."""
        return self._zero

    def __len__(self):
        """Bytes filled so far."""
        return self._len

    def write(self, data):
        """Append `data` (any bytes-like object) and return its length in bytes.

        Raises:
            BufferFullError: `data` does not fit in `free`; nothing was written.
            TypeError: `data` does not support the buffer protocol; nothing was written.
        """
        cdef Py_ssize_t n, start
        with as_byte_view(data) as src:
            n = src.nbytes
            start = self._len
            if n > self._size - start:
                raise BufferFullError(f"cannot write {n} bytes: {self!r} has {self.free} free")
            self._base[start : start + n] = src
        self._len = start + n
        if self._len > self._dirty:
            self._dirty = self._len
        return n

    def reserve(self, n):
        """Grow the filled length by `n` and return a writable view of those `n` bytes.

        The bytes hold whatever was there before (zeros, unless a previous user wrote
        them and `zero_on_reset` is off): fill them all.

        Raises:
            BufferFullError: `n > free`; nothing changed.
            TypeError, ValueError: `n` is not an int >= 0.
        """
        cdef Py_ssize_t start, end
        check_count(n)
        start = self._len
        if n > self._size - start:
            raise BufferFullError(f"cannot reserve {n} bytes: {self!r} has {self.free} free")
        end = start + <Py_ssize_t>n
        self._len = end
        if end > self._dirty:
            self._dirty = end
        return _remember(self._views, self._base[start:end])

    def writable(self):
        """A writable view of the free space; call `commit(n)` after filling `n` bytes."""
        return self._writable()

    cdef object _writable(self):
        self._dirty = self._size  # the caller may write any of it
        return _remember(self._views, self._base[self._len :])

    def commit(self, n):
        """Count `n` more bytes, written through `writable()`, as filled.

        Raises:
            BufferFullError: `n > free`; nothing changed.
            TypeError, ValueError: `n` is not an int >= 0.
        """
        check_count(n)
        if n > self._size - self._len:  # compared as Python ints: any int, however large
            self._refuse_commit(n)
        self._commit(n)

    cdef int _refuse_commit(self, object n) except -1:
        raise BufferFullError(f"cannot commit {n} bytes: {self!r} has {self.free} free")

    cdef int _commit(self, Py_ssize_t n) except -1:
        """`commit(n)` for an `n >= 0` already checked, callable from C (PooledBuffer's twin)."""
        if n > self._size - self._len:
            self._refuse_commit(n)
        self._len += n
        if self._len > self._dirty:  # committed bytes are writable through view()
            self._dirty = self._len
        return 0

    def readinto(self, source):
        """Read once from a binary file or a socket into the free space.

        Returns the number of bytes read: 0 means end of file (or a closed socket).

        Raises:
            BufferFullError: there is no free space to read into.
            BlockingIOError: a non-blocking source had no data (`readinto` gave None).
            TypeError: `source` has neither `readinto()` nor `recv_into()`, or returned a
                count that is not an int; the length is unchanged.
            OSError: `source` returned a count outside `0..free` (as `io.BufferedReader`
                reports a broken raw stream); the length is unchanged.
        """
        cdef Py_ssize_t start = self._len
        cdef Py_ssize_t space = self._size - start
        if not space:
            raise BufferFullError(f"cannot read: {self!r} is full")
        read = getattr(source, "readinto", None) or getattr(source, "recv_into", None)
        if read is None:
            reject(TypeError, "source", "a binary file or a socket (readinto() or recv_into())", source)
        self._dirty = self._size  # the source may write anywhere in the space it is given
        target = self._base[start:]
        try:
            n = read(target)
        finally:
            target.release()  # the source must not keep writing into our memory
        if n is None:
            raise BlockingIOError(f"{source!r} has no data to read now")
        if type(n) is not int:
            if isinstance(n, bool) or not isinstance(n, int):
                raise TypeError(f"{source!r} returned {type(n).__name__} {n!r} from readinto(), not an int")
            n = int(n)
        if not 0 <= n <= space:
            raise OSError(f"{source!r} returned {n} from readinto(), outside 0..{space} (the space it was given)")
        self._len = start + <Py_ssize_t>n
        return n

    def view(self):
        """A writable view of the filled bytes, released by `reset()`."""
        return _remember(self._views, self._base[: self._len])

    def reset(self):
        """Empty the buffer, keep its memory, and release every view it handed out."""
        self._reset()

    cdef int _reset(self) except -1:
        views = self._views
        if views:  # most resets follow write()/readinto() alone: no views to release
            for view in views:
                try:
                    view.release()
                except BufferError:  # someone exported this very view: it stays, as documented
                    pass
            views.clear()
        if self._zero and self._dirty:
            self._base[: self._dirty] = bytes(self._dirty)
        self._dirty = 0
        self._len = 0
        return 0

    def __bytes__(self):
        """A copy of the filled bytes."""
        with self._base[: self._len] as filled:
            return bytes(filled)

    def __repr__(self):
        return f"<ByteBuffer {self._len}/{self._size} bytes>"

    def __copy__(self):
        raise TypeError("ByteBuffer cannot be copied (the copy would share its memory); use bytes(buf)")

    def __deepcopy__(self, memo):
        raise TypeError("ByteBuffer cannot be copied (the copy would share its memory); use bytes(buf)")

    def __reduce_ex__(self, protocol):
        raise TypeError("ByteBuffer cannot be pickled; pickle bytes(buf) instead")
