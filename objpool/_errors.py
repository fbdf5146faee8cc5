"""objpool's exception family: one base class, one subclass per kind of misuse.

State misuse (a pool that is full, closed, or given the wrong handle) raises a `PoolError`
subclass. Bad arguments (a negative size, a capacity of 0, a non-int) raise the built-in
`TypeError` or `ValueError` with the rule and the value in the message. Where one of ours
refines a built-in's meaning it subclasses both, so callers may catch either.
"""

from __future__ import annotations

__all__ = [
    "BufferFullError",
    "ForeignRefError",
    "FrameError",
    "PoolClosedError",
    "PoolError",
    "PoolExhaustedError",
    "StaleRefError",
]

NOT_A_HANDLE = "this OwnedRef was not made by Pool.allocate() and is not a handle"
"""The `TypeError` message for a handle built outside a pool (both builds raise it)."""


class PoolError(Exception):
    """Base class for objpool's own errors; never raised directly."""


class PoolExhaustedError(PoolError):
    """Every object is lent out: release one, or use `try_allocate()` to test first."""


class PoolClosedError(PoolError):
    """The pool was closed by your code and lends nothing more.

    Handles still out may be released; only new allocations fail.
    """


class StaleRefError(PoolError):
    """A handle (`OwnedRef`, `Slice`) was used after it went back to its pool.

    This is always a bug in the caller: a second release, or a read after release.
    """


class ForeignRefError(PoolError):
    """A handle was given to a pool that did not lend it; neither pool was changed."""


class BufferFullError(PoolError, ValueError):
    """More bytes were written than a fixed-size buffer has free; nothing was written."""


# A malformed frame is the peer's fault, not pool misuse, but it still derives from PoolError so
# that `except PoolError` catches everything objpool raises on its own (the family rule), and from
# ValueError because it refines "bad value" (as BufferFullError does).
class FrameError(PoolError, ValueError):
    """Bytes on the wire do not form a valid Sv2 frame; the connection cannot be resynchronised.

    `offset` is the position, counted from the first byte the decoder saw, of the header of the
    offending frame. Drop the connection; the decoder keeps raising until `Decoder.clear()`.
    """

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset

    def __reduce__(self) -> tuple[type[FrameError], tuple[str, int]]:
        # Exceptions pickle as cls(*args); args holds only the message, so add the offset back.
        return (type(self), (str(self), self.offset))


# Tracebacks and reprs show where users import these from, `objpool.StaleRefError`, not the
# private module (trio does the same). Pickling still works: objpool re-exports each name.
for _error in (
    PoolError,
    PoolExhaustedError,
    PoolClosedError,
    StaleRefError,
    ForeignRefError,
    BufferFullError,
    FrameError,
):
    _error.__module__ = "objpool"
del _error
