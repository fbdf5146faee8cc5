"""objpool: typed, thread-safe object and byte-buffer pools with linear handles."""

__version__ = "0.1.0"
"""The installed release (PEP 440); also the distribution's version."""

from ._acquisition import Acquisition as Acquisition
from ._bufpool import (
    BufAllocation as BufAllocation,
    BufPool as BufPool,
    BufPoolStats as BufPoolStats,
)
from ._bytebuffer import (
    ByteBuffer as ByteBuffer,
    SupportsReadinto as SupportsReadinto,
    SupportsRecvInto as SupportsRecvInto,
)
from ._errors import (
    BufferFullError as BufferFullError,
    ForeignRefError as ForeignRefError,
    FrameError as FrameError,
    PoolClosedError as PoolClosedError,
    PoolError as PoolError,
    PoolExhaustedError as PoolExhaustedError,
    StaleRefError as StaleRefError,
)
from ._ownedref import Lender as Lender, OwnedRef as OwnedRef
from ._pool import (
    COMPILED as COMPILED,
    Pool as Pool,
    PoolStats as PoolStats,
    Reset as Reset,
)
from ._sizedpool import (
    SizeClassStats as SizeClassStats,
    SizedPool as SizedPool,
    SizedPoolStats as SizedPoolStats,
)

__all__ = [
    "COMPILED",
    "Acquisition",
    "BufAllocation",
    "BufPool",
    "BufPoolStats",
    "BufferFullError",
    "ByteBuffer",
    "ForeignRefError",
    "Lender",
    "OwnedRef",
    "Pool",
    "FrameError",
    "PoolClosedError",
    "PoolError",
    "PoolExhaustedError",
    "PoolStats",
    "Reset",
    "SizeClassStats",
    "SizedPool",
    "SizedPoolStats",
    "StaleRefError",
    "SupportsReadinto",
    "SupportsRecvInto",
]
