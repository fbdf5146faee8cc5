"""Sv2 under one memory budget: a `PooledBuffer` that waits for its pool instead of falling back.

On a thread the wait blocks in `get_writable`; under asyncio `Sv2Protocol` pauses reading
before a header completes and waits in the pool's line without blocking the loop.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Awaitable, Callable

import pytest

from objpool import ByteBuffer, Pool
from objpool.sv2 import Decoder, Frame, PooledBuffer, Sv2Protocol

from test_sv2_asyncio import FakeTransport, feed_bytes, run, wire


def until(condition: Callable[[], bool], what: str, limit: float = 5.0) -> None:
    """Spin (on a thread) until `condition()` holds; fail after `limit` seconds."""
    deadline = time.monotonic() + limit
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.001)


async def ticks(n: int = 5) -> None:
    """Let the loop run `n` iterations (call_soon_threadsafe callbacks, task steps)."""
    for _ in range(n):
        await asyncio.sleep(0)


# ---- PooledBuffer on a thread ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("timeout", "error", "message"),
    [
        (-1, ValueError, r"^timeout must be a number of seconds >= 0 or None, got int -1$"),
        ("1", TypeError, r"^timeout must be a number of seconds >= 0 or None, got str '1'$"),
        (True, TypeError, r"^timeout must be a number of seconds >= 0 or None, got bool True$"),
    ],
)
def test_bad_timeouts_are_refused(timeout: object, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        PooledBuffer(Pool(lambda: ByteBuffer(64), 1), timeout=timeout)  # type: ignore[arg-type]  # deliberately bad


@pytest.mark.parametrize(("timeout", "kept"), [(0, 0.0), (0.25, 0.25), (3, 3.0), (None, None)])
def test_the_timeout_is_kept(timeout: float | None, kept: float | None) -> None:
    buffer = PooledBuffer(Pool(lambda: ByteBuffer(64), 1), timeout=timeout)
    assert kept == buffer.timeout
    assert repr(buffer).endswith(f" timeout={kept}>")


def test_a_waiting_buffer_blocks_until_a_slice_is_released_on_another_thread() -> None:
    pool = Pool(lambda: ByteBuffer(64), 1)
    first = PooledBuffer(pool)
    first.get_writable(3)[:] = b"one"
    held = first.get_data_owned()  # the pool's only ByteBuffer
    second = PooledBuffer(pool, timeout=None)

    def release_once_waited_for() -> None:
        until(lambda: pool.waiting == 1, "the second buffer to wait")
        held.release()

    releaser = threading.Thread(target=release_once_waited_for)
    releaser.start()
    second.get_writable(3)[:] = b"two"  # blocks until the release
    releaser.join()
    with second.get_data_owned() as data:
        assert (b"two", True) == (bytes(data), data.from_pool)
    assert (1, 0, 0) == (second.pooled_slices, second.system_slices, pool.stats().exhausted)


def test_a_wait_that_runs_out_continues_in_system_memory() -> None:
    pool = Pool(lambda: ByteBuffer(64), 1)
    held = pool.allocate()
    buffer = PooledBuffer(pool, timeout=0.05)
    start = time.monotonic()
    buffer.get_writable(4)[:] = b"late"
    assert time.monotonic() - start >= 0.05
    with buffer.get_data_owned() as data:
        assert (b"late", False) == (bytes(data), data.from_pool)
    assert (0, 1, 1) == (buffer.pooled_slices, buffer.system_slices, pool.stats().exhausted)
    held.release()


def test_a_closed_pool_never_keeps_a_waiting_buffer_waiting() -> None:
    pool = Pool(lambda: ByteBuffer(64), 1)
    pool.close()
    buffer = PooledBuffer(pool, timeout=None)
    buffer.get_writable(2)[:] = b"ok"
    with buffer.get_data_owned() as data:
        assert (b"ok", False) == (bytes(data), data.from_pool)


def test_a_decoder_on_a_thread_keeps_every_frame_in_a_tiny_pool() -> None:
    """200 frames decoded through 2 ByteBuffers, one at a time; a consumer thread releases them.

    One frame at a time (`writable`/`next_frame`), as a thread serving one connection reads:
    `feed()` hands its frames over only when it returns, so a call that completes more
    frames than the pool holds would wait on itself. (Bounded: a hang fails instead.)
    """
    pool = Pool(lambda: ByteBuffer(256), 2)
    buffer = PooledBuffer(pool, timeout=10)
    decoder = Decoder(buffer)
    handed: queue.Queue[Frame | None] = queue.Queue()
    seen: list[tuple[int, bytes, bool]] = []

    def consume() -> None:
        while (frame := handed.get()) is not None:
            with frame:
                seen.append((frame.msg_type, bytes(frame.payload), frame.data.from_pool))

    consumer = threading.Thread(target=consume)
    consumer.start()
    stream = memoryview(b"".join(wire(i % 256, bytes([i % 251]) * (i % 200)) for i in range(200)))
    pos = 0
    while pos < len(stream):
        view = decoder.writable()
        view[:] = stream[pos : pos + len(view)]
        pos += len(view)
        ev = decoder.next_frame()
        if isinstance(ev, Frame):
            handed.put(ev)
    handed.put(None)
    consumer.join(10)
    assert [(i % 256, bytes([i % 251]) * (i % 200), True) for i in range(200)] == seen
    assert (0, 2) == (buffer.system_slices, pool.stats().high_water)


# ---- Sv2Protocol: pausing for memory, without blocking the loop ----------------------------


def test_read_ahead_is_refused_with_a_buffer_that_waits() -> None:
    decoder = Decoder(PooledBuffer(Pool(lambda: ByteBuffer(64), 1), timeout=None))
    with pytest.raises(ValueError, match=r"^read_ahead=16 cannot be used with a PooledBuffer that waits \(timeout=None\)"):
        Sv2Protocol(decoder, print, read_ahead=16)
    Sv2Protocol(Decoder(PooledBuffer(Pool(lambda: ByteBuffer(64), 1))), print, read_ahead=16)  # the fallback may


class Connection:
    """A protocol on a `FakeTransport` whose buffer waits on `pool`; frames kept in `got`."""

    def __init__(self, pool: Pool[ByteBuffer], timeout: float | None = None, **options: int) -> None:
        self.got: list[Frame] = []
        self.buffer = PooledBuffer(pool, timeout=timeout)
        self.proto = Sv2Protocol(Decoder(self.buffer), self.got.append, **options)  # type: ignore[arg-type]
        self.transport = FakeTransport()
        self.proto.connection_made(self.transport)

    def read(self, data: bytes) -> int:
        """One read of `data` as the transport makes it: returns how many bytes it took."""
        view = self.proto.get_buffer(-1)
        n = min(len(view), len(data))
        view[:n] = data[:n]
        self.proto.buffer_updated(n)
        return n


def asyncio_test(coro: Callable[[], Awaitable[None]]) -> Callable[[], None]:
    """Run the test body in a fresh, bounded loop."""

    def test() -> None:
        run(coro)

    test.__name__ = coro.__name__
    test.__doc__ = coro.__doc__
    return test


@asyncio_test
async def test_an_exhausted_pool_pauses_reading_before_the_header_completes() -> None:
    pool = Pool(lambda: ByteBuffer(64), 1)
    c = Connection(pool)
    feed_bytes(c.proto, wire(1, b"first"))
    assert [True] == [f.data.from_pool for f in c.got]
    second = wire(2, b"second")
    assert 5 == c.read(second), "all of the header but its last byte"
    assert (True, True, False) == (c.proto.waiting_for_memory, c.proto.reading_paused, c.transport.reading)
    await ticks()
    assert (5, 0, 1) == (c.proto.decoder.pending, len(c.buffer), pool.waiting)
    assert c.proto.waiting_for_memory, "still nothing free"
    await asyncio.to_thread(c.got[0].release)  # a release on another thread serves the wait
    await ticks()
    assert (False, False, True) == (c.proto.waiting_for_memory, c.proto.reading_paused, c.transport.reading)
    assert (1, 0) == (pool.stats().lent, pool.waiting), "the next frame's ByteBuffer, held before it starts"
    feed_bytes(c.proto, second[5:])
    with c.got[1] as frame:
        assert (2, b"second", True) == (frame.msg_type, bytes(frame.payload), frame.data.from_pool)
    assert (2, 0, 1) == (c.buffer.pooled_slices, c.buffer.system_slices, c.transport.pauses)
    c.proto.connection_lost(None)
    assert 0 == pool.stats().lent


@asyncio_test
async def test_a_wait_that_runs_out_gives_that_frame_system_memory() -> None:
    pool = Pool(lambda: ByteBuffer(64), 1)
    held = pool.allocate()
    c = Connection(pool, timeout=0.05)
    frame = wire(7, b"late")
    c.read(frame)
    assert c.proto.waiting_for_memory
    await asyncio.sleep(0.1)
    assert (False, True) == (c.proto.waiting_for_memory, c.transport.reading)
    feed_bytes(c.proto, frame[5:])
    with c.got[0] as got:
        assert (b"late", False) == (bytes(got.payload), got.data.from_pool)
    assert (1, 2) == (c.buffer.system_slices, pool.stats().exhausted), "the first try, then the wait"
    c.proto.connection_lost(None)
    held.release()


@asyncio_test
async def test_a_pool_closed_during_the_wait_gives_that_frame_system_memory() -> None:
    pool = Pool(lambda: ByteBuffer(64), 1)
    held = pool.allocate()
    c = Connection(pool)
    frame = wire(7, b"closing")
    c.read(frame)
    pool.close()
    await ticks()
    assert (False, True) == (c.proto.waiting_for_memory, c.transport.reading)
    feed_bytes(c.proto, frame[5:])
    with c.got[0] as got:
        assert (b"closing", False) == (bytes(got.payload), got.data.from_pool)
    c.proto.connection_lost(None)
    held.release()


@asyncio_test
async def test_a_connection_lost_while_waiting_leaves_the_line() -> None:
    pool = Pool(lambda: ByteBuffer(64), 1)
    held = pool.allocate()
    closed: list[BaseException | None] = []
    c = Connection(pool)
    c.proto._on_close = closed.append
    c.read(wire(1, b"never"))
    await ticks()
    assert 1 == pool.waiting
    c.proto.connection_lost(None)
    await ticks()
    assert (0, False) == (pool.waiting, c.proto.waiting_for_memory)
    held.release()
    assert (0, 0) == (pool.stats().lent, len(c.buffer))
    assert [None] == closed


@asyncio_test
async def test_a_connection_lost_at_the_moment_of_hand_off_passes_the_buffer_on() -> None:
    """The release hands the ByteBuffer to the waiting task; the connection ends before it runs."""
    pool = Pool(lambda: ByteBuffer(64), 1)
    held = pool.allocate()
    lost, next_in_line = Connection(pool), Connection(pool)
    lost.read(wire(1, b"lost"))
    next_in_line.read(wire(2, b"next"))
    await ticks()
    assert 2 == pool.waiting
    held.release()  # handed to `lost`'s task, which has not run yet
    lost.proto.connection_lost(None)
    await ticks()
    assert (False, True) == (next_in_line.proto.waiting_for_memory, next_in_line.transport.reading)
    assert 1 == pool.stats().lent, "the buffer went on to the next in line"
    feed_bytes(next_in_line.proto, wire(2, b"next")[5:])
    with next_in_line.got[0] as frame:
        assert (b"next", True) == (bytes(frame.payload), frame.data.from_pool)
    next_in_line.proto.connection_lost(None)
    assert 0 == pool.stats().lent


@asyncio_test
async def test_a_connection_lost_holding_the_next_frame_s_buffer_gives_it_back() -> None:
    pool = Pool(lambda: ByteBuffer(64), 1)
    c = Connection(pool)
    c.read(wire(1, b"x"))  # the header: a free ByteBuffer is taken before it is read
    assert 1 == pool.stats().lent
    c.proto.connection_lost(None)
    assert 0 == pool.stats().lent


@asyncio_test
async def test_memory_arriving_while_paused_for_unreleased_frames_keeps_reading_paused() -> None:
    pool = Pool(lambda: ByteBuffer(64), 1)
    other = pool.allocate()
    c = Connection(pool, max_unreleased=0)
    c.read(wire(3, b"abc"))
    assert c.proto.waiting_for_memory
    other.release()
    await ticks()
    feed_bytes(c.proto, wire(3, b"abc")[5:])  # resumed for memory; the frame is delivered
    assert (True, False, False) == (c.proto.reading_paused, c.proto.waiting_for_memory, c.transport.reading)
    c.got[0].release()
    await ticks()
    assert (False, True) == (c.proto.reading_paused, c.transport.reading)
    c.proto.connection_lost(None)


def test_a_transport_that_reads_while_paused_never_blocks_the_loop() -> None:
    """A transport may finish a read after pause_reading(): the frame then uses system memory."""

    async def main() -> None:
        pool = Pool(lambda: ByteBuffer(64), 1)
        held = pool.allocate()
        c = Connection(pool)
        frame = wire(4, b"push")
        assert 5 == c.read(frame)
        assert 1 == c.read(frame[5:]), "ignores the pause: the header's last byte"
        feed_bytes(c.proto, frame[6:])
        with c.got[0] as got:
            assert (b"push", False) == (bytes(got.payload), got.data.from_pool)
        c.proto.connection_lost(None)
        await ticks()
        assert 0 == pool.waiting
        held.release()

    run(main)


# ---- over loopback sockets ----------------------------------------------------------------


def test_loopback_many_connections_share_a_tiny_pool_with_no_fallback() -> None:
    """20 connections, 3 ByteBuffers: every frame lands in the pool, intact and in order."""
    connections, frames_each, buffers = 20, 25, 3

    def spec(conn: int, i: int) -> bytes:
        return wire(conn, conn.to_bytes(2, "little") + bytes([i % 251]) * ((conn * 37 + i * 11) % 300))

    async def main() -> None:
        pool = Pool(lambda: ByteBuffer(512), buffers)
        queue: asyncio.Queue[tuple[int, Frame]] = asyncio.Queue()
        pooled: list[PooledBuffer] = []
        ended: list[BaseException | None] = []

        def make_protocol() -> Sv2Protocol:
            buffer = PooledBuffer(pool, timeout=None)
            conn = len(pooled)
            pooled.append(buffer)
            return Sv2Protocol(Decoder(buffer), lambda f: queue.put_nowait((conn, f)), ended.append)

        server = await asyncio.get_running_loop().create_server(make_protocol, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        writers = []
        for conn in range(connections):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"".join(spec(conn, i) for i in range(frames_each)))
            writers.append(writer)
        received: dict[int, list[bytes]] = {}
        for _ in range(connections * frames_each):
            _, frame = await queue.get()
            with frame:
                assert frame.data.from_pool
                received.setdefault(frame.msg_type, []).append(bytes(frame))
            await asyncio.sleep(0.001)  # a slow consumer: the pool runs dry, connections wait
        assert {c: [spec(c, i) for i in range(frames_each)] for c in range(connections)} == received
        assert all(0 == b.system_slices for b in pooled)
        stats = pool.stats()
        assert buffers == stats.high_water
        assert stats.exhausted > 0, "the pool ran dry, so connections did wait"
        for writer in writers:
            writer.close()
            await writer.wait_closed()
        server.close()
        await server.wait_closed()
        await ticks()
        assert (0, 0) == (pool.stats().lent, pool.waiting)
        assert [None] * connections == ended

    run(main)
