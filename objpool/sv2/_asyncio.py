"""`Sv2Protocol`: asyncio's zero-copy receive path (`BufferedProtocol`) feeding a `Decoder`.

Invariant owned here: the memoryview `get_buffer()` hands to the transport is either the
decoder's `get_buffer()` view or, with `read_ahead`, a private scratch area, and every byte
the transport reports through `buffer_updated()` reaches the decoder exactly once. An idle
connection (between frames) holds no buffer memory, and a connection whose consumer keeps
frames holds at most `max_unreleased` bytes of them (plus the last frame) before it stops
reading. With a `PooledBuffer` that waits, no header is read in full before its frame has
memory to go to, so the loop never blocks on the pool. When the connection ends, the decoder
is cleared and any `ByteBuffer` held for the next frame goes back, so no memory is pinned.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, final

from .._errors import FrameError, PoolClosedError, PoolExhaustedError
from .._validate import check_callable, check_int, check_seconds, reject
from ._codec import Decoder
from ._decoding import FRAME_STEP, MissingBytes
from ._framing import HEADER_LEN
from ._pooled_buffer import PooledBuffer

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

    By default each read asks for exactly the rest of the current header or payload step, so
    a read never spans two frames (`Decoder.get_buffer`). A header is read into the decoder's
    own 6 bytes; once it is known (and passed the `max_payload` check), the decoder reserves
    the frame in its buffer, `FRAME_STEP` bytes at a time at most, and the payload is read
    straight into it, never copied. So an idle connection holds no buffer memory, and one
    that announced a large frame and stalled holds no more than it sent plus one step.

    With `read_ahead=N`, whenever fewer than `N` bytes are missing the transport reads up to
    `N` bytes into an `N`-byte scratch area of the protocol's own, which is then copied in
    (`Decoder.feed`): one read may complete many small frames, which saves system calls and
    event-loop turns; big payloads still land in place.

    Backpressure: frames delivered and not yet released count against `max_unreleased`
    bytes (on the wire: header plus payload). Past it, the protocol calls
    `transport.pause_reading()`; once releases, on any thread, bring the count down to half
    of it, reading resumes. The default is the larger of the decoder's `max_payload` and
    `FRAME_STEP`, so one frame of any allowed size can always be delivered.

    Waiting for pooled memory: when the decoder's buffer is a `PooledBuffer` built with a
    `timeout` (not 0) and its pool is exhausted as a frame begins, the protocol reads at
    most all but the last byte of the header into the decoder's own 6 bytes, pauses reading,
    and waits in the pool's line (`pool.acquire(timeout)`) without blocking the loop; the
    `ByteBuffer` it gets is the frame's, and reading resumes. If `timeout` runs out (or the
    pool closes) the frame goes to system memory instead. So with `timeout=None`, any number
    of connections share the pool's memory and no more. Such a protocol reads exactly (no
    `read_ahead`), since one read ahead could start many frames.

    `frame_timeout` (seconds, default None: no limit) bounds how long a frame may take from
    its first byte to its last while reading is not paused; past it the connection is
    aborted with a `FrameError`, so a peer that stalls mid-frame cannot hold memory forever.

    On a `FrameError` the transport is aborted. If `on_frame` raises, asyncio treats it as a
    fatal protocol error: it logs it and closes the connection. When the connection ends, the
    decoder is cleared (a partly received frame's memory goes back) and `on_close` gets the
    exception: the transport's, the `FrameError`, a `FrameError` for a stream that ended
    inside a frame, or None for a clean end.

    Raises:
        TypeError: an argument has the wrong type.
        ValueError: `read_ahead` or `max_unreleased` is negative, `frame_timeout` is not
            positive, or `read_ahead` is set with a `PooledBuffer` that waits.
    """

    __slots__ = (
        "_count_lock",
        "_decoder",
        "_error",
        "_frame_timeout",
        "_loop",
        "_max_unreleased",
        "_memory_task",
        "_on_close",
        "_on_frame",
        "_paused",
        "_read_ahead",
        "_resume_at",
        "_short_view",
        "_scratch_view",
        "_timer",
        "_transport",
        "_unreleased",
        "_using_scratch",
        "_waits",
        "_wake_pending",
    )

    def __init__(
        self,
        decoder: Decoder,
        on_frame: FrameCallback,
        on_close: CloseCallback | None = None,
        *,
        read_ahead: int = 0,
        max_unreleased: int | None = None,
        frame_timeout: float | None = None,
    ) -> None:
        if not isinstance(decoder, Decoder):
            reject(TypeError, "decoder", "a Decoder", decoder)
        check_callable("on_frame", on_frame)
        if on_close is not None:
            check_callable("on_close", on_close)
        self._read_ahead = check_int("read_ahead", read_ahead)
        buffer = decoder.buffer
        # The buffer this protocol must find memory for before a frame begins, if it waits.
        waits = self._waits = buffer if isinstance(buffer, PooledBuffer) and buffer.timeout != 0 else None
        if waits is not None and read_ahead:
            raise ValueError(
                f"read_ahead={read_ahead} cannot be used with a PooledBuffer that waits"
                f" (timeout={waits.timeout}): one read ahead could start many frames;"
                " use read_ahead=0, or a PooledBuffer with timeout=0"
            )
        if max_unreleased is None:
            max_unreleased = max(decoder.max_payload, FRAME_STEP)
        self._max_unreleased = check_int("max_unreleased", max_unreleased)
        self._resume_at = self._max_unreleased // 2
        self._frame_timeout = check_seconds("frame_timeout", frame_timeout, positive=True, none_ok=True)
        self._decoder = decoder
        self._on_frame = on_frame
        self._on_close = on_close
        self._transport: asyncio.Transport | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._error: BaseException | None = None
        self._scratch_view = memoryview(bytearray(read_ahead))
        self._using_scratch = False
        self._timer: asyncio.TimerHandle | None = None
        # Frames released on other threads update these: _count_lock guards them (and only
        # them: no user code and no transport call runs while it is held).
        self._count_lock = threading.Lock()
        self._unreleased = 0
        self._paused = False
        self._wake_pending = False
        # Waiting for pooled memory (loop thread only): the task waiting in the pool's line,
        # and the shortened header view handed to the transport meanwhile.
        self._memory_task: asyncio.Task[None] | None = None
        self._short_view: memoryview | None = None

    @property
    def decoder(self) -> Decoder:
        """The decoder frames are assembled by."""
        return self._decoder

    @property
    def transport(self) -> asyncio.Transport | None:
        """The connection's transport, None before `connection_made` and after `connection_lost`."""
        return self._transport

    @property
    def max_unreleased(self) -> int:
        """Bytes of delivered, unreleased frames past which reading pauses."""
        return self._max_unreleased

    @property
    def unreleased(self) -> int:
        """Bytes (header plus payload) of frames delivered and not yet released."""
        return self._unreleased

    @property
    def reading_paused(self) -> bool:
        """Whether reading is paused: too many delivered frames unreleased, or waiting for memory."""
        return self._paused or self._memory_task is not None

    @property
    def waiting_for_memory(self) -> bool:
        """Whether reading is paused until the pool lends this connection's next frame a buffer."""
        return self._memory_task is not None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._loop = asyncio.get_running_loop()

    def get_buffer(self, sizehint: int) -> memoryview:
        """Where the next bytes go (never empty); `sizehint` is ignored, as asyncio allows."""
        decoder = self._decoder
        if decoder.missing < self._read_ahead:
            self._using_scratch = True
            return self._scratch_view
        self._using_scratch = False
        if self._waits is not None and decoder.pending < HEADER_LEN:
            return self._header_view(self._waits)
        return decoder.get_buffer()

    def buffer_updated(self, nbytes: int) -> None:
        """Advance the decoder by `nbytes` and deliver every frame that completed."""
        decoder = self._decoder
        if self._short_view is not None:
            self._short_view.release()
            self._short_view = None
        try:
            if self._using_scratch:
                for frame in decoder.feed(self._scratch_view[:nbytes]):
                    self._deliver(frame)
                if decoder.error is not None:  # feed() returned frames, then hit bad bytes
                    self._fail(decoder.error)
                    return
            else:
                ev = decoder.buffer_updated(nbytes)
                if not isinstance(ev, MissingBytes):
                    self._deliver(ev)
        except FrameError as exc:
            self._fail(exc)
            return
        if self._frame_timeout is not None:
            self._watch_frame()

    # ---- backpressure --------------------------------------------------------------------

    def _deliver(self, frame: Frame) -> None:
        n = len(frame)
        frame.data._on_release_also(functools.partial(self._released, n))
        with self._count_lock:
            self._unreleased += n
        self._on_frame(frame)  # it may release the frame at once: count before, check after
        with self._count_lock:
            pause = not self._paused and self._unreleased > self._max_unreleased
            if pause:
                self._paused = True
        if pause:
            self._stop_frame_timer()  # a paused connection is not a stalled peer
            transport = self._transport
            if transport is not None and self._memory_task is None:
                transport.pause_reading()

    def _released(self, n: int) -> None:
        # Runs on whichever thread released the frame, possibly in the garbage collector.
        with self._count_lock:
            self._unreleased -= n
            wake = self._paused and not self._wake_pending and self._unreleased <= self._resume_at
            if wake:
                self._wake_pending = True
        if wake and self._loop is not None:
            try:
                self._loop.call_soon_threadsafe(self._resume)
            except RuntimeError:  # the loop is closed: there is no reading left to resume
                pass

    def _resume(self) -> None:
        with self._count_lock:
            self._wake_pending = False
            resume = self._paused and self._unreleased <= self._resume_at
            if resume:
                self._paused = False
        transport = self._transport
        if resume and transport is not None and self._memory_task is None:
            transport.resume_reading()
            if self._frame_timeout is not None:
                self._watch_frame()

    # ---- waiting for pooled memory -------------------------------------------------------

    def _header_view(self, buffer: PooledBuffer) -> memoryview:
        """Where the header's next bytes go; all but its last byte while the frame has no memory.

        The header's last byte starts the frame (the decoder reserves its memory at once),
        so it is read only once the buffer holds a `ByteBuffer` or has chosen system memory.
        """
        view = self._decoder.get_buffer()
        if buffer._ready():
            return view
        if len(view) == 1:
            # The transport reads even though reading was paused (a transport may finish a
            # read in progress): never block the loop; this one frame uses system memory.
            buffer._move_to_system_memory()
            return view
        self._wait_for_memory(buffer)
        short = self._short_view = view[:-1]
        return short

    def _wait_for_memory(self, buffer: PooledBuffer) -> None:
        if self._memory_task is not None:
            return
        loop = self._loop
        transport = self._transport
        if loop is None or transport is None:
            return
        self._stop_frame_timer()  # the wait is ours, not a stalled peer's
        if not self._paused:
            transport.pause_reading()
        self._memory_task = loop.create_task(self._await_memory(buffer))

    async def _await_memory(self, buffer: PooledBuffer) -> None:
        """Wait in the pool's line for the next frame's `ByteBuffer`, then resume reading.

        A cancellation (the connection ended) propagates from the wait: the pool's line
        passes on a buffer handed over at that moment, and `connection_lost()` cleans up.
        """
        try:
            ref = await buffer.pool.acquire(buffer.timeout)
        except (PoolExhaustedError, PoolClosedError):
            ref = None
        self._memory_task = None
        if self._transport is None:  # the connection ended as the buffer came
            if ref is not None:
                ref.release()
            return
        if ref is None:
            buffer._move_to_system_memory()  # no memory in time: this frame is the fallback's
        else:
            buffer._hold(ref)
        if not self._paused:
            self._transport.resume_reading()
            if self._frame_timeout is not None:
                self._watch_frame()

    # ---- stalled peers -------------------------------------------------------------------

    def _watch_frame(self) -> None:
        """Time the frame in progress; stop timing between frames."""
        if self._decoder.pending:
            if self._timer is None and not self.reading_paused and self._loop is not None:
                assert self._frame_timeout is not None
                self._timer = self._loop.call_later(self._frame_timeout, self._frame_timed_out)
        else:
            self._stop_frame_timer()

    def _stop_frame_timer(self) -> None:
        timer = self._timer
        if timer is not None:
            self._timer = None
            timer.cancel()

    def _frame_timed_out(self) -> None:
        self._timer = None
        decoder = self._decoder
        self._fail(
            FrameError(
                f"frame_timeout={self._frame_timeout}: the frame is still {decoder.missing} bytes "
                f"short after {decoder.pending} bytes",
                decoder.offset,
            )
        )

    # ---- the end -------------------------------------------------------------------------

    def _fail(self, exc: FrameError) -> None:
        self._error = exc
        self._stop_frame_timer()
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
        self._stop_frame_timer()
        task = self._memory_task
        if task is not None:
            self._memory_task = None
            task.cancel()
        if self._short_view is not None:
            self._short_view.release()
            self._short_view = None
        self._decoder.clear()
        if self._waits is not None:
            self._waits._give_back()  # the ByteBuffer held for a next frame that never came
        if self._on_close is not None:
            self._on_close(exc if exc is not None else self._error)
