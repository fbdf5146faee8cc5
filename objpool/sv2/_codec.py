"""Sans-IO Sv2 decoder and encoder over any `Buffer`, driven the way codec_sv2 drives it.

Invariant owned here: the decoder's `Buffer` holds at most the bytes of one frame, header
first; a frame leaves it only as one `get_data_owned()` slice, and no payload memory is
reserved before its header passed the `max_payload` and channel-id checks (through
`get_buffer()` and `feed()`, not even the header's: it waits in the decoder's own 6 bytes). Once a check
fails the decoder is broken: every call raises that `FrameError` again until `clear()`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, NoReturn, final

from .._bytebuffer import as_byte_view
from .._errors import FrameError
from ._framing import (
    _HEADER,
    CHANNEL_ID_LEN,
    CHANNEL_MSG_FLAG,
    DEFAULT_MAX_PAYLOAD,
    HEADER_LEN,
    MAX_EXTENSION_TYPE,
    MAX_MSG_LENGTH,
    Frame,
    _check_range,
)

if TYPE_CHECKING:
    from ._buffer import Buffer
    from ._slice import Slice

__all__ = ["Decoder", "Encoder", "MissingBytes"]

BytesLike = bytes | bytearray | memoryview


@final
class MissingBytes:
    """`Decoder.next_frame()`'s "not yet" answer: `count` more bytes are needed.

    Narrow with `isinstance(ev, MissingBytes)`; anything else `next_frame()` returns is a `Frame`.
    """

    __slots__ = ("count",)

    def __init__(self, count: int) -> None:
        self.count: Final = count

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MissingBytes) and other.count == self.count

    def __hash__(self) -> int:
        return hash((MissingBytes, self.count))

    def __repr__(self) -> str:
        return f"MissingBytes({self.count})"


@final
class Decoder:
    """Turns bytes into `Frame`s inside one `Buffer`, codec_sv2's `StandardDecoder` loop.

    Three ways to feed it, from lowest to highest level:

    - codec_sv2's: fill *all* of `writable()`, then call `next_frame()`, which returns a
      `Frame` or `MissingBytes(n)`; repeat.
    - asyncio's: `get_buffer()` returns the part still to fill (never empty), and
      `buffer_updated(n)` records that `n` bytes of it were filled, however few: short reads
      are fine. It returns the completed `Frame` or `MissingBytes`.
    - `feed(data)` copies chunks of any size in and returns the frames they complete.

    The last two collect each header in a 6-byte area of the decoder's own, then reserve
    header + payload in the buffer in one `get_writable`, so an idle decoder holds no buffer
    memory and payloads are still received in place.

    Args:
        buffer: where frames are assembled; the decoder must be its only user.
        max_payload: the largest `msg_length` accepted, 0..0xffffff (default 1 MiB).
    """

    __slots__ = (
        "_buffer",
        "_chunk",
        "_error",
        "_filled",
        "_head",
        "_head_filled",
        "_max_payload",
        "_need",
        "_offset",
        "_region",
    )

    def __init__(self, buffer: Buffer, max_payload: int = DEFAULT_MAX_PAYLOAD) -> None:
        _check_range("max_payload", max_payload, MAX_MSG_LENGTH)
        self._buffer = buffer
        self._max_payload: Final = max_payload
        # Bytes the current frame needs in the buffer: the header alone until it is parsed,
        # then header + payload (codec_sv2's `missing_b` is this minus `len(buffer)`).
        self._need = HEADER_LEN
        # Stream offset of the current frame's first byte, for FrameError.offset.
        self._offset = 0
        # get_buffer()'s header area (never released) and how much of it is filled.
        self._head: Final = memoryview(bytearray(HEADER_LEN))
        self._head_filled = 0
        # The open buffer region get_buffer() fills, how much of it is filled, and the view
        # last handed out by get_buffer() (the head area, the region, or a tail of either).
        self._region: memoryview | None = None
        self._filled = 0
        self._chunk: memoryview | None = None
        self._error: FrameError | None = None

    @property
    def buffer(self) -> Buffer:
        """The buffer frames are assembled in."""
        return self._buffer

    @property
    def max_payload(self) -> int:
        """The largest payload a header may announce."""
        return self._max_payload

    @property
    def error(self) -> FrameError | None:
        """The `FrameError` that broke the decoder, or None while it is healthy."""
        return self._error

    @property
    def offset(self) -> int:
        """Stream offset (bytes since the decoder started) of the current frame's first byte."""
        return self._offset

    @property
    def pending(self) -> int:
        """Bytes of the current, incomplete frame received so far."""
        region = self._region
        unfilled = 0 if region is None else len(region) - self._filled
        return self._head_filled + len(self._buffer) - unfilled

    @property
    def missing(self) -> int:
        """Bytes still wanted before the current header or frame is complete."""
        region = self._region
        if region is not None:
            return len(region) - self._filled
        return self._need - len(self._buffer) - self._head_filled

    def _raise(self) -> NoReturn:
        err = self._error
        assert err is not None
        # A fresh exception each time: re-raising one instance would chain its tracebacks.
        raise FrameError(str(err), err.offset)

    def _fail(self, message: str, offset: int) -> NoReturn:
        self._error = FrameError(message, offset)
        self._raise()

    def _check_header(self, raw_ext: int, length: int) -> None:
        if length > self._max_payload:
            self._fail(f"payload length {length} exceeds max_payload={self._max_payload}", self._offset)
        if raw_ext & CHANNEL_MSG_FLAG and length < CHANNEL_ID_LEN:
            self._fail(
                f"channel message needs a {CHANNEL_ID_LEN}-byte channel id, msg_length is {length}",
                self._offset,
            )

    def writable(self) -> memoryview:
        """Reserve the missing bytes in the buffer and return them; fill *all* of them.

        This is codec_sv2's `writable()`: `buffer.get_writable(missing)`. Call `next_frame()`
        once the view is full; the view is valid until the next call on the decoder.

        Raises:
            FrameError: the decoder is broken.
            RuntimeError: a `get_buffer()` fill is in progress.
        """
        if self._error is not None:
            self._raise()
        if self._region is not None or self._head_filled or self._chunk is not None:
            raise RuntimeError("writable() while a get_buffer() fill is in progress; finish it with buffer_updated()")
        # Never negative: bytes written past the frame are reported by next_frame().
        return self._buffer.get_writable(max(0, self._need - len(self._buffer)))

    def next_frame(self) -> Frame | MissingBytes:
        """Return the next complete frame, or `MissingBytes` saying how many bytes to add.

        The frame owns its slice; release it when done.

        Raises:
            FrameError: the header announces more than `max_payload` bytes, or a channel
                message too short for its channel id. Nothing was reserved for the payload
                and the decoder is broken: drop the connection (or `clear()` it).
        """
        if self._error is not None:
            self._raise()
        region = self._region
        if region is not None:
            # A get_buffer() region is open; buffer_updated() closes it as soon as it is full.
            return MissingBytes(len(region) - self._filled)
        if self._head_filled:  # get_buffer() is collecting a header
            return MissingBytes(HEADER_LEN - self._head_filled)
        buffer = self._buffer
        have = len(buffer)
        need = self._need
        if have < need:
            return MissingBytes(need - have)
        if need == HEADER_LEN:
            with buffer.get_data_by_ref(HEADER_LEN) as head:
                raw_ext, type_len = _HEADER.unpack_from(head)
            length = type_len >> 8
            self._check_header(raw_ext, length)
            need = HEADER_LEN + length
            self._need = need
            if have < need:
                return MissingBytes(need - have)
        if have > need:
            # Only possible when someone else wrote into the buffer or overfilled writable().
            self._fail(
                f"buffer holds {have} bytes but the frame is {need}: bytes were added past its end",
                self._offset + need,
            )
        return self._take_frame()

    def _take_frame(self) -> Frame:
        data = self._buffer.get_data_owned()
        self._offset += self._need
        self._need = HEADER_LEN
        return Frame(data)

    def _drop_chunk(self) -> None:
        # The caller (asyncio's transport) may still reference the chunk: release it so that
        # it cannot be used past its time. The head area and the open region live on.
        chunk = self._chunk
        if chunk is not None:
            self._chunk = None
            if chunk is not self._head and chunk is not self._region:
                chunk.release()

    def get_buffer(self) -> memoryview:
        """A non-empty view of the bytes wanted next, for a partial fill; see `buffer_updated`.

        The view stays valid until `buffer_updated()`, `clear()` or the next `get_buffer()`.

        Raises:
            FrameError: the decoder is broken.
        """
        if self._error is not None:
            self._raise()
        self._drop_chunk()
        region = self._region
        if region is None:
            if self._need == HEADER_LEN and not len(self._buffer):
                filled = self._head_filled
                chunk = self._head[filled:] if filled else self._head
                self._chunk = chunk
                return chunk
            # Bytes were put in the buffer through writable(): continue in the buffer.
            missing = self._need - len(self._buffer)
            if missing <= 0:
                raise RuntimeError("get_buffer() with a complete frame pending; call next_frame() first")
            region = self._buffer.get_writable(missing)
            self._region = region
            self._filled = 0
        filled = self._filled
        chunk = region[filled:] if filled else region
        self._chunk = chunk
        return chunk

    def buffer_updated(self, nbytes: int) -> Frame | MissingBytes:
        """Record that the first `nbytes` of the last `get_buffer()` view were filled.

        Returns the frame this completed, or `MissingBytes` (then call `get_buffer()` again).

        Raises:
            FrameError: as `next_frame()`; nothing is reserved for a rejected header.
            ValueError: `nbytes` is negative or larger than the view.
        """
        chunk = self._chunk
        if chunk is None:
            raise RuntimeError("buffer_updated() without get_buffer()")
        if not 0 <= nbytes <= len(chunk):
            raise ValueError(f"nbytes must be in 0..{len(chunk)}, got {nbytes}")
        self._drop_chunk()
        region = self._region
        if region is None:  # the chunk was (part of) the head area
            filled = self._head_filled + nbytes
            self._head_filled = filled
            if filled < HEADER_LEN:
                return MissingBytes(HEADER_LEN - filled)
            head = self._head
            raw_ext, type_len = _HEADER.unpack_from(head)
            length = type_len >> 8
            self._check_header(raw_ext, length)  # on failure the header stays in the head area
            self._head_filled = 0
            size = HEADER_LEN + length
            self._need = size
            region = self._buffer.get_writable(size)
            region[:HEADER_LEN] = head
            if not length:
                region.release()
                return self._take_frame()
            self._region = region
            self._filled = HEADER_LEN
            return MissingBytes(length)
        filled = self._filled + nbytes
        size = len(region)
        if filled < size:
            self._filled = filled
            return MissingBytes(size - filled)
        self._close_region(region)
        return self.next_frame()

    def _close_region(self, region: memoryview) -> None:
        # Release the view before the buffer is used again: a live view would pin its memory.
        region.release()
        self._region = None
        self._filled = 0

    def feed(self, data: BytesLike) -> list[Frame]:
        """Copy `data` (any length) into the buffer; return the frames it completed, in order.

        If the bytes go bad after some frames completed, those frames are returned and the
        `FrameError` is raised by the next call; the rest of `data` is dropped.

        Raises:
            FrameError: the decoder is broken (and no frame completed in this call).
        """
        if self._error is not None:
            self._raise()
        frames: list[Frame] = []
        src = as_byte_view(data)
        pos = 0
        end = len(src)
        buffer = self._buffer
        try:
            while pos < end:
                if (
                    end - pos >= HEADER_LEN
                    and self._region is None
                    and not self._head_filled
                    and self._need == HEADER_LEN
                    and not len(buffer)
                ):
                    # Fast path: a whole header is in `data`, so check it there and reserve
                    # header + payload with one get_writable, skipping the head area.
                    raw_ext, type_len = _HEADER.unpack_from(src, pos)
                    length = type_len >> 8
                    try:
                        self._check_header(raw_ext, length)
                    except FrameError:
                        self._head[:] = src[pos : pos + HEADER_LEN]  # where the slow path keeps it
                        self._head_filled = HEADER_LEN
                        raise
                    size = HEADER_LEN + length
                    take = min(size, end - pos)
                    region = buffer.get_writable(size)
                    region[:take] = src[pos : pos + take]
                    pos += take
                    self._need = size
                    if take < size:  # the payload continues in later data
                        self._region = region
                        self._filled = take
                        continue
                    region.release()
                    frames.append(self._take_frame())
                    continue
                dst = self.get_buffer()
                take = min(len(dst), end - pos)
                dst[:take] = src[pos : pos + take]
                pos += take
                ev = self.buffer_updated(take)
                if not isinstance(ev, MissingBytes):
                    frames.append(ev)
        except FrameError:
            if not frames:
                raise
        return frames

    def clear(self) -> None:
        """Drop any partly received frame, give its memory back, and heal a broken decoder.

        The decoder then waits for a fresh header. Idempotent; call it when the connection ends.
        """
        received = self.pending
        self._drop_chunk()
        region = self._region
        if region is not None:
            self._close_region(region)
        self._head_filled = 0
        if len(self._buffer):
            self._buffer.get_data_owned().release()
        self._offset += received
        self._need = HEADER_LEN
        self._error = None

    def __repr__(self) -> str:
        state = "broken" if self._error is not None else f"missing={self.missing}"
        return f"<Decoder {state} max_payload={self._max_payload}>"


@final
class Encoder:
    """Writes frames into a `Buffer` and hands each one out as a single `Slice`.

    codec_sv2's `encode`: `get_writable(6 + len(payload))`, fill, `get_data_owned()`.
    """

    __slots__ = ("_buffer",)

    def __init__(self, buffer: Buffer) -> None:
        self._buffer = buffer

    @property
    def buffer(self) -> Buffer:
        """The buffer frames are written to."""
        return self._buffer

    def encode(
        self,
        msg_type: int,
        payload: BytesLike,
        *,
        extension_type: int = 0,
        channel_msg: bool = False,
    ) -> Slice:
        """Return one slice holding the header and `payload`; the caller owns (releases) it.

        A channel message's payload must start with its 4-byte little-endian channel id.
        Fails clean: on error nothing was written to the buffer.

        Raises:
            ValueError: a field is out of range, or a channel message is shorter than 4 bytes.
        """
        _check_range("msg_type", msg_type, 0xFF)
        _check_range("extension_type", extension_type, MAX_EXTENSION_TYPE)
        src = as_byte_view(payload)
        length = len(src)
        if length > MAX_MSG_LENGTH:
            raise ValueError(f"payload length must be <= {MAX_MSG_LENGTH}, got {length}")
        if channel_msg:
            if length < CHANNEL_ID_LEN:
                raise ValueError(f"a channel message payload must start with a 4-byte channel id, got {length} bytes")
            extension_type |= CHANNEL_MSG_FLAG
        buffer = self._buffer
        with buffer.get_writable(HEADER_LEN + length) as dst:
            _HEADER.pack_into(dst, 0, extension_type, msg_type | length << 8)
            dst[HEADER_LEN:] = src
        return buffer.get_data_owned()

    def encode_frame(
        self,
        msg_type: int,
        payload: BytesLike,
        *,
        extension_type: int = 0,
        channel_msg: bool = False,
    ) -> Frame:
        """`encode()`, wrapped in a `Frame`."""
        return Frame(self.encode(msg_type, payload, extension_type=extension_type, channel_msg=channel_msg))
