"""objpool: typed, thread-safe object and byte-buffer pools with linear handles."""

from ._errors import (
    BufferFullError as BufferFullError,
    ForeignRefError as ForeignRefError,
    FrameError as FrameError,
    PoolClosedError as PoolClosedError,
    PoolError as PoolError,
    PoolExhaustedError as PoolExhaustedError,
    StaleRefError as StaleRefError,
)

__all__ = [
    "BufferFullError",
    "ForeignRefError",
    "FrameError",
    "PoolClosedError",
    "PoolError",
    "PoolExhaustedError",
    "StaleRefError",
]
