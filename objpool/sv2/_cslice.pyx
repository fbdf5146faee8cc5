# cython: language_level=3, auto_pickle=False, embedsignature=True, freethreading_compatible=True
"""The compiled `Slice`: `objpool/sv2/_slice.py` repeated as an extension type.

`_slice.py` is the reference: its `Slice` defines every behaviour and message, and this class
repeats them for speed (CPython's heapq/_heapq pattern); the test suite runs against both.

Invariant, as in the reference: a live slice is the only owner of its bytes, and releasing it
first releases every view it handed out, then runs its release callback exactly once. The
reference's one-item token list becomes `_alive` and `_callback`: `_alive` is cleared by an
atomic swap (`objpool._catomic`: a plain read and write under the GIL), and only the thread
that swapped it takes `_callback`, so of two threads releasing one slice exactly one runs the
callback, as the token's `list.pop()` decides in `_slice.py`.
"""

cimport cython
from cpython.buffer cimport PyObject_GetBuffer

from objpool._catomic cimport objpool_load, objpool_swap

import sys

from objpool._errors import StaleRefError
from objpool._validate import as_byte_view, check_int, reject
from objpool._views import release_all, remember
from objpool._warn import warn_user

_RELEASED = "this Slice was released; its bytes may belong to someone else now"

# PEP 688: the pure build's `Slice` exports its bytes through `__buffer__` on 3.12+ only, so
# the compiled one refuses the buffer protocol on 3.11 exactly as an object without it would.
cdef bint _EXPORTS = sys.version_info >= (3, 12)


cdef bint _is_writable_byte_view(object view):
    return (
        type(view) is memoryview
        and not view.readonly
        and view.format == "B"
        and view.ndim == 1
        and view.c_contiguous
    )


@cython.final
cdef class Slice:
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

    # Fields (declared in _cslice.pxd): _view, the memoryview of exactly this slice's bytes;
    # _views, the views handed out by slice[a:b] and Frame.payload (None: none yet); _len
    # (read by the decoder, which skips the len() call); _index; _from_pool; _callback, the
    # release callback or None; _alive, 0 once released and in an object whose
    # __init__ failed.

    def __init__(self, data=b""):
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
        self._callback = None
        self._alive = 1

    @classmethod
    def adopt(cls, view, on_release=None, *, index=None, from_pool=False):
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
        return _make(view, index, on_release, from_pool)

    @staticmethod
    def _adopt(view, index=None, on_release=None, from_pool=False):
        """`adopt()` without the argument checks, for objpool's own buffers' hot paths."""
        return _make(view, index, on_release, from_pool)

    @property
    def index(self):
        """Pool slot 1..8 for `BufferPool` memory; None for slices that hold no slot."""
        return self._index

    @property
    def from_pool(self):
        """True when the bytes are pooled memory, False when they are fresh system memory."""
        return self._from_pool

    @property
    def alive(self):
        """False once the slice was released."""
        return objpool_load(&self._alive) != 0

    @property
    def view(self):
        """A read-write memoryview of exactly this slice's bytes (the same object each time).

        It is released with the slice. Views you slice from it are not tracked, so do not
        keep them past `release()`; `slice[a:b]` gives a view that is.

        Raises:
            StaleRefError: the slice was released. Take what you need before releasing.
        """
        if not objpool_load(&self._alive):
            raise StaleRefError(_RELEASED)
        return self._view

    def release(self):
        """Give the memory back; a no-op when already released (like `file.close()`).

        Raises:
            BufferError: something still holds a buffer export of `view` (for example a
                `memoryview(slice)` not yet released); the slice stays alive. Release that
                export first.
        """
        if not objpool_load(&self._alive):
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
        # release_all() is Python code: another thread may have released us meanwhile; the
        # swap lets exactly one of them on.
        if not objpool_swap(&self._alive, 0):
            return
        on_release = self._callback
        self._callback = None
        if on_release is not None:
            on_release()

    def __del__(self):
        if not objpool_load(&self._alive):  # released, or __init__ failed before the fields were set
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

    def _on_release_also(self, extra):
        """Run `extra` after the release callback; call before anyone else holds the slice."""
        if not objpool_load(&self._alive):
            raise StaleRefError(_RELEASED)
        first = self._callback
        if first is None:
            self._callback = extra
            return

        def both():
            try:
                first()
            finally:
                extra()

        self._callback = both

    def _track(self, view):
        """Hand out `view`, a slice of `self._view`, released with the slice."""
        views = self._views
        if views is None:
            self._views = [view]
            return view
        return remember(views, view)

    def _tail(self, Py_ssize_t start):
        """A tracked view of the bytes from `start` on (`Frame.payload`)."""
        if not objpool_load(&self._alive):
            raise StaleRefError(_RELEASED)
        return self._track(self._view[start:])

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.release()

    def __len__(self):
        """The true length in bytes (upstream reports 0 for pooled slices; we do not)."""
        return self._len

    def __bytes__(self):
        """A copy of the bytes. Raises `StaleRefError` after release."""
        return self.view.tobytes()

    def __getitem__(self, key):
        """Index or slice the bytes, as `view[key]`; a slice's view is released with this one.

        Raises `StaleRefError` after release.
        """
        if isinstance(key, slice):
            return self._track(self.view[key])
        return self.view[key]

    def __getbuffer__(self, Py_buffer *buffer, int flags):
        # The export is taken on `view` (buffer.obj is `view`), so `view.release()` refuses
        # while it lives, exactly as with the reference's `__buffer__` returning `view`.
        if not _EXPORTS:
            raise TypeError(f"a bytes-like object is required, not '{type(self).__name__}'")
        # PyObject_GetBuffer sets buffer.obj to `view` with a reference of its own, over the
        # None Cython put there; None is immortal from 3.12 on, so nothing leaks.
        PyObject_GetBuffer(self.view, buffer, flags)

    def __copy__(self):
        raise TypeError("a Slice cannot be copied: the copy could release its memory twice")

    def __deepcopy__(self, memo):
        raise TypeError("a Slice cannot be copied: the copy could release its memory twice")

    def __reduce_ex__(self, protocol):
        raise TypeError("a Slice cannot be pickled: take bytes(slice) instead")

    def __repr__(self):
        where = "pool" if self._from_pool else "system"
        state = "" if objpool_load(&self._alive) else " released"
        return f"<Slice index={self._index} len={self._len} {where}{state}>"


cdef Slice _make(object view, object index, object on_release, bint from_pool):
    cdef Slice self = Slice.__new__(Slice)
    self._view = view
    self._len = len(view)  # a flat byte view's len() is its nbytes
    self._index = index
    self._from_pool = from_pool
    self._callback = on_release
    self._alive = 1
    return self
