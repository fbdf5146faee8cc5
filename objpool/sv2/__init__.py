"""Stratum V2 buffers and framing on pooled memory."""

from ._buffer import Buffer as Buffer, BufferFromSystemMemory as BufferFromSystemMemory
from ._sizes import MAX_SIZE as MAX_SIZE
from ._slice import ReleaseCallback as ReleaseCallback, Slice as Slice
from ._buffer_pool import BufferPool as BufferPool
from ._modes import POOL_CAPACITY as POOL_CAPACITY, PoolMode as PoolMode
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
from ._codec import Decoder as Decoder, Encoder as Encoder
from ._decoding import FRAME_STEP as FRAME_STEP, MissingBytes as MissingBytes
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
