"""Stratum V2 buffers and framing on pooled memory."""

from ._buffer import (
    MAX_SIZE as MAX_SIZE,
    Buffer as Buffer,
    BufferFromSystemMemory as BufferFromSystemMemory,
)
from ._slice import ReleaseCallback as ReleaseCallback, Slice as Slice
from ._buffer_pool import (
    POOL_CAPACITY as POOL_CAPACITY,
    BufferPool as BufferPool,
    PoolMode as PoolMode,
)
from ._pooled_buffer import PooledBuffer as PooledBuffer
from ._framing import (
    CHANNEL_ID_LEN as CHANNEL_ID_LEN,
    CHANNEL_MSG_FLAG as CHANNEL_MSG_FLAG,
    DEFAULT_MAX_PAYLOAD as DEFAULT_MAX_PAYLOAD,
    HEADER_LEN as HEADER_LEN,
    MAX_MSG_LENGTH as MAX_MSG_LENGTH,
    Frame as Frame,
    Header as Header,
)
from ._codec import FRAME_STEP as FRAME_STEP, Decoder as Decoder, Encoder as Encoder, MissingBytes as MissingBytes
from ._asyncio import Sv2Protocol as Sv2Protocol
from .._errors import FrameError as FrameError

__all__ = [
    "CHANNEL_ID_LEN",
    "CHANNEL_MSG_FLAG",
    "DEFAULT_MAX_PAYLOAD",
    "FRAME_STEP",
    "HEADER_LEN",
    "MAX_MSG_LENGTH",
    "Decoder",
    "Encoder",
    "Frame",
    "FrameError",
    "Header",
    "MissingBytes",
    "Sv2Protocol",
    "MAX_SIZE",
    "Buffer",
    "BufferFromSystemMemory",
    "BufferPool",
    "POOL_CAPACITY",
    "PoolMode",
    "PooledBuffer",
    "ReleaseCallback",
    "Slice",
]
