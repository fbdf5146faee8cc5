"""Sv2 framing: a frame is a 6-byte little-endian header followed by exactly `msg_length` bytes.

Invariant owned here: a `Frame` only ever wraps a `Slice` whose bytes are one whole, valid
frame: at least `HEADER_LEN` bytes, a `msg_length` equal to the bytes that follow the header,
and, when the `channel_msg` flag is set, at least `CHANNEL_ID_LEN` payload bytes. The header and
payload share that one slice; nothing is copied.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, final

from .._errors import FrameError
from .._validate import check_int, reject

from ._slice import Slice

if TYPE_CHECKING:
    from types import TracebackType

    from typing_extensions import Self

__all__ = [
    "CHANNEL_ID_LEN",
    "CHANNEL_MSG_FLAG",
    "DEFAULT_MAX_PAYLOAD",
    "HEADER_LEN",
    "MAX_MSG_LENGTH",
    "Frame",
    "Header",
]

# Sv2 header: extension_type u16, msg_type u8, msg_length u24, all little-endian (codec_sv2's
# `Header::SIZE`). struct has no u24, so read bytes 2..6 as one u32: msg_type is its low byte
# and msg_length the upper three, which makes a header one `unpack_from` and two int ops.
HEADER_LEN: Final = 6
_HEADER: Final = struct.Struct("<HI")
# Bit 15 of extension_type marks a channel message; the first 4 payload bytes are then a u32
# channel id. Extension lookups ignore the bit (`ext_type_without_channel_msg` upstream).
CHANNEL_MSG_FLAG: Final = 0x8000
CHANNEL_ID_LEN: Final = 4
_CHANNEL_ID: Final = struct.Struct("<I")
MAX_EXTENSION_TYPE: Final = 0x7FFF
# u24: Sv2 allows 16 MiB - 1 of payload. Decoders default to far less, so that a hostile peer
# cannot make every connection reserve 16 MiB by sending one header.
MAX_MSG_LENGTH: Final = 0xFFFFFF
DEFAULT_MAX_PAYLOAD: Final = 1 << 20


def _check_range(name: str, value: object, high: int) -> None:
    check_int(name, value, 0, high, hex_rule=True)


@final
@dataclass(frozen=True, slots=True)
class Header:
    """The 6-byte Sv2 frame header, with the `channel_msg` flag split out of `extension_type`.

    `Header(0x0201, 0x03, 0x060504).to_bytes()` is `bytes([1, 2, 3, 4, 5, 6])`. Fields are
    range-checked: `extension_type` 0..0x7fff (set `channel_msg` for bit 15), `msg_type`
    0..0xff, `msg_length` (payload bytes, header excluded) 0..0xffffff.
    """

    extension_type: int
    msg_type: int
    msg_length: int
    channel_msg: bool = False

    def __post_init__(self) -> None:
        _check_range("extension_type", self.extension_type, MAX_EXTENSION_TYPE)
        _check_range("msg_type", self.msg_type, 0xFF)
        _check_range("msg_length", self.msg_length, MAX_MSG_LENGTH)
        if not isinstance(self.channel_msg, bool):
            reject(TypeError, "channel_msg", "a bool", self.channel_msg)

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview) -> Header:
        """Parse the first `HEADER_LEN` bytes of `data`.

        Raises:
            FrameError: `data` is shorter than a header (offset 0).
        """
        if len(data) < HEADER_LEN:
            raise FrameError(f"a header needs {HEADER_LEN} bytes, got {len(data)}", 0)
        raw_ext, type_len = _HEADER.unpack_from(data)
        return cls(
            raw_ext & MAX_EXTENSION_TYPE,
            type_len & 0xFF,
            type_len >> 8,
            bool(raw_ext & CHANNEL_MSG_FLAG),
        )

    @property
    def raw_extension_type(self) -> int:
        """`extension_type` as it travels: with bit 15 set for a channel message."""
        return self.extension_type | CHANNEL_MSG_FLAG if self.channel_msg else self.extension_type

    def pack_into(self, buffer: bytearray | memoryview, offset: int = 0) -> None:
        """Write the header's 6 bytes into `buffer` at `offset`."""
        _HEADER.pack_into(buffer, offset, self.raw_extension_type, self.msg_type | self.msg_length << 8)

    def to_bytes(self) -> bytes:
        """The header's 6 wire bytes."""
        return _HEADER.pack(self.raw_extension_type, self.msg_type | self.msg_length << 8)


@final
class Frame:
    """One Sv2 frame, header and payload in a single pooled `Slice` (never copied).

    Made by `Decoder` and `Encoder`, or by `Frame(slice)` on a slice holding one whole frame.
    The frame owns the slice: `release()` (or leaving a `with` block) gives the memory back and
    releases the views `payload` and `view` returned, so a stale one raises `ValueError`
    instead of reading the next frame's bytes; views you derive from those yourself must be
    dropped before that. After release, reading `payload`, `view` or `channel_id` raises
    `StaleRefError`; the header fields stay readable.
    """

    __slots__ = ("_data", "_raw_ext", "_type_len")

    def __init__(self, data: Slice) -> None:
        """Take ownership of `data`, which must hold exactly one frame.

        Raises:
            FrameError: the bytes are not one valid frame (offset 0); `data` is then left
                to the caller, unreleased.
            TypeError: `data` is not a `Slice`.
            StaleRefError: `data` was released.
        """
        if data.__class__ is not Slice:
            reject(TypeError, "data", "a Slice", data)
        view = data.view
        size = len(view)
        if size < HEADER_LEN:
            raise FrameError(f"a frame needs at least {HEADER_LEN} bytes, got {size}", 0)
        raw_ext, type_len = _HEADER.unpack_from(view)
        length = type_len >> 8
        if length != size - HEADER_LEN:
            raise FrameError(
                f"header announces msg_length {length}, but {size - HEADER_LEN} bytes follow it", 0
            )
        if raw_ext & CHANNEL_MSG_FLAG and length < CHANNEL_ID_LEN:
            raise FrameError(
                f"channel message needs a {CHANNEL_ID_LEN}-byte channel id, msg_length is {length}", 0
            )
        self._data = data
        self._raw_ext: int = raw_ext
        self._type_len: int = type_len

    @classmethod
    def _checked(cls, data: Slice, raw_ext: int, type_len: int) -> Frame:
        """A frame over `data`, whose header the decoder already parsed and checked."""
        frame = object.__new__(cls)
        frame._data = data
        frame._raw_ext = raw_ext
        frame._type_len = type_len
        return frame

    @property
    def extension_type(self) -> int:
        """The extension type with the `channel_msg` bit masked off."""
        return self._raw_ext & MAX_EXTENSION_TYPE

    @property
    def channel_msg(self) -> bool:
        """Whether bit 15 of the extension type is set (the payload starts with a channel id)."""
        return bool(self._raw_ext & CHANNEL_MSG_FLAG)

    @property
    def msg_type(self) -> int:
        """The message type, one byte."""
        return self._type_len & 0xFF

    @property
    def msg_length(self) -> int:
        """The payload length in bytes, header excluded."""
        return self._type_len >> 8

    @property
    def header(self) -> Header:
        """The parsed header."""
        return Header(self.extension_type, self.msg_type, self.msg_length, self.channel_msg)

    @property
    def channel_id(self) -> int | None:
        """The u32 little-endian channel id (first 4 payload bytes) of a channel message, else None."""
        if not self._raw_ext & CHANNEL_MSG_FLAG:
            return None
        value: int = _CHANNEL_ID.unpack_from(self._data.view, HEADER_LEN)[0]
        return value

    @property
    def payload(self) -> memoryview:
        """A read-write view of the payload (channel id included), released by `release()`."""
        return self._data._tail(HEADER_LEN)

    @property
    def view(self) -> memoryview:
        """A view of the whole frame as it travels on the wire, released by `release()`."""
        return self._data.view

    @property
    def data(self) -> Slice:
        """The slice that holds the frame; the frame still owns it."""
        return self._data

    @property
    def alive(self) -> bool:
        """False once the frame (its slice) has been released."""
        return self._data.alive

    def __len__(self) -> int:
        """Bytes on the wire: header plus payload."""
        return HEADER_LEN + (self._type_len >> 8)

    def __bytes__(self) -> bytes:
        return bytes(self._data.view)

    def release(self) -> None:
        """Give the frame's memory back to its buffer. Idempotent, like `Slice.release()`."""
        self._data.release()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def __repr__(self) -> str:
        state = "" if self._data.alive else ", released"
        chan = f", channel_id={self.channel_id}" if self.channel_msg and self._data.alive else ""
        return (
            f"<Frame ext={self.extension_type:#06x} type={self.msg_type:#04x}"
            f" len={self.msg_length}{chan}{state}>"
        )
