"""`Sv2Protocol` driven step by step (short reads) and over real loopback sockets."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import assert_type

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from objpool import ByteBuffer, FrameError, Pool
from objpool.sv2 import (
    CHANNEL_MSG_FLAG,
    FRAME_STEP,
    Buffer,
    BufferFromSystemMemory,
    PooledBuffer,
    Decoder,
    Frame,
    Sv2Protocol,
)
from sv2_buffers import BUFFERS

# Example counts follow the Hypothesis profile from conftest.py (100 by default).
SCALE: int = settings().max_examples


Spec = tuple[int, bytes]  # msg_type, payload


def wire(msg_type: int, payload: bytes, raw_ext: int = 0) -> bytes:
    return raw_ext.to_bytes(2, "little") + bytes([msg_type]) + len(payload).to_bytes(3, "little") + payload


def frames_of(specs: list[Spec]) -> bytes:
    return b"".join(wire(t, p) for t, p in specs)


specs_strategy = st.lists(st.tuples(st.integers(0, 255), st.binary(max_size=200)), min_size=1, max_size=8)


@pytest.mark.parametrize("sizehint", [-1, 0, 1, 1 << 20])
def test_get_buffer_is_never_empty(sizehint: int) -> None:
    proto = Sv2Protocol(Decoder(BufferFromSystemMemory()), print)
    view = proto.get_buffer(sizehint)
    assert 6 == len(view)
    assert 2 == len(view[1:3])  # sliceable, as recv_into needs


@pytest.mark.parametrize("read_ahead", [0, 16, 4096])
@settings(max_examples=SCALE * 2 // 5, deadline=None)
@given(specs=specs_strategy, data=st.data())
def test_short_reads_as_a_transport_makes_them(read_ahead: int, specs: list[Spec], data: st.DataObject) -> None:
    """What asyncio's selector transport does: get_buffer(-1), recv_into (any count), buffer_updated."""
    got: list[Frame] = []
    proto = Sv2Protocol(Decoder(BufferFromSystemMemory()), got.append, read_ahead=read_ahead)
    stream = memoryview(frames_of(specs))
    pos = 0
    try:
        while pos < len(stream):
            buf = proto.get_buffer(-1)
            # Hypothesis may stop an example at any draw: the finally releases its frames.
            n = data.draw(st.integers(1, min(len(buf), len(stream) - pos)), label="recv")
            buf[:n] = stream[pos : pos + n]
            pos += n
            proto.buffer_updated(n)
        assert specs == [(f.msg_type, bytes(f.payload)) for f in got]
    finally:
        for f in got:
            f.release()


@pytest.mark.parametrize("read_ahead", [0, 4096])
def test_an_idle_connection_holds_no_pooled_memory(read_ahead: int) -> None:
    """Headers go to a scratch area; memory is taken only once a frame's size is known."""
    pool = Pool(lambda: ByteBuffer(1024), 1)
    got: list[Frame] = []
    proto = Sv2Protocol(Decoder(PooledBuffer(pool)), got.append, read_ahead=read_ahead)
    stream = memoryview(wire(1, bytes(100)))
    assert 0 == pool.stats().lent
    buf = proto.get_buffer(-1)
    buf[:6] = stream[:6]
    proto.buffer_updated(6)
    assert 1 == pool.stats().lent  # reserved for header + payload, in one ByteBuffer
    buf = proto.get_buffer(-1)
    assert (100 if read_ahead == 0 else read_ahead) == len(buf)
    buf[:100] = stream[6:]
    proto.buffer_updated(100)
    assert max(6, read_ahead) == len(proto.get_buffer(-1))  # idle again: the scratch area
    [frame] = got
    assert frame.data.from_pool
    frame.release()
    assert 0 == pool.stats().lent


def test_read_ahead_delivers_many_frames_from_one_read() -> None:
    got: list[Frame] = []
    proto = Sv2Protocol(Decoder(BufferFromSystemMemory()), got.append, read_ahead=4096)
    stream = frames_of([(i, bytes([i]) * i) for i in range(50)])
    buf = proto.get_buffer(-1)
    assert 4096 == len(buf)
    buf[: len(stream)] = stream
    proto.buffer_updated(len(stream))
    assert list(range(50)) == [f.msg_type for f in got]
    for f in got:
        f.release()


def test_bad_bytes_without_a_transport_and_loss_without_on_close() -> None:
    """Driven by hand: a FrameError is remembered, and connection_lost() clears the decoder."""
    got: list[Frame] = []
    decoder = Decoder(BufferFromSystemMemory(), max_payload=1)
    proto = Sv2Protocol(decoder, got.append)
    buf = proto.get_buffer(-1)
    buf[:] = wire(1, b"xy")[:6]
    proto.buffer_updated(6)
    assert decoder.error is not None
    assert proto.transport is None
    proto.connection_lost(None)
    assert 0 == len(decoder.buffer)
    assert "<Decoder missing=6 max_payload=1>" == repr(decoder)  # cleared: no longer broken
    assert [] == got


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "message"),
    [
        ((bytearray(10), print), {}, TypeError, r"^decoder must be a Decoder, got bytearray "),
        ((None, print), {}, TypeError, r"^on_frame must be callable, got int 3$"),
        ((None, print, "x"), {}, TypeError, r"^on_close must be callable, got str 'x'$"),
        ((None, print), {"read_ahead": -1}, ValueError, r"^read_ahead must be >= 0, got int -1$"),
        ((None, print), {"max_unreleased": -1}, ValueError, r"^max_unreleased must be >= 0, got int -1$"),
        ((None, print), {"max_unreleased": 1.5}, TypeError, r"^max_unreleased must be an int, got float 1\.5$"),
        ((None, print), {"frame_timeout": 0}, ValueError, r"^frame_timeout must be a number of seconds > 0 or None, got int 0$"),
        ((None, print), {"frame_timeout": "1"}, TypeError, r"^frame_timeout must be a number of seconds > 0 or None, got str '1'$"),
    ],
)
def test_bad_arguments_are_refused_at_once(
    args: tuple[object, ...], kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    decoder = Decoder(BufferFromSystemMemory())
    filled = tuple(decoder if a is None else a for a in args)
    if message.startswith("^on_frame"):
        filled = (decoder, 3)
    with pytest.raises(error, match=message):
        Sv2Protocol(*filled, **kwargs)  # type: ignore[arg-type]  # deliberately bad arguments


def test_max_unreleased_defaults_to_one_largest_frame() -> None:
    proto = Sv2Protocol(Decoder(BufferFromSystemMemory()), print)
    assert (1 << 20, 0, False) == (
        assert_type(proto.max_unreleased, int),
        assert_type(proto.unreleased, int),
        assert_type(proto.reading_paused, bool),
    )
    assert FRAME_STEP == Sv2Protocol(Decoder(BufferFromSystemMemory(), max_payload=10), print).max_unreleased


class FakeTransport(asyncio.Transport):
    """Records what the protocol asks of its transport."""

    def __init__(self) -> None:
        super().__init__()
        self.reading = True
        self.aborted = False
        self.pauses = 0

    def pause_reading(self) -> None:
        self.reading = False
        self.pauses += 1

    def resume_reading(self) -> None:
        self.reading = True

    def is_reading(self) -> bool:
        return self.reading

    def abort(self) -> None:
        self.aborted = True


def feed_bytes(proto: Sv2Protocol, data: bytes) -> None:
    """What the transport does with `data`, in reads as large as the protocol allows."""
    pos = 0
    while pos < len(data):
        buf = proto.get_buffer(-1)
        n = min(len(buf), len(data) - pos)
        buf[:n] = data[pos : pos + n]
        proto.buffer_updated(n)
        pos += n


def test_reading_pauses_past_max_unreleased_and_resumes_at_half() -> None:
    async def main() -> None:
        got: list[Frame] = []
        proto = Sv2Protocol(Decoder(BufferFromSystemMemory()), got.append, max_unreleased=100)
        transport = FakeTransport()
        proto.connection_made(transport)
        for i in range(2):
            feed_bytes(proto, wire(i, bytes(44)))  # 50 bytes each on the wire
        assert (100, False, True) == (proto.unreleased, proto.reading_paused, transport.reading)
        feed_bytes(proto, wire(2, bytes(44)))
        assert (150, True, False) == (proto.unreleased, proto.reading_paused, transport.reading)
        got[0].release()
        await asyncio.sleep(0)
        assert (100, True) == (proto.unreleased, proto.reading_paused), "100 > half of 100"
        await asyncio.to_thread(got[1].release)  # releases may come from any thread
        for _ in range(3):
            await asyncio.sleep(0)
        assert (50, False, True) == (proto.unreleased, proto.reading_paused, transport.reading)
        got[2].release()
        assert 0 == proto.unreleased and 1 == transport.pauses
        proto.connection_lost(None)

    run(main)


def test_a_frame_released_inside_on_frame_never_pauses() -> None:
    async def main() -> None:
        proto = Sv2Protocol(Decoder(BufferFromSystemMemory()), Frame.release, max_unreleased=0)
        transport = FakeTransport()
        proto.connection_made(transport)
        feed_bytes(proto, wire(1, b"abc") * 10)
        assert (0, 0, True) == (proto.unreleased, transport.pauses, transport.reading)
        proto.connection_lost(None)

    run(main)


def test_frame_timeout_aborts_a_peer_that_stalls_mid_frame() -> None:
    async def main() -> None:
        closed: list[BaseException | None] = []
        got: list[Frame] = []
        proto = Sv2Protocol(Decoder(BufferFromSystemMemory()), got.append, closed.append, frame_timeout=0.05)
        transport = FakeTransport()
        proto.connection_made(transport)
        feed_bytes(proto, wire(1, b"whole"))  # a whole frame: nothing to time
        await asyncio.sleep(0.1)
        assert not transport.aborted
        feed_bytes(proto, wire(2, bytes(1000))[:106])  # then a frame that stops after 100 bytes
        await asyncio.sleep(0.2)
        assert transport.aborted
        proto.connection_lost(None)
        [exc] = closed
        assert isinstance(exc, FrameError)
        assert "frame_timeout=0.05: the frame is still 900 bytes short after 106 bytes" == str(exc)
        assert 11 == exc.offset
        assert 0 == len(proto.decoder.buffer), "the partial frame's memory went back"
        for f in got:
            f.release()

    run(main)


def test_a_paused_connection_is_not_timed_out() -> None:
    async def main() -> None:
        got: list[Frame] = []
        proto = Sv2Protocol(Decoder(BufferFromSystemMemory()), got.append, max_unreleased=10, frame_timeout=0.05)
        transport = FakeTransport()
        proto.connection_made(transport)
        feed_bytes(proto, wire(1, bytes(20)) + wire(2, bytes(20))[:8])  # paused mid-frame
        assert proto.reading_paused
        await asyncio.sleep(0.15)
        assert not transport.aborted, "the consumer held frames; the peer did not stall"
        got[0].release()
        await asyncio.sleep(0)
        assert transport.reading
        await asyncio.sleep(0.15)
        assert transport.aborted, "reading again, the frame still did not complete"
        proto.connection_lost(None)

    run(main)


class Server:
    """One-connection Sv2 server on 127.0.0.1 whose frames go to an asyncio.Queue."""

    def __init__(
        self,
        make_buffer: Callable[[], Buffer],
        read_ahead: int,
        max_payload: int = 1 << 20,
        **options: float,
    ) -> None:
        self.queue: asyncio.Queue[Frame] = asyncio.Queue()
        self.closed: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()
        self.protocols: list[Sv2Protocol] = []
        self.make_buffer = make_buffer
        self.read_ahead = read_ahead
        self.max_payload = max_payload
        self.options = options

    def _on_close(self, exc: BaseException | None) -> None:
        if not self.closed.done():
            self.closed.set_result(exc)

    def make_protocol(self) -> Sv2Protocol:
        proto = Sv2Protocol(
            Decoder(self.make_buffer(), max_payload=self.max_payload),
            self.queue.put_nowait,
            self._on_close,
            read_ahead=self.read_ahead,
            **self.options,  # type: ignore[arg-type]  # max_unreleased (int) or frame_timeout
        )
        self.protocols.append(proto)
        return proto

    async def finish(self, writer: asyncio.StreamWriter) -> None:
        """Close the client's side, check the server saw a clean end, and stop the server."""
        writer.close()
        await writer.wait_closed()
        assert await self.closed is None
        self.server.close()
        await self.server.wait_closed()

    async def start(self) -> int:
        server = await asyncio.get_running_loop().create_server(self.make_protocol, "127.0.0.1", 0)
        self.server = server
        port: int = server.sockets[0].getsockname()[1]
        return port


def run(coro: Callable[[], Awaitable[None]]) -> None:
    """Run `coro()` in a fresh loop, bounded in time so a hang fails instead of stalling CI."""

    async def bounded() -> None:
        async with asyncio.timeout(20):
            await coro()

    asyncio.run(bounded())


@pytest.mark.parametrize("make_buffer", BUFFERS.values(), ids=BUFFERS.keys())
@pytest.mark.parametrize("read_ahead", [0, 4096])
def test_loopback_split_frames_and_many_per_write(make_buffer: Callable[[], Buffer], read_ahead: int) -> None:
    """Frames split across writes at odd places, and hundreds per write; released by another task."""
    sizes = [0, 1, 4, 63, 64, 1000, 1024, 5000, 16384, 70000]
    specs = [(i % 256, bytes([i % 251]) * sizes[i % len(sizes)]) for i in range(300)]
    stream = frames_of(specs)

    async def main() -> None:
        server = Server(make_buffer, read_ahead)
        port = await server.start()
        received: list[tuple[int, bytes]] = []

        async def consume() -> None:
            while len(received) < len(specs):
                frame = await server.queue.get()
                with frame:  # released here, in another task than the protocol's callback
                    received.append((frame.msg_type, bytes(frame.payload)))

        consumer = asyncio.create_task(consume())
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        half = len(stream) // 2
        # First half in awkward pieces (3, 7, 11, ... bytes), yielding so reads split them.
        pos, step = 0, 3
        while pos < half:
            writer.write(stream[pos : pos + step])
            await writer.drain()
            await asyncio.sleep(0)
            pos += step
            step = step * 2 + 1 if step < 5000 else 3
        writer.write(stream[pos:])  # the rest in one go: many frames per write
        await writer.drain()
        await consumer
        await server.finish(writer)
        [proto] = server.protocols
        assert 0 == len(proto.decoder.buffer)
        assert proto.decoder.buffer.is_droppable()
        assert proto.transport is None
        assert specs == received

    run(main)


def test_connection_lost_mid_frame_releases_the_partial_frame() -> None:
    async def main() -> None:
        server = Server(BufferFromSystemMemory, 0)
        port = await server.start()
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(wire(1, b"0123456789")[:10])
        await writer.drain()
        writer.close()
        await writer.wait_closed()
        exc = await server.closed
        assert isinstance(exc, FrameError)
        assert "the stream ended 10 bytes into a frame, 6 short" == str(exc)
        assert 0 == exc.offset
        [proto] = server.protocols
        assert (0, 0) == (proto.decoder.pending, len(proto.decoder.buffer))
        assert server.queue.empty()
        server.server.close()
        await server.server.wait_closed()

    run(main)


@pytest.mark.parametrize("read_ahead", [0, 4096])
def test_oversize_header_aborts_the_connection(read_ahead: int) -> None:
    async def main() -> None:
        server = Server(BufferFromSystemMemory, read_ahead, max_payload=100)
        port = await server.start()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(wire(1, b"ok") + wire(2, bytes(101)) + wire(3, b"never"))
        await writer.drain()
        exc = await server.closed
        assert isinstance(exc, FrameError)
        assert "payload length 101 exceeds max_payload=100" == str(exc)
        assert 8 == exc.offset
        frame = server.queue.get_nowait()  # the good frame before it still arrived
        assert b"ok" == bytes(frame.payload)
        frame.release()
        assert server.queue.empty()
        try:  # the server hung up: a reset when unread bytes were left, else a plain EOF
            assert b"" == await reader.read()
        except ConnectionResetError:
            pass
        writer.close()
        try:
            await writer.wait_closed()
        except ConnectionResetError:
            pass
        server.server.close()
        await server.server.wait_closed()

    run(main)


def test_channel_frames_over_a_socket() -> None:
    async def main() -> None:
        server = Server(BufferFromSystemMemory, 0)
        port = await server.start()
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(wire(9, (77).to_bytes(4, "little") + b"body", raw_ext=CHANNEL_MSG_FLAG | 0x12))
        frame = await server.queue.get()
        assert (0x12, True, 77, b"body") == (
            frame.extension_type,
            frame.channel_msg,
            frame.channel_id,
            bytes(frame.payload[4:]),
        )
        frame.release()
        await server.finish(writer)

    run(main)


def test_loopback_backpressure_bounds_what_a_greedy_consumer_holds() -> None:
    """A consumer that keeps every frame: reading pauses, and resumes as it lets them go."""
    count, size = 2000, 100
    specs = [(i % 256, bytes([i % 251]) * size) for i in range(count)]
    limit = 4096

    async def main() -> None:
        server = Server(BufferFromSystemMemory, 0, max_unreleased=limit)
        port = await server.start()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(frames_of(specs))
        held: list[Frame] = []
        while len(held) * (size + 6) <= limit:
            held.append(await server.queue.get())
        [proto] = server.protocols
        await asyncio.sleep(0.05)  # the client has more to send; the server reads no more
        assert proto.reading_paused
        assert proto.unreleased <= limit + size + 6
        assert len(held) + server.queue.qsize() == proto.unreleased // (size + 6)
        received = [(f.msg_type, bytes(f.payload)) for f in held]

        def release_held() -> None:
            for f in held:
                f.release()

        await asyncio.to_thread(release_held)  # let go, from another thread
        while len(received) < count:
            with await server.queue.get() as frame:
                received.append((frame.msg_type, bytes(frame.payload)))
        assert specs == received
        assert 0 == proto.unreleased
        await server.finish(writer)

    run(main)


def test_loopback_stalled_peers_pin_one_step_each_whatever_they_announce() -> None:
    """Peers that send one header announcing max_payload, then nothing."""
    peers = 50

    async def main() -> None:
        server = Server(BufferFromSystemMemory, 0, frame_timeout=0.5)
        port = await server.start()
        writers = []
        for _ in range(peers):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(wire(1, b"")[:3] + (1 << 20).to_bytes(3, "little"))
            writers.append(writer)
        while sum(p.decoder.pending for p in server.protocols) < 6 * peers:
            await asyncio.sleep(0.01)
        pinned = sum(len(p.decoder.buffer) for p in server.protocols)
        assert pinned == peers * (6 + FRAME_STEP), "one step each, not 1 MiB each"
        exc = await server.closed  # the first connection to time out
        assert isinstance(exc, FrameError)
        assert str(exc).startswith("frame_timeout=0.5: the frame is still 1048576 bytes short after 6 bytes")
        for writer in writers:
            writer.close()
        server.server.close()
        await server.server.wait_closed()

    run(main)


def test_releases_racing_deliveries_from_another_thread_keep_the_count_exact() -> None:
    """Frames released on a worker thread while the loop delivers more: the count never drifts."""
    import queue
    import sys
    import threading

    async def main() -> None:
        handed: queue.Queue[Frame | None] = queue.Queue()
        proto = Sv2Protocol(Decoder(BufferFromSystemMemory()), handed.put, max_unreleased=2_000)
        transport = FakeTransport()
        proto.connection_made(transport)

        def worker() -> None:
            while (frame := handed.get()) is not None:
                frame.release()

        thread = threading.Thread(target=worker)
        interval = sys.getswitchinterval()
        sys.setswitchinterval(1e-6)  # switch threads as often as CPython allows
        try:
            thread.start()
            wire_bytes = wire(7, bytes(94))  # 100 bytes on the wire
            for _ in range(3_000):
                while not transport.reading:  # paused: let the loop run the resume callback
                    await asyncio.sleep(0)
                feed_bytes(proto, wire_bytes)
                assert proto.unreleased <= 2_000 + 100
        finally:
            handed.put(None)
            thread.join(timeout=30)
            sys.setswitchinterval(interval)
        assert not thread.is_alive()
        for _ in range(3):
            await asyncio.sleep(0)
        assert (0, False, True) == (proto.unreleased, proto.reading_paused, transport.reading)
        proto.connection_lost(None)

    run(main)
