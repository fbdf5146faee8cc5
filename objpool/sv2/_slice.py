"""`Slice`: one contiguous run of bytes handed over by an Sv2 `Buffer`.

This module is the reference for both builds: where the install compiled `objpool/sv2/_cslice.pyx`,
its `Slice` replaces the one below, with the same behaviour and messages.

Invariant: a live `Slice` is the only owner of its bytes. Releasing it (explicitly, by
leaving a `with` block, or by garbage collection) first releases every view it handed out,
then runs its release callback exactly once; only after that may the buffer that made it
reuse the memory. So no view a slice handed out can read the next owner's bytes.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, NoReturn, SupportsIndex, final, overload

from typing_extensions import Buffer as ReadableBuffer

from .._compiled import COMPILED
from .._errors import StaleRefError
from .._validate import as_byte_view, check_int, reject
from .._views import release_all, remember
from .._warn import warn_user

__all__ = ["ReleaseCallback", "Slice"]

ReleaseCallback = Callable[[], object]
"""Runs once when a `Slice` is released; gives its memory back to whoever lent it."""

_RELEASED: Final = "this Slice was released; its bytes may belong to someone else now"


def _is_writable_byte_view(view: object) -> bool:
    return (
        isinstance(view, memoryview)
        and not view.readonly
        and view.format == "B"
        and view.ndim == 1
        and view.c_contiguous
    )


@final
class Slice:
    """An owned, contiguous run of bytes: the Sv2 `Slice`.

    Buffers make slices (`Buffer.get_data_owned()`, or `Slice.adopt()` in a `Buffer` of your
    own); `Slice(data)` makes one holding a copy of `data` in fresh memory (upstream's
    `From<Vec<u8>>`). Read and write the bytes through `view`, `slice[i]`, `slice[a:b]`,
    `bytes(slice)` or, on Python >= 3.12, the buffer protocol.

    `release()` hands the memory back and releases `view` and every view `slice[a:b]` returned,
    so a stale one raises `ValueError` instead of reading the next owner's bytes. A view you
    derive yourself (`slice.view[2:]`, `memoryview(slice.view)`) is not tracked: drop it first.
    `release()` is idempotent, like `memoryview.release()` and `file.close()`: a slice is a
    buffer, so `with buffer.get_data_owned() as s:` and an explicit `release()` combine freely.
    A live slice that is garbage-collected is a leak: it emits a `ResourceWarning` and is
    released then (Rust's `Drop`); if a buffer export of `view` (a `pickle.PickleBuffer`, a C
    extension's) outlives it, the memory stays reserved instead, so no new owner gets bytes
    still in use. A slice cannot be copied or pickled: a copy could release the same memory
    twice (upstream's `Clone` does exactly that).

    Thread rules: a slice may be handed to another thread and released there; two threads
    calling `release()` at once run the release callback exactly once.
    """

    __slots__ = ("_from_pool", "_index", "_len", "_token", "_view", "_views")

    _view: memoryview
    # Views handed out by slice[a:b] and Frame.payload, released with the slice (None: none yet).
    _views: list[memoryview] | None
    _len: int
    _index: int | None
    _from_pool: bool
    # One-item list holding the release callback (or None); emptied by the single winning
    # `list.pop()`, which is atomic in CPython (with or without the GIL). `alive` == non-empty.
    _token: list[ReleaseCallback | None]

    def __init__(self, data: ReadableBuffer = b"") -> None:
        """Make a system-memory slice holding a copy of `data`.

        Raises:
            TypeError: `data` does not support the buffer protocol (an int, a list, a str).
        """
        copy = bytearray(as_byte_view(data))
        self._view = memoryview(copy)
        self._views = None
        self._len = len(copy)
        self._index = None
        self._from_pool = False
        self._token = [None]

    @classmethod
    def adopt(
        cls,
        view: memoryview,
        on_release: ReleaseCallback | None = None,
        *,
        index: int | None = None,
        from_pool: bool = False,
    ) -> Slice:
        """Make a slice that owns `view` without copying: how a `Buffer` of yours hands out bytes.

        From then on the slice is the only user of `view`; `on_release` runs exactly once, on
        whichever thread releases the slice, after `view` and every view handed out from it
        were released: that is where your buffer takes its memory back. `index` and
        `from_pool` are reported by the slice's properties of the same names.

        Raises:
            TypeError: `view` is not a writable, flat, C-contiguous memoryview of unsigned
                bytes (`memoryview(bytearray(...))[a:b]` is one), or `on_release` is not
                callable or None.
            ValueError: `index` is negative.
        """
        if not _is_writable_byte_view(view):
            reject(TypeError, "view", "a writable, flat, C-contiguous memoryview of unsigned bytes", view)
        if on_release is not None and not callable(on_release):
            reject(TypeError, "on_release", "callable or None", on_release)
        if index is not None:
            check_int("index", index)
        if not isinstance(from_pool, bool):
            reject(TypeError, "from_pool", "a bool", from_pool)
        return cls._adopt(view, index, on_release, from_pool)

    @classmethod
    def _adopt(
        cls,
        view: memoryview,
        index: int | None = None,
        on_release: ReleaseCallback | None = None,
        from_pool: bool = False,
    ) -> Slice:
        """`adopt()` without the argument checks, for objpool's own buffers' hot paths."""
        self = object.__new__(cls)
        self._view = view
        self._views = None
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

        It is released with the slice. Views you slice from it are not tracked, so do not
        keep them past `release()`; `slice[a:b]` gives a view that is.

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
            if self._views is not None:
                release_all(self._views)
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
            token = self._token
        except AttributeError:  # __init__ failed before the slots were set
            return
        if not token:
            return
        try:
            warn_user(
                f"{self!r} was garbage-collected while still live; release it, "
                "or use 'with buffer.get_data_owned() as s:'",
                ResourceWarning,
                source=self,
            )
        finally:  # release even when a warnings filter turned the warning into an error
            try:
                self.release()
            except BufferError:
                # An export outlives us, so the bytes are still in use: keep them reserved
                # (the slot stays taken) rather than let the buffer hand them to a new owner.
                pass
            except StaleRefError:
                # Its handle was finalised first (at interpreter exit, finalisers run in any order):
                # the pool has taken the slot back as a leak, and there is nothing left to release.
                pass

    def _on_release_also(self, extra: ReleaseCallback) -> None:
        """Run `extra` after the release callback; call before anyone else holds the slice."""
        token = self._token
        if not token:
            raise StaleRefError(_RELEASED)
        first = token[0]
        if first is None:
            token[0] = extra
            return

        def both() -> None:
            try:
                first()
            finally:
                extra()

        token[0] = both

    def _track(self, view: memoryview) -> memoryview:
        """Hand out `view`, a slice of `self._view`, released with the slice."""
        views = self._views
        if views is None:
            self._views = [view]
            return view
        return remember(views, view)

    def _tail(self, start: int) -> memoryview:
        """A tracked view of the bytes from `start` on (`Frame.payload`)."""
        if not self._token:
            raise StaleRefError(_RELEASED)
        return self._track(self._view[start:])

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
        """Index or slice the bytes, as `view[key]`; a slice's view is released with this one.

        Raises `StaleRefError` after release.
        """
        if isinstance(key, slice):
            return self._track(self.view[key])
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


if COMPILED and not TYPE_CHECKING:  # type checkers read the Python class above, the reference
    from ._cslice import Slice
