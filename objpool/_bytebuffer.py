"""`ByteBuffer`: a fixed-size `bytearray` plus a fill length, reusable through `reset()`.

Invariant: `0 <= len(self) <= capacity`, the memory is allocated once and never resized,
and after `reset()` no view this buffer handed out can read or write its bytes.

This module is the reference for both builds: where the install compiled
`objpool/_cbytebuffer.pyx`, its `ByteBuffer` replaces the one below.

`bytearray.clear()` would free the memory (and fail while views exist), so `reset()` only
sets the length to 0. That is what makes pooling it pay: the next user gets memory that
is already allocated and already mapped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NoReturn, Protocol

from typing_extensions import Buffer

from ._compiled import COMPILED
from ._errors import BufferFullError
from ._validate import as_byte_view, check_int, reject
from ._views import remember, writable_memory

__all__ = ["ByteBuffer", "SupportsReadinto", "SupportsRecvInto", "writable_memory"]


class SupportsReadinto(Protocol):
    """A binary file or stream: `io.BufferedReader`, `io.BytesIO`, `io.FileIO`..."""

    def readinto(self, buffer: memoryview, /) -> int | None: ...


class SupportsRecvInto(Protocol):
    """A socket."""

    def recv_into(self, buffer: memoryview, /) -> int: ...





class ByteBuffer:
    """Bytes whose memory survives `reset()`: the byte-buffer `Reset` implementation.

    Fill it with `write()`, `reserve()`, `readinto()`, or `writable()` then `commit()`;
    read the filled part with `view()` or `bytes(buf)`. `Pool(lambda: ByteBuffer(64 *
    1024), 32)` lends such buffers with no allocation per use.

    Views from `view()`, `reserve()` and `writable()` are released by `reset()`, so a
    stale one raises `ValueError` instead of showing the next user's bytes. A view you
    derive yourself (`v[2:10]`, `memoryview(v)`, `numpy.frombuffer(v)`) is a new export
    of the memory that `reset()` cannot reach: drop it before you release the buffer.
    """

    __slots__ = ("_base", "_data", "_dirty", "_len", "_size", "_views", "_zero")

    def __init__(self, capacity: int, *, zero_on_reset: bool = False, memory: Buffer | None = None) -> None:
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
            data = bytearray(capacity)
            self._data: object = data
            self._base = memoryview(data)
        else:
            self._data = memory
            self._base = writable_memory(memory, capacity)
        # _base is never handed out; handed views are slices of it
        self._size = capacity  # one slot read where len(self._data) was a call
        self._len = 0
        self._zero = bool(zero_on_reset)
        self._dirty = 0  # bytes from offset 0 that a user may have written
        self._views: list[memoryview] = []

    @property
    def capacity(self) -> int:
        """Bytes of memory, fixed at construction."""
        return self._size

    @property
    def free(self) -> int:
        """Bytes that can still be written."""
        return self._size - self._len

    @property
    def zero_on_reset(self) -> bool:
        """Whether `reset()` wipes the bytes."""
        return self._zero

    def __len__(self) -> int:
        """Bytes filled so far."""
        return self._len

    def _track(self, view: memoryview) -> memoryview:
        return remember(self._views, view)

    def write(self, data: Buffer) -> int:
        """Append `data` (any bytes-like object) and return its length in bytes.

        Raises:
            BufferFullError: `data` does not fit in `free`; nothing was written.
            TypeError: `data` does not support the buffer protocol; nothing was written.
        """
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

    def reserve(self, n: int) -> memoryview:
        """Grow the filled length by `n` and return a writable view of those `n` bytes.

        The bytes hold whatever was there before (zeros, unless a previous user wrote
        them and `zero_on_reset` is off): fill them all.

        Raises:
            BufferFullError: `n > free`; nothing changed.
            TypeError, ValueError: `n` is not an int >= 0.
        """
        check_int("n", n)
        start = self._len
        end = start + n
        if end > self._size:
            raise BufferFullError(f"cannot reserve {n} bytes: {self!r} has {self.free} free")
        self._len = end
        if end > self._dirty:
            self._dirty = end
        return self._track(self._base[start:end])

    def writable(self) -> memoryview:
        """A writable view of the free space; call `commit(n)` after filling `n` bytes."""
        self._dirty = self._size  # the caller may write any of it
        return self._track(self._base[self._len :])

    def commit(self, n: int) -> None:
        """Count `n` more bytes, written through `writable()`, as filled.

        Raises:
            BufferFullError: `n > free`; nothing changed.
            TypeError, ValueError: `n` is not an int >= 0.
        """
        check_int("n", n)
        if n > self._size - self._len:
            raise BufferFullError(f"cannot commit {n} bytes: {self!r} has {self.free} free")
        self._len += n
        if self._len > self._dirty:  # committed bytes are writable through view()
            self._dirty = self._len

    def readinto(self, source: SupportsReadinto | SupportsRecvInto) -> int:
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
        start = self._len
        space = self._size - start
        if not space:
            raise BufferFullError(f"cannot read: {self!r} is full")
        read = getattr(source, "readinto", None) or getattr(source, "recv_into", None)
        if read is None:
            reject(TypeError, "source", "a binary file or a socket (readinto() or recv_into())", source)
        self._dirty = self._size  # the source may write anywhere in the space it is given
        target = self._base[start:]
        try:
            n: object = read(target)
        finally:
            target.release()  # the source must not keep writing into our memory
        if n is None:
            raise BlockingIOError(f"{source!r} has no data to read now")
        if not isinstance(n, int) or isinstance(n, bool):
            raise TypeError(f"{source!r} returned {type(n).__name__} {n!r} from readinto(), not an int")
        if n.__class__ is not int:
            n = int(n)  # an int subclass: its own __le__ must not decide the check below
        if not 0 <= n <= space:
            raise OSError(f"{source!r} returned {n} from readinto(), outside 0..{space} (the space it was given)")
        self._len = start + n
        return n

    def view(self) -> memoryview:
        """A writable view of the filled bytes, released by `reset()`."""
        return self._track(self._base[: self._len])

    def reset(self) -> None:
        """Empty the buffer, keep its memory, and release every view it handed out."""
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

    def __bytes__(self) -> bytes:
        """A copy of the filled bytes."""
        with self._base[: self._len] as filled:
            return bytes(filled)

    def __repr__(self) -> str:
        return f"<ByteBuffer {self._len}/{self._size} bytes>"

    def __copy__(self) -> NoReturn:
        raise TypeError("ByteBuffer cannot be copied (the copy would share its memory); use bytes(buf)")

    def __deepcopy__(self, memo: object) -> NoReturn:
        raise TypeError("ByteBuffer cannot be copied (the copy would share its memory); use bytes(buf)")

    def __reduce_ex__(self, protocol: object) -> NoReturn:
        raise TypeError("ByteBuffer cannot be pickled; pickle bytes(buf) instead")


if COMPILED and not TYPE_CHECKING:  # type checkers read the Python class above, the reference
    from ._cbytebuffer import ByteBuffer
