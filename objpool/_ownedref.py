"""`OwnedRef[T]`: the linear handle every pool lends, and `Lender`, what lends one.

This module is the reference for both builds: where the install compiled `objpool/_cpool.pyx`,
its `OwnedRef`, `handle_for` and `end_handle` replace the ones below (a `Pool` core lends and
takes back its handles in C).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Generic, NoReturn, Protocol, TypeVar, final, runtime_checkable

from ._compiled import COMPILED
from ._errors import NOT_A_HANDLE, StaleRefError

__all__ = ["Lender", "OwnedRef", "end_handle", "handle_for"]

T = TypeVar("T")


@runtime_checkable
class Lender(Protocol):
    """What lends `OwnedRef`s and takes them back: a `Pool` or a `SizedPool` (`OwnedRef.pool`).

    `deallocate(ref)` is the public half; `_on_leak(index, ref)` is how a handle collected
    while live tells its lender (from its finaliser, so it must only record and warn).
    """

    def deallocate(self, ref: Any, /) -> None:
        """Give back a handle this lender lent (the same as `ref.release()`)."""

    def _on_leak(self, index: int, ref: Any, /) -> None: ...


@final
class OwnedRef(Generic[T]):
    """Exclusive, linear handle on one pooled object; made only by `Pool.allocate` and
    `SizedPool.allocate`.

    Use it as a context manager (`with pool.allocate() as obj:`), or read `.value` and
    call `release()` (or `pool.deallocate(ref)`) exactly once. After release the handle
    is dead for good: `.value` and a second release raise `StaleRefError`. A handle that
    is garbage-collected while live is a leak: the pool warns and replaces the object.
    """

    # _claim is [index] while live and [] once released: popping it is the atomic
    # test-and-clear that makes double releases, even racing ones, impossible.
    #
    # There is no __init__: Pool.allocate() calls OwnedRef() and fills the slots, which
    # is ~30 ns a cycle cheaper on CPython 3.11 than any constructor that could refuse
    # outsiders. An OwnedRef() made elsewhere has empty slots, so every use of it fails
    # with TypeError (the AttributeError handlers below) and it can never lend anything.
    __slots__ = ("_claim", "_pool", "_value")
    _claim: list[int]
    _pool: Lender
    _value: T

    @property
    def value(self) -> T:
        """The lent object. Raises `StaleRefError` once the handle was released."""
        try:
            live = self._claim
        except AttributeError:
            raise TypeError(NOT_A_HANDLE) from None
        if not live:
            raise StaleRefError(f"{self!r} was released; its object belongs to the pool again")
        return self._value

    @property
    def alive(self) -> bool:
        """True until the handle is released (or its object's reset failed)."""
        try:
            return bool(self._claim)
        except AttributeError:
            raise TypeError(NOT_A_HANDLE) from None

    @property
    def pool(self) -> Lender:
        """The pool that lent this handle."""
        try:
            return self._pool
        except AttributeError:
            raise TypeError(NOT_A_HANDLE) from None

    def release(self) -> None:
        """Reset the object and give it back to its pool; same as `pool.deallocate(self)`."""
        try:
            pool = self._pool
        except AttributeError:
            raise TypeError(NOT_A_HANDLE) from None
        pool.deallocate(self)

    # __enter__ and __exit__ inline .value and .pool: `with pool.allocate() as obj:` is
    # the documented form, and each extra call costs ~10% of a cycle.
    def __enter__(self) -> T:
        try:
            live = self._claim
        except AttributeError:
            raise TypeError(NOT_A_HANDLE) from None
        if not live:
            raise StaleRefError(f"{self!r} was released; its object belongs to the pool again")
        return self._value

    def __exit__(self, exc_type: object, exc: object, traceback: object) -> None:
        try:
            pool = self._pool
        except AttributeError:
            raise TypeError(NOT_A_HANDLE) from None
        pool.deallocate(self)

    def __del__(self) -> None:
        try:
            claim = self._claim
        except AttributeError:  # an inert OwnedRef() made outside a pool
            return
        if claim:
            try:
                index = claim.pop()
            except IndexError:  # released by another thread meanwhile: not a leak
                return
            self._pool._on_leak(index, self)

    def __copy__(self) -> NoReturn:
        raise TypeError("OwnedRef cannot be copied: two handles would own one object")

    def __deepcopy__(self, memo: object) -> NoReturn:
        raise TypeError("OwnedRef cannot be copied: two handles would own one object")

    def __reduce_ex__(self, protocol: object) -> NoReturn:
        raise TypeError("OwnedRef cannot be pickled: it is only meaningful in its pool's process")

    def __repr__(self) -> str:
        try:
            state = "live" if self._claim else "released"
        except AttributeError:
            return "<OwnedRef not made by a pool>"
        return f"<OwnedRef {state} {type(self._value).__name__} from {self._pool!r}>"


def handle_for(lender: Lender, value: T, index: int) -> OwnedRef[T]:
    """A live handle on `value` lent by `lender` (a `SizedPool`); `index` >= 0 is the lender's
    to read back when the handle comes home (`end_handle`)."""
    if index < 0:
        raise ValueError(f"index must be >= 0, got {index}")
    ref: OwnedRef[T] = OwnedRef()
    ref._pool = lender
    ref._value = value
    ref._claim = [index]
    return ref


def end_handle(ref: OwnedRef[Any]) -> int:
    """Kill a live handle and return its index, or -1 if it was released already.

    Atomic: of two threads ending one handle, exactly one gets the index.
    """
    try:
        return ref._claim.pop()
    except IndexError:
        return -1


if COMPILED and not TYPE_CHECKING:  # type checkers read the Python classes above, the reference
    from ._cpool import OwnedRef, end_handle, handle_for
