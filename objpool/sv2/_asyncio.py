"""`Sv2Protocol`: asyncio's zero-copy receive path (`BufferedProtocol`) feeding a `Decoder`.

Invariant owned here: the memoryview `get_buffer()` hands to the transport is either the
decoder's `get_buffer()` view or, with `read_ahead`, a private scratch area, and every byte
the transport reports through `buffer_updated()` reaches the decoder exactly once. An idle
connection (between frames) holds no buffer memory.
When the connection ends, the decoder is cleared, so a partial frame's memory goes back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, final

from .._errors import FrameError
from ._codec import Decoder, MissingBytes

if TYPE_CHECKING:
    from ._framing import Frame

__all__ = ["Sv2Protocol"]

FrameCallback = Callable[["Frame"], object]
CloseCallback = Callable[[BaseException | None], object]


@final
class Sv2Protocol(asyncio.BufferedProtocol):
    """Receive Sv2 frames straight into `decoder`'s buffer and hand each to `on_frame`.

    `on_frame` takes ownership of the frame (it must release it, or pass it on); to hand
    frames to another task, pass `queue.put_nowait`.

    By default each read asks for exactly the rest of the current header or payload, so a
    read never spans two frames (`Decoder.get_buffer`). A header is read into the decoder's
    own 6 bytes; once it is known (and passed the `max_payload` check), the decoder reserves
    header + payload in its buffer in one region and the payload is read straight into it,
    never copied. So an idle connection holds no buffer memory, which matters with
    thousands of connections drawing on one shared pool.

    With `read_ahead=N`, whenever fewer than `N` bytes are missing the transport reads up to
    `N` bytes into an `N`-byte scratch area of the protocol's own, which is then copied in
    (`Decoder.feed`): one read may complete many small frames, which saves system calls and
    event-loop turns; big payloads still land in place.

    On a `FrameError` the transport is aborted. If `on_frame` raises, asyncio treats it as a
    fatal protocol error: it logs it and closes the connection. When the connection ends, the decoder is
    cleared (a partly received frame's memory goes back) and `on_close` gets the exception:
    the transport's, the `FrameError`, a `FrameError` for a stream that ended inside a
    frame, or None for a clean end.
    """

    __slots__ = (
        "_decoder",
        "_error",
        "_on_close",
        "_on_frame",
        "_read_ahead",
        "_scratch_view",
        "_transport",
        "_using_scratch",
    )

    def __init__(
        self,
        decoder: Decoder,
        on_frame: FrameCallback,
        on_close: CloseCallback | None = None,
        *,
        read_ahead: int = 0,
    ) -> None:
        if read_ahead < 0:
            raise ValueError(f"read_ahead must be >= 0, got {read_ahead}")
        self._decoder = decoder
        self._on_frame = on_frame
        self._on_close = on_close
        self._transport: asyncio.Transport | None = None
        self._error: BaseException | None = None
        self._read_ahead = read_ahead
        self._scratch_view = memoryview(bytearray(read_ahead))
        self._using_scratch = False

    @property
    def decoder(self) -> Decoder:
        """The decoder frames are assembled by."""
        return self._decoder

    @property
    def transport(self) -> asyncio.Transport | None:
        """The connection's transport, None before `connection_made` and after `connection_lost`."""
        return self._transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def get_buffer(self, sizehint: int) -> memoryview:
        """Where the next bytes go (never empty); `sizehint` is ignored, as asyncio allows."""
        decoder = self._decoder
        if decoder.missing < self._read_ahead:
            self._using_scratch = True
            return self._scratch_view
        self._using_scratch = False
        return decoder.get_buffer()

    def buffer_updated(self, nbytes: int) -> None:
        """Advance the decoder by `nbytes` and deliver every frame that completed."""
        decoder = self._decoder
        try:
            if self._using_scratch:
                for frame in decoder.feed(self._scratch_view[:nbytes]):
                    self._on_frame(frame)
                if decoder.error is not None:  # feed() returned frames, then hit bad bytes
                    self._fail(decoder.error)
            else:
                ev = decoder.buffer_updated(nbytes)
                if not isinstance(ev, MissingBytes):
                    self._on_frame(ev)
        except FrameError as exc:
            self._fail(exc)

    def _fail(self, exc: FrameError) -> None:
        self._error = exc
        if self._transport is not None:
            self._transport.abort()

    def eof_received(self) -> bool | None:
        decoder = self._decoder
        if self._error is None and decoder.pending:
            self._error = FrameError(
                f"the stream ended {decoder.pending} bytes into a frame, {decoder.missing} short",
                decoder.offset,
            )
        return None  # let the transport close itself

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._decoder.clear()
        if self._on_close is not None:
            self._on_close(exc if exc is not None else self._error)
