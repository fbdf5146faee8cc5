"""`Slice`: one contiguous run of bytes handed over by an Sv2 `Buffer`.

Invariant: a live `Slice` is the only owner of its bytes. Releasing it (explicitly, by
leaving a `with` block, or by garbage collection) first releases its view, then runs its
release callback exactly once; only after that may the buffer that made it reuse the memory.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Final, NoReturn, SupportsIndex, final, overload

from typing_extensions import Buffer as ReadableBuffer

from .._errors import StaleRefError

__all__ = ["ReleaseCallback", "Slice"]

ReleaseCallback = Callable[[], object]
"""Runs once when a `Slice` is released; gives its memory back to whoever lent it."""

_RELEASED: Final = "this Slice was released; its bytes may belong to someone else now"


@final
class Slice:
    """An owned, contiguous run of bytes: the Sv2 `Slice`.

    Buffers make slices (`Buffer.get_data_owned()`); `Slice(data)` makes one holding a copy of
    `data` in fresh memory (upstream's `From<Vec<u8>>`). Read and write the bytes through
    `view`, `slice[i]`, `bytes(slice)` or, on Python >= 3.12, the buffer protocol.

    `release()` hands the memory back; it is idempotent, so `with buffer.get_data_owned() as s:`
    and an explicit `release()` combine freely, and garbage collection releases a forgotten
    slice (Rust's `Drop`); if a buffer export of `view` (a `pickle.PickleBuffer`, a C
    extension's) outlives the collected slice, the memory stays reserved instead, so no new
    owner gets bytes still in use. A slice cannot be copied or pickled: a copy could release
    the same memory twice (upstream's `Clone` does exactly that).

    Thread rules: a slice may be handed to another thread and released there; two threads
    calling `release()` at once run the release callback exactly once.
    """

    __slots__ = ("_from_pool", "_index", "_len", "_token", "_view")

    _view: memoryview
    _len: int
    _index: int | None
    _from_pool: bool
    # One-item list holding the release callback (or None); emptied by the single winning
    # `list.pop()`, which is atomic in CPython (with or without the GIL). `alive` == non-empty.
    _token: list[ReleaseCallback | None]

    def __init__(self, data: ReadableBuffer = b"") -> None:
        """Make a system-memory slice holding a copy of `data`.

        Raises:
            TypeError: `data` does not support the buffer protocol.
        """
        copy = bytearray(data)
        self._view = memoryview(copy)
        self._len = len(copy)
        self._index = None
        self._from_pool = False
        self._token = [None]

    @classmethod
    def _adopt(
        cls,
        view: memoryview,
        index: int | None = None,
        on_release: ReleaseCallback | None = None,
        from_pool: bool = False,
    ) -> Slice:
        """Wrap `view` without copying; for buffers only.

        The slice takes `view` over: nobody else may use that memoryview afterwards, and
        `on_release` runs once, after the view is released, when the slice is released.
        `view` must be a 1-D, unsigned-byte, writable memoryview.
        """
        self = object.__new__(cls)
        self._view = view
        self._len = view.nbytes
        self._index = index
        self._from_pool = from_pool
        self._token = [on_release]
        return self

    @property
    def index(self) -> int | None:
        """Pool slot 1..8 for `BufferPool` memory; None for slices that hold no slot."""
        return self._index

    @property
    def from_pool(self) -> bool:
        """True when the bytes are pooled memory, False when they are fresh system memory."""
        return self._from_pool

    @property
    def alive(self) -> bool:
        """False once the slice was released."""
        return bool(self._token)

    @property
    def view(self) -> memoryview:
        """A read-write memoryview of exactly this slice's bytes (the same object each time).

        It is released with the slice; views sliced from it are not tracked, so do not keep
        them past `release()`.

        Raises:
            StaleRefError: the slice was released. Take what you need before releasing.
        """
        if not self._token:
            raise StaleRefError(_RELEASED)
        return self._view

    def release(self) -> None:
        """Give the memory back; a no-op when already released (like `file.close()`).

        Raises:
            BufferError: something still holds a buffer export of `view` (for example a
                `memoryview(slice)` not yet released); the slice stays alive. Release that
                export first.
        """
        token = self._token
        if not token:
            return
        try:
            self._view.release()
        except BufferError as exc:
            raise BufferError(
                "cannot release a Slice while a buffer export of its view is alive; "
                "release that export first"
            ) from exc
        try:
            on_release = token.pop()
        except IndexError:  # another thread won the race; it runs the callback
            return
        if on_release is not None:
            on_release()

    def __del__(self) -> None:
        try:
            self.release()
        except BufferError:
            # An export outlives us, so the bytes are still in use: keep them reserved (the
            # slot stays taken) rather than let the buffer hand them to a new owner.
            pass
        except AttributeError:  # __init__ failed before the slots were set
            pass

    def __enter__(self) -> Slice:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def __len__(self) -> int:
        """The true length in bytes (upstream reports 0 for pooled slices; we do not)."""
        return self._len

    def __bytes__(self) -> bytes:
        """A copy of the bytes. Raises `StaleRefError` after release."""
        return self.view.tobytes()

    @overload
    def __getitem__(self, key: SupportsIndex) -> int: ...
    @overload
    def __getitem__(self, key: slice) -> memoryview: ...
    def __getitem__(self, key: SupportsIndex | slice) -> int | memoryview:
        """Index or slice the bytes, as `view[key]`. Raises `StaleRefError` after release."""
        return self.view[key]

    if sys.version_info >= (3, 12):

        def __buffer__(self, flags: int, /) -> memoryview:
            """Buffer protocol (PEP 688): `socket.send(s)`, `hashlib.sha256(s)`, `bytes(s)`."""
            return self.view

        def __release_buffer__(self, buffer: memoryview, /) -> None:
            """Nothing to do: the export is counted on `view`, which CPython releases."""

    def __copy__(self) -> NoReturn:
        raise TypeError("a Slice cannot be copied: the copy could release its memory twice")

    def __deepcopy__(self, memo: object) -> NoReturn:
        raise TypeError("a Slice cannot be copied: the copy could release its memory twice")

    def __reduce_ex__(self, protocol: SupportsIndex) -> NoReturn:
        raise TypeError("a Slice cannot be pickled: take bytes(slice) instead")

    def __repr__(self) -> str:
        where = "pool" if self._from_pool else "system"
        state = "" if self._token else " released"
        return f"<Slice index={self._index} len={self._len} {where}{state}>"
