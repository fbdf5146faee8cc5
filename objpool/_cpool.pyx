# cython: language_level=3, auto_pickle=False, embedsignature=True
"""The compiled hot path of `objpool._pool`: `PoolCore` and `OwnedRef` as extension types.

`objpool/_pool.py` is the reference: its `_PoolCore` and `OwnedRef` define every behaviour
and message, and this module repeats them for speed (CPython's heapq/_heapq pattern). The
test suite runs against both builds. Rare paths stay in Python, in `Pool`, which subclasses
whichever core the install has.

Invariant: a handle's `_index` is its slot while it is live and -1 once released. Every
read-test-write of `_index` runs with the GIL held and no Python call in between, so of two
threads releasing one handle exactly one wins, as `list.pop()` on a claim list does in
`_pool.py`.
"""

cimport cython

from types import GenericAlias

from objpool._errors import ForeignRefError, PoolClosedError, PoolExhaustedError, StaleRefError
from objpool._validate import reject

_NOT_A_HANDLE = "this OwnedRef was not made by Pool.allocate() and is not a handle"


@cython.final
cdef class OwnedRef:
    """Exclusive, linear handle on one pooled object; made only by `Pool.allocate`.

    Use it as a context manager (`with pool.allocate() as obj:`), or read `.value` and
    call `release()` (or `pool.deallocate(ref)`) exactly once. After release the handle
    is dead for good: `.value` and a second release raise `StaleRefError`. A handle that
    is garbage-collected while live is a leak: the pool warns and replaces the object.
    """

    cdef object _pool  # None: made outside a pool, inert
    cdef object _value
    cdef Py_ssize_t _index  # the slot while live, -1 once released

    __class_getitem__ = classmethod(GenericAlias)

    @property
    def value(self):
        """The lent object. Raises `StaleRefError` once the handle was released."""
        if self._pool is None:
            raise TypeError(_NOT_A_HANDLE)
        if self._index < 0:
            raise StaleRefError(f"{self!r} was released; its object belongs to the pool again")
        return self._value

    @property
    def alive(self):
        """True until the handle is released (or its object's reset failed)."""
        if self._pool is None:
            raise TypeError(_NOT_A_HANDLE)
        return self._index >= 0

    @property
    def pool(self):
        """The pool that lent this handle."""
        if self._pool is None:
            raise TypeError(_NOT_A_HANDLE)
        return self._pool

    def release(self):
        """Reset the object and give it back to its pool; same as `pool.deallocate(self)`."""
        self.pool.deallocate(self)

    def __enter__(self):
        if self._pool is None:
            raise TypeError(_NOT_A_HANDLE)
        if self._index < 0:
            raise StaleRefError(f"{self!r} was released; its object belongs to the pool again")
        return self._value

    def __exit__(self, exc_type, exc, traceback):
        if self._pool is None:
            raise TypeError(_NOT_A_HANDLE)
        self._pool.deallocate(self)

    def __del__(self):
        cdef Py_ssize_t index = self._index
        if self._pool is None or index < 0:
            return
        self._index = -1  # won, as the claim list's pop() wins in _pool.py
        self._pool._on_leak(index, self)

    def __copy__(self):
        raise TypeError("OwnedRef cannot be copied: two handles would own one object")

    def __deepcopy__(self, memo):
        raise TypeError("OwnedRef cannot be copied: two handles would own one object")

    def __reduce_ex__(self, protocol):
        raise TypeError("OwnedRef cannot be pickled: it is only meaningful in its pool's process")

    def __repr__(self):
        if self._pool is None:
            return "<OwnedRef not made by a pool>"
        state = "live" if self._index >= 0 else "released"
        return f"<OwnedRef {state} {type(self._value).__name__} from {self._pool!r}>"


cdef class PoolCore:
    """`Pool`'s hot path, compiled: lend, take back, and nothing else (see `_pool._PoolCore`)."""

    cdef public bint _closed
    cdef public list _free
    cdef public list _items
    cdef public object _reset
    cdef public list _uses

    __class_getitem__ = classmethod(GenericAlias)

    def allocate(self):
        """Lend an object through a new handle.

        Raises:
            PoolExhaustedError: every object is lent; release one first, or call
                `try_allocate()` to get `None` instead.
            PoolClosedError: `close()` was called.
        """
        cdef Py_ssize_t index
        cdef OwnedRef ref
        if self._closed:
            raise PoolClosedError(f"{self!r} is closed and lends nothing more")
        try:
            index = self._free.pop()
        except IndexError:
            index = self._allocate_slow()
        self._uses[index] += 1
        ref = OwnedRef.__new__(OwnedRef)
        ref._pool = self
        ref._value = self._items[index]
        ref._index = index
        return ref

    def try_allocate(self):
        """Like `allocate()`, but return `None` when every object is lent.

        Raises:
            PoolClosedError: `close()` was called (a closed pool is not merely full).
        """
        try:
            return self.allocate()
        except PoolExhaustedError:
            return None

    def deallocate(self, ref):
        """Reset the handle's object, return it to the pool and kill the handle.

        Raises:
            StaleRefError: the handle was already released.
            ForeignRefError: another pool lent the handle; neither pool changes.
            TypeError: `ref` is not an `OwnedRef`.
            Exception: whatever the reset raised. The handle is dead, the object left
                circulation, and its slot holds a fresh `factory()` object (or is
                retired when there is no factory).
        """
        cdef OwnedRef handle
        cdef Py_ssize_t index
        if type(ref) is not OwnedRef:
            reject(TypeError, "ref", "an OwnedRef", ref)
        handle = <OwnedRef>ref
        if handle._pool is None:
            raise TypeError(_NOT_A_HANDLE)
        if handle._pool is not self:
            raise ForeignRefError(f"{ref!r} was lent by another pool, not by {self!r}")
        index = handle._index
        if index < 0:
            raise StaleRefError(f"{ref!r} was already released")
        handle._index = -1
        try:
            self._reset(handle._value)
        except BaseException:
            self._reset_failed(index)
            raise
        self._free.append(index)
