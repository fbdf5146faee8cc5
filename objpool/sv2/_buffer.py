"""The Sv2 `Buffer` protocol and `BufferFromSystemMemory`, the buffer every other is measured by.

Invariant: a buffer's pending bytes (written with `get_writable`, not yet taken with
`get_data_owned`) are one contiguous run, and a view it returned stays valid only until the
next `get_writable` / `get_data_by_ref` / `get_data_owned` call on it, which releases that view
(the Python form of a Rust borrow ending).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, Protocol

# PEP 688's byte-input type, under another name: this module defines the Sv2 `Buffer`.
from typing_extensions import Buffer as ReadableBuffer

from .._compiled import COMPILED
from .._validate import as_byte_view, reject
from ._sizes import MAX_SIZE, MIN_ALLOC, NO_BYTES, check_capacity, check_size
from ._slice import Slice

__all__ = ["Buffer", "BufferFromSystemMemory", "check_buffer"]

_BUFFER_METHODS: Final = ("get_writable", "get_data_owned", "get_data_by_ref", "__len__")


def check_buffer(buffer: object, name: str = "buffer") -> None:
    """Raise `TypeError` unless `buffer` has the Sv2 `Buffer` methods a decoder calls."""
    kind = type(buffer)
    if not all(callable(getattr(kind, method, None)) for method in _BUFFER_METHODS):
        reject(TypeError, name, "an Sv2 Buffer (get_writable, get_data_owned, get_data_by_ref, __len__)", buffer)


class Buffer(Protocol):
    """The Sv2 `Buffer` trait: fill pending bytes in place, then take them as one `Slice`.

    Named `Buffer` as upstream, so ported code reads the same; it is not
    `collections.abc.Buffer` (PEP 688), which byte inputs here are typed with.

    A buffer is used by one thread at a time (its connection's); the slices it hands out may
    go to any thread. Implementations subclass this Protocol explicitly to inherit `write`
    and `write_all`.
    """

    __slots__ = ()

    def get_writable(self, n: int) -> memoryview:
        """Append `n` bytes to the pending data and return them, to be filled completely.

        The view is valid until the next call on the buffer, which releases it.

        Raises:
            TypeError: `n` is not an int (bools are refused too).
            ValueError: `n` is negative or larger than `MAX_SIZE`; nothing changed.
        """
        ...

    def get_data_owned(self) -> Slice:
        """Hand over all pending bytes as one `Slice`; the buffer is empty afterwards.

        Also resets the `danger_set_start` offset to 0.
        """
        ...

    def get_data_by_ref(self, n: int) -> memoryview:
        """The first `min(n, len(self))` pending bytes, valid until the next call.

        Raises:
            TypeError: `n` is not an int.
            ValueError: `n` is negative or larger than `MAX_SIZE`.
        """
        ...

    def __len__(self) -> int:
        """Pending bytes: written and not yet taken."""
        ...

    def is_droppable(self) -> bool:
        """True when no slice made from the buffer's own memory is alive."""
        ...

    def danger_set_start(self, i: int) -> None:
        """Set the read offset used by Noise decryption; `get_data_owned` resets it to 0.

        Raises:
            TypeError: `i` is not an int.
            ValueError: `i` is negative or larger than `MAX_SIZE`.
        """
        ...

    def write(self, data: ReadableBuffer) -> int:
        """Append all of `data` to the pending bytes and return its length (Sv2 `Write`).

        Raises:
            TypeError: `data` is not a bytes-like object; nothing changed.
        """
        src = as_byte_view(data)  # TypeError before anything changes
        n = src.nbytes
        self.get_writable(n)[:] = src
        return n

    def write_all(self, data: ReadableBuffer) -> None:
        """Append all of `data` (Sv2 `Write::write_all`; it never runs out of room here)."""
        self.write(data)




class _SystemMemoryCore:
    """`BufferFromSystemMemory`'s hot path: `get_writable`, `get_data_owned` and their state.

    When the install compiled it, `objpool.sv2._cbuffer.SystemMemoryCore` replaces this class:
    the same methods and messages, checked by the same tests.
    """

    __slots__ = ("_borrow", "_cap", "_len", "_mv", "_start")
    _borrow: memoryview | None
    _cap: int
    _len: int
    _mv: memoryview
    _start: int

    def get_writable(self, n: int) -> memoryview:
        if n.__class__ is not int or n < 0 or n > MAX_SIZE:
            n = check_size(n)
        borrow = self._borrow
        if borrow is not None:
            borrow.release()
        pos = self._len
        end = pos + n
        if end > self._cap:
            self._grow(pos, end)
        self._len = end
        borrow = self._borrow = self._mv[pos:end]
        return borrow

    def _grow(self, pos: int, end: int) -> None:
        cap = max(end, 2 * self._cap, MIN_ALLOC)
        new = memoryview(bytearray(cap))
        if pos:
            new[:pos] = self._mv[:pos]
        self._mv = new
        self._cap = cap

    def get_data_owned(self) -> Slice:
        borrow = self._borrow
        if borrow is not None:
            borrow.release()
            self._borrow = None
        n = self._len
        self._start = 0
        if n == 0:
            return Slice._adopt(memoryview(bytearray()))
        view = self._mv[:n]
        self._mv = NO_BYTES
        self._cap = 0
        self._len = 0
        return Slice._adopt(view)


if COMPILED and not TYPE_CHECKING:  # type checkers read the Python class above, the reference
    from ._cbuffer import SystemMemoryCore as _SystemMemoryCore


class BufferFromSystemMemory(_SystemMemoryCore, Buffer):
    """A `Buffer` where every owned `Slice` is fresh memory (upstream's default fallback).

    Each message gets one new `bytearray`, sized by the message alone: its first
    `get_writable(n)` allocates `max(n, 64)` bytes, and growth within the message doubles
    (allocate twice as much and copy: a bytearray with live views cannot be resized). So a
    message's memory is under twice its length plus 64 bytes, whatever came before it, and
    the `Slice` takes that bytearray over without a copy. Between messages the buffer holds
    no memory.

    `capacity` is checked and otherwise ignored, as upstream ignores it: sizing every
    message like a first guess (or like the previous message) would let one large message
    make every later small one pin as much.
    """

    __slots__ = ()

    def __init__(self, capacity: int = 0) -> None:
        """Raises `TypeError`/`ValueError` for a non-int, negative or absurd `capacity`."""
        check_capacity(capacity)
        self._mv = NO_BYTES  # the current bytearray's whole view; never handed out itself
        self._cap = 0
        self._len = 0
        self._start = 0
        self._borrow: memoryview | None = None

    def get_data_by_ref(self, n: int) -> memoryview:
        if n.__class__ is not int or n < 0 or n > MAX_SIZE:
            n = check_size(n)
        borrow = self._borrow
        if borrow is not None:
            borrow.release()
        borrow = self._borrow = self._mv[: min(n, self._len)]
        return borrow

    def __len__(self) -> int:
        return self._len

    def is_droppable(self) -> bool:
        """Always True: slices from system memory owe the buffer nothing."""
        return True

    def danger_set_start(self, i: int) -> None:
        self._start = check_size(i, "i")

    @property
    def start(self) -> int:
        """The offset last set by `danger_set_start` (0 after `get_data_owned`)."""
        return self._start

    def __repr__(self) -> str:
        return f"<BufferFromSystemMemory pending={self._len}>"
