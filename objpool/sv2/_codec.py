"""Sans-IO Sv2 decoder and encoder over any `Buffer`, driven the way codec_sv2 drives it.

Invariant owned here: the decoder's `Buffer` holds at most the bytes of one frame, header
first; a frame leaves it only as one `get_data_owned()` slice. A header is collected in the
decoder's own 6 bytes and checked (`max_payload`, channel id) before anything is reserved in
the buffer, and a frame's memory then grows with the bytes that arrive, in steps of at most
`FRAME_STEP` bytes: a peer that announces a large frame and stalls pins no more than one step
beyond what it actually sent, whatever the header announced. Payloads still land in place.
Once a check fails the decoder is broken: every call raises that `FrameError` again until
`clear()`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, NoReturn, final

from typing_extensions import Buffer as ReadableBuffer

from .._compiled import COMPILED
from .._errors import FrameError
from .._validate import as_byte_view, check_int
from ._buffer import check_buffer
from ._decoding import FRAME_STEP, MissingBytes, _Phase
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

__all__ = ["Decoder", "Encoder"]

_WAIT_HEADER: Final = _Phase.HEADER
_IN_PAYLOAD: Final = _Phase.PAYLOAD
_BROKEN: Final = _Phase.BROKEN





class _DecoderCore:
    """`Decoder`'s hot path: `feed()` with whole headers at hand, and completing a frame.

    When the install compiled it, `objpool.sv2._ccodec.DecoderCore` replaces this class: the
    same methods and messages, checked by the same tests. Everything else stays in
    `Decoder`, which the core calls back into.
    """

    __slots__ = (
        "_buffer",
        "_chunk",
        "_error",
        "_got",
        "_head",
        "_head_filled",
        "_max_payload",
        "_offset",
        "_phase",
        "_raw_ext",
        "_region",
        "_region_filled",
        "_region_size",
        "_size",
        "_type_len",
        "_whole",
    )

    _buffer: Buffer
    _chunk: memoryview | None
    _error: FrameError | None
    _got: int
    _head: memoryview  # set once, never released
    _head_filled: int
    _max_payload: int
    _offset: int
    _phase: _Phase
    _raw_ext: int
    _region: memoryview | None
    _region_filled: int
    _region_size: int
    _size: int
    _type_len: int
    _whole: bool

    def feed(self, data: ReadableBuffer) -> list[Frame]:
        """Copy `data` (any bytes-like object, any length) in; return the frames it completed.

        If the bytes go bad after some frames completed, those frames are returned and the
        `FrameError` is raised by the next call; the rest of `data` is dropped.

        Raises:
            FrameError: the decoder is broken (and no frame completed in this call).
            TypeError: `data` is not a bytes-like object.
        """
        if self._phase is _BROKEN:
            self._raise()
        src = as_byte_view(data)
        if self._chunk is not None:
            self._drop_chunk()
        frames: list[Frame] = []
        pos = 0
        end = len(src)
        try:
            while pos < end:
                if self._phase is _WAIT_HEADER and not self._head_filled and end - pos >= HEADER_LEN:
                    # Fast path: the whole header is in `data`: parse it there, once, and
                    # copy it with as much of its payload as `data` holds.
                    raw_ext, type_len = _HEADER.unpack_from(src, pos)
                    ev = self._begin(raw_ext, type_len, src, pos, end - pos - HEADER_LEN)
                    # _begin took the frame's bytes from `data`: all of them, or _got so far.
                    pos += self._size if ev.__class__ is Frame else self._got
                else:
                    dst = self._want(end - pos)
                    take = min(len(dst), end - pos)
                    dst[:take] = src[pos : pos + take]
                    pos += take
                    ev = self._advance(take)
                if ev.__class__ is Frame:
                    frames.append(ev)
        except FrameError:
            if not frames:
                raise
        return frames

    def _begin(self, raw_ext: int, type_len: int, src: memoryview, pos: int, avail: int) -> Frame | MissingBytes:
        """Start a frame whose header is `src[pos:pos+6]`, followed there by `avail` bytes.

        Checks the header, reserves the first step (header included) and copies the header
        and as much of the payload as `src` holds into it.
        """
        length = type_len >> 8
        try:
            self._check_header(raw_ext, length)
        except FrameError:
            if src is not self._head:  # keep the rejected header where pending counts it
                self._head[:] = src[pos : pos + HEADER_LEN]
            self._head_filled = HEADER_LEN
            raise
        size = HEADER_LEN + length
        step = HEADER_LEN + min(length, avail if avail > FRAME_STEP else FRAME_STEP)
        region = self._buffer.get_writable(step)
        take = HEADER_LEN + min(avail, step - HEADER_LEN)
        region[:take] = src[pos : pos + take]
        self._raw_ext = raw_ext
        self._type_len = type_len
        self._size = size
        self._got = take
        self._head_filled = 0
        self._phase = _IN_PAYLOAD
        if take == size:
            region.release()
            return self._take()
        if take < step:
            self._region = region
            self._region_size = step
            self._region_filled = take
        else:
            region.release()  # the step is full; the next _want() opens another
        return MissingBytes(size - take)

    def _take(self) -> Frame:
        """Hand the complete frame over as one slice and wait for the next header."""
        data = self._buffer.get_data_owned()
        size = self._size
        offset = self._offset
        self._offset = offset + size
        self._phase = _WAIT_HEADER
        self._got = 0  # _size stays: feed() reads it to know how much the frame took
        if data._len != size:  # Slice.__len__ without the call: ~5% of a small frame
            n = data._len
            data.release()
            self._fail(f"the buffer handed over {n} bytes for a {size}-byte frame: something else wrote into it", offset)
        return Frame._checked(data, self._raw_ext, self._type_len)

    def _raise(self) -> NoReturn:
        raise NotImplementedError  # Decoder's

    def _drop_chunk(self) -> None:
        raise NotImplementedError  # Decoder's

    def _want(self, avail: int) -> memoryview:
        raise NotImplementedError  # Decoder's

    def _advance(self, n: int) -> Frame | MissingBytes:
        raise NotImplementedError  # Decoder's

    def _check_header(self, raw_ext: int, length: int) -> None:
        raise NotImplementedError  # Decoder's

    def _fail(self, message: str, offset: int) -> NoReturn:
        raise NotImplementedError  # Decoder's


if COMPILED and not TYPE_CHECKING:  # type checkers read the Python class above, the reference
    from ._ccodec import DecoderCore as _DecoderCore


@final
class Decoder(_DecoderCore):
    """Turns bytes into `Frame`s inside one `Buffer`, codec_sv2's `StandardDecoder` loop.

    Three ways to feed it, from lowest to highest level; they mix freely:

    - codec_sv2's: fill *all* of `writable()`, then call `next_frame()`, which returns a
      `Frame` or `MissingBytes(n)`; repeat.
    - asyncio's: `get_buffer()` returns the part still to fill (never empty), and
      `buffer_updated(n)` records that `n` bytes of it were filled, however few: short reads
      are fine. It returns the completed `Frame` or `MissingBytes`.
    - `feed(data)` copies chunks of any size in and returns the frames they complete.

    A decoder is always in one of three phases: waiting for a header (its bytes collect in a
    6-byte area of the decoder's own, so an idle decoder holds no buffer memory), receiving
    a payload (header and payload go to the buffer, reserved `FRAME_STEP` bytes at a time at
    most, and the payload is received in place), or broken.

    Args:
        buffer: where frames are assembled; the decoder must be its only user.
        max_payload: the largest `msg_length` accepted, 0..0xffffff (default 1 MiB).

    Raises:
        TypeError: `buffer` is not an Sv2 `Buffer`, or `max_payload` is not an int.
        ValueError: `max_payload` is out of range.
    """

    __slots__ = ()

    def __init__(self, buffer: Buffer, max_payload: int = DEFAULT_MAX_PAYLOAD) -> None:
        check_buffer(buffer)
        _check_range("max_payload", max_payload, MAX_MSG_LENGTH)
        self._buffer = buffer
        self._max_payload = max_payload  # set once: read-only by convention
        self._phase = _WAIT_HEADER
        # Waiting for a header: where it collects (never released) and how much of it came.
        self._head = memoryview(bytearray(HEADER_LEN))
        self._head_filled = 0
        # Receiving a payload: the frame's header fields, its size (header included), the
        # bytes of it in the buffer so far, and the open step of buffer memory being filled.
        self._raw_ext = 0
        self._type_len = 0
        self._size = 0
        self._got = 0
        self._region: memoryview | None = None
        self._region_size = 0
        self._region_filled = 0
        # The view last handed out by get_buffer() or writable() (the head area, the open
        # step, or a tail of either), and whether it came from writable(), whose contract
        # is "fill all of it": next_frame() then counts it as filled.
        self._chunk: memoryview | None = None
        self._whole = False
        self._error: FrameError | None = None
        # Stream offset of the current frame's first byte, for FrameError.offset.
        self._offset = 0

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
        """Bytes of the current, incomplete frame received so far (header included)."""
        return self._head_filled + self._got

    @property
    def missing(self) -> int:
        """Bytes still wanted before the current header, or the current frame, is complete."""
        if self._phase is _IN_PAYLOAD:
            return self._size - self._got
        return HEADER_LEN - self._head_filled

    # ---- the three ways in ---------------------------------------------------------------

    def writable(self) -> memoryview:
        """The next bytes to fill, never empty; fill *all* of them, then call `next_frame()`.

        codec_sv2's `writable()`: the rest of the header, then the payload, at most
        `FRAME_STEP` bytes at a time. The view is valid until the next call on the decoder.

        Raises:
            FrameError: the decoder is broken.
        """
        chunk = self.get_buffer()
        self._whole = True
        return chunk

    def next_frame(self) -> Frame | MissingBytes:
        """Count the last `writable()` view as filled; return a completed frame or `MissingBytes`.

        `MissingBytes(n)`: the current header or frame still needs `n` bytes.

        The frame owns its slice; release it when done.

        Raises:
            FrameError: the header announces more than `max_payload` bytes, or a channel
                message too short for its channel id. Nothing was reserved for the payload
                and the decoder is broken: drop the connection (or `clear()` it).
        """
        if self._phase is _BROKEN:
            self._raise()
        chunk = self._chunk
        if chunk is None or not self._whole:
            return MissingBytes(self.missing)
        n = len(chunk)
        self._drop_chunk()
        return self._advance(n)

    def get_buffer(self) -> memoryview:
        """A non-empty view of the bytes wanted next, for a partial fill; see `buffer_updated`.

        The view stays valid until `buffer_updated()`, `clear()` or the next `get_buffer()`.

        Raises:
            FrameError: the decoder is broken.
        """
        if self._phase is _BROKEN:
            self._raise()
        if self._chunk is not None:
            self._drop_chunk()
        chunk = self._chunk = self._want(0)
        self._whole = False
        return chunk

    def buffer_updated(self, nbytes: int) -> Frame | MissingBytes:
        """Record that the first `nbytes` of the last `get_buffer()` view were filled.

        Returns the frame this completed, or `MissingBytes` (then call `get_buffer()` again).

        Raises:
            FrameError: as `next_frame()`; nothing is reserved for a rejected header.
            ValueError: `nbytes` is negative or larger than the view.
            RuntimeError: no `get_buffer()` view is outstanding.
        """
        if self._phase is _BROKEN:
            self._raise()
        chunk = self._chunk
        if chunk is None:
            raise RuntimeError("buffer_updated() without get_buffer()")
        if nbytes.__class__ is not int or not 0 <= nbytes <= len(chunk):
            check_int("nbytes", nbytes, 0, len(chunk))  # raises, naming the rule
        # _drop_chunk(), inlined: the call costs ~480 Ir a read, 2.5% of a 64-byte frame.
        self._chunk = None
        if chunk is not self._head and chunk is not self._region:
            chunk.release()  # the transport must not write through it any more
        return self._advance(nbytes)

    def clear(self) -> None:
        """Drop any partly received frame, give its memory back, and heal a broken decoder.

        The decoder then waits for a fresh header. Idempotent; call it when the connection ends.
        """
        received = self.pending
        self._drop_chunk()
        self._close_region()
        if len(self._buffer):
            self._buffer.get_data_owned().release()
        self._head_filled = 0
        self._got = 0
        self._size = 0
        self._offset += received
        self._phase = _WAIT_HEADER
        self._error = None

    # ---- the phases, in one place --------------------------------------------------------

    def _want(self, avail: int) -> memoryview:
        """The bytes to fill next (never empty): the rest of the header or of the open step.

        `avail` is how many bytes the caller has at hand: a new step may be that large.
        """
        if self._phase is _WAIT_HEADER:
            filled = self._head_filled
            return self._head[filled:] if filled else self._head
        region = self._region
        if region is None:
            step = min(self._size - self._got, avail if avail > FRAME_STEP else FRAME_STEP)
            region = self._region = self._buffer.get_writable(step)
            self._region_size = step
            self._region_filled = 0
            return region
        filled = self._region_filled
        return region[filled:] if filled else region

    def _advance(self, n: int) -> Frame | MissingBytes:
        """Count `n` more bytes of the view `_want()` returned as filled."""
        if self._phase is _WAIT_HEADER:
            filled = self._head_filled + n
            self._head_filled = filled
            if filled < HEADER_LEN:
                return MissingBytes(HEADER_LEN - filled)
            raw_ext, type_len = _HEADER.unpack_from(self._head)
            return self._begin(raw_ext, type_len, self._head, 0, 0)
        got = self._got + n
        self._got = got
        if got == self._size:
            self._close_region()
            return self._take()
        filled = self._region_filled + n
        if filled == self._region_size:
            self._close_region()  # the next _want() opens the next step
        else:
            self._region_filled = filled
        return MissingBytes(self._size - got)

    def _check_header(self, raw_ext: int, length: int) -> None:
        if length > self._max_payload:
            self._fail(f"payload length {length} exceeds max_payload={self._max_payload}", self._offset)
        if raw_ext & CHANNEL_MSG_FLAG and length < CHANNEL_ID_LEN:
            self._fail(
                f"channel message needs a {CHANNEL_ID_LEN}-byte channel id, msg_length is {length}",
                self._offset,
            )

    def _fail(self, message: str, offset: int) -> NoReturn:
        self._error = FrameError(message, offset)
        self._phase = _BROKEN
        self._drop_chunk()
        self._raise()

    def _raise(self) -> NoReturn:
        err = self._error
        assert err is not None
        # A fresh exception each time: re-raising one instance would chain its tracebacks.
        raise FrameError(str(err), err.offset)

    def _close_region(self) -> None:
        # Release the view before the buffer is used again: a live view would pin its memory.
        region = self._region
        if region is not None:
            region.release()
            self._region = None
            self._region_filled = 0

    def _drop_chunk(self) -> None:
        # The caller (asyncio's transport) may still reference the chunk: release it so that
        # it cannot be used past its time. The head area and the open step live on.
        chunk = self._chunk
        if chunk is not None:
            self._chunk = None
            if chunk is not self._head and chunk is not self._region:
                chunk.release()

    def __repr__(self) -> str:
        state = "broken" if self._phase is _BROKEN else f"missing={self.missing}"
        return f"<Decoder {state} max_payload={self._max_payload}>"


@final
class Encoder:
    """Writes frames into a `Buffer` and hands each one out as a single `Slice`.

    codec_sv2's `encode`: `get_writable(6 + len(payload))`, fill, `get_data_owned()`.
    """

    __slots__ = ("_buffer",)

    def __init__(self, buffer: Buffer) -> None:
        """Raises `TypeError` when `buffer` is not an Sv2 `Buffer`."""
        check_buffer(buffer)
        self._buffer = buffer

    @property
    def buffer(self) -> Buffer:
        """The buffer frames are written to."""
        return self._buffer

    def encode(
        self,
        msg_type: int,
        payload: ReadableBuffer,
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
        src = as_byte_view(payload, "payload")
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
        payload: ReadableBuffer,
        *,
        extension_type: int = 0,
        channel_msg: bool = False,
    ) -> Frame:
        """`encode()`, wrapped in a `Frame`."""
        return Frame(self.encode(msg_type, payload, extension_type=extension_type, channel_msg=channel_msg))
