"""`Sv2Protocol` driven step by step (short reads) and over real loopback sockets."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from objpool import ByteBuffer, FrameError, Pool
from objpool.sv2 import (
    CHANNEL_MSG_FLAG,
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
    while pos < len(stream):
        buf = proto.get_buffer(-1)
        n = data.draw(st.integers(1, min(len(buf), len(stream) - pos)), label="recv")
        buf[:n] = stream[pos : pos + n]
        pos += n
        proto.buffer_updated(n)
    assert specs == [(f.msg_type, bytes(f.payload)) for f in got]


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


def test_read_ahead_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match=r"^read_ahead must be >= 0, got -1$"):
        Sv2Protocol(Decoder(BufferFromSystemMemory()), print, read_ahead=-1)


class Server:
    """One-connection Sv2 server on 127.0.0.1 whose frames go to an asyncio.Queue."""

    def __init__(self, make_buffer: Callable[[], Buffer], read_ahead: int, max_payload: int = 1 << 20) -> None:
        self.queue: asyncio.Queue[Frame] = asyncio.Queue()
        self.closed: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()
        self.protocols: list[Sv2Protocol] = []
        self.make_buffer = make_buffer
        self.read_ahead = read_ahead
        self.max_payload = max_payload

    def _on_close(self, exc: BaseException | None) -> None:
        self.closed.set_result(exc)

    def make_protocol(self) -> Sv2Protocol:
        proto = Sv2Protocol(
            Decoder(self.make_buffer(), max_payload=self.max_payload),
            self.queue.put_nowait,
            self._on_close,
            read_ahead=self.read_ahead,
        )
        self.protocols.append(proto)
        return proto

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
        writer.close()
        await writer.wait_closed()
        assert await server.closed is None
        server.server.close()
        await server.server.wait_closed()
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
        writer.close()
        await writer.wait_closed()
        assert await server.closed is None
        server.server.close()
        await server.server.wait_closed()

    run(main)
