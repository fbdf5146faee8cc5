"""A loopback Sv2 proxy: N clients -> proxy -> echo upstream -> proxy -> the same N clients.

Everything runs on 127.0.0.1 in one asyncio loop, bounded in connections and time:

- the upstream server echoes every byte it gets;
- the proxy accepts N downstream connections, opens one upstream connection for each, and
  decodes every frame in both directions with `Sv2Protocol` into that connection's own
  buffer (system memory, a `BufferPool`, or a `PooledBuffer` drawing from one shared
  `Pool[ByteBuffer]`), then forwards the frame's bytes and releases it;
- each client sends channel frames of mixed sizes (its id as channel id, a sequence number,
  a deterministic body), at most `--window` unanswered at a time, for `--duration` seconds,
  and checks that every echo comes back intact and in order.

It prints frames/s and bytes/s through the proxy and where the frames' memory came from.
Run `python examples/sv2_proxy.py --help`; the defaults (1,000 connections, 3 s, pooled
buffers, 4 KiB read-ahead) suit a 2-core machine. A test runs it with a few connections.

Forwarding a pooled frame without copying needs care: since CPython 3.12 a transport that
cannot send at once keeps a reference to the very memoryview it was given (3.11 copies).
`FrameSender` therefore releases a frame only once the transport's write buffer is empty.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import resource
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

from objpool import ByteBuffer, Pool
from objpool.sv2 import (
    CHANNEL_MSG_FLAG,
    Buffer,
    BufferFromSystemMemory,
    BufferPool,
    Decoder,
    PooledBuffer,
    Frame,
    Sv2Protocol,
)

HOST: Final = "127.0.0.1"
# Frame payload sizes the clients cycle through: mostly small, some 1-16 KiB.
SIZES: Final = (8, 8, 24, 64, 64, 128, 256, 512, 1024, 1024, 4096, 16384)
_BLOCK: Final = random.Random(2024).randbytes(1 << 16)


def expected_frame(client: int, seq: int) -> bytes:
    """The exact wire bytes client `client` sends as its `seq`-th frame (and must get back)."""
    size = SIZES[(client * 7 + seq) % len(SIZES)]
    start = (client * 131 + seq * 17) % 4096
    payload = client.to_bytes(4, "little") + seq.to_bytes(4, "little") + _BLOCK[start : start + size]
    header = CHANNEL_MSG_FLAG.to_bytes(2, "little") + bytes([seq & 0xFF]) + len(payload).to_bytes(3, "little")
    return header + payload


@dataclass
class Stats:
    """Counters shared by every part of the demo."""

    frames_sent: int = 0
    frames_echoed: int = 0
    frames_corrupt: int = 0
    client_errors: list[str] = field(default_factory=list)
    proxy_frames: int = 0
    proxy_bytes: int = 0
    frames_in_pool: int = 0
    frames_in_system: int = 0
    frames_held: int = 0  # forwarded frames kept alive until their transport drained
    open_connections: int = 0  # proxy and upstream sides not yet closed, to shut down cleanly
    proxy_errors: list[str] = field(default_factory=list)


class FrameSender:
    """Writes frames to a transport without copying, releasing each once it is surely sent."""

    def __init__(self, transport: asyncio.Transport, stats: Stats) -> None:
        self.transport = transport
        self.stats = stats
        self.held: list[Frame] = []  # written, but maybe still referenced by the transport

    def send(self, frame: Frame) -> None:
        transport = self.transport
        if self.held and not transport.get_write_buffer_size():
            self.release_held()  # the transport drained: it no longer holds any of them
        transport.write(frame.view)
        if transport.get_write_buffer_size():
            self.held.append(frame)
            self.stats.frames_held += 1
        else:
            frame.release()  # sent in full, synchronously

    def release_held(self) -> None:
        for frame in self.held:
            frame.release()
        self.held.clear()


class Link:
    """One downstream connection and its upstream twin, both decoding into pooled buffers."""

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        self.stats = proxy.stats
        self.down = Sv2Protocol(
            Decoder(proxy.make_buffer()), self.from_down, self.down_closed, read_ahead=proxy.read_ahead
        )
        self.up: Sv2Protocol | None = None
        self.to_up: FrameSender | None = None
        self.to_down: FrameSender | None = None
        self.backlog: list[Frame] = []  # frames that arrived before the upstream connection
        self.stats.open_connections += 1
        self.task = asyncio.get_running_loop().create_task(self.connect_upstream())

    async def connect_upstream(self) -> None:
        up = Sv2Protocol(Decoder(self.proxy.make_buffer()), self.from_up, self.up_closed, read_ahead=self.proxy.read_ahead)
        try:
            transport, _ = await asyncio.get_running_loop().create_connection(lambda: up, HOST, self.proxy.upstream_port)
        except OSError as exc:
            self.stats.proxy_errors.append(f"connecting upstream: {exc!r}")
            if self.down.transport is not None:
                self.down.transport.close()
            return
        self.stats.open_connections += 1
        self.up = up
        self.to_up = FrameSender(transport, self.stats)
        for frame in self.backlog:
            self.to_up.send(frame)
        self.backlog.clear()

    def count(self, frame: Frame) -> None:
        stats = self.stats
        stats.proxy_frames += 1
        stats.proxy_bytes += len(frame)
        if frame.data.from_pool:
            stats.frames_in_pool += 1
        else:
            stats.frames_in_system += 1

    def from_down(self, frame: Frame) -> None:
        self.count(frame)
        if self.to_up is None:
            self.backlog.append(frame)
        else:
            self.to_up.send(frame)

    def from_up(self, frame: Frame) -> None:
        self.count(frame)
        if self.to_down is None:
            transport = self.down.transport
            assert transport is not None
            self.to_down = FrameSender(transport, self.stats)
        self.to_down.send(frame)

    def down_closed(self, exc: BaseException | None) -> None:
        self.stats.open_connections -= 1
        if exc is not None:
            self.stats.proxy_errors.append(f"downstream: {exc!r}")
        for frame in self.backlog:
            frame.release()
        self.backlog.clear()
        if self.to_down is not None:
            self.to_down.release_held()
        if self.to_up is not None:
            self.to_up.transport.close()  # the upstream side then closes too
        else:
            self.task.cancel()

    def up_closed(self, exc: BaseException | None) -> None:
        self.stats.open_connections -= 1
        if exc is not None:
            self.stats.proxy_errors.append(f"upstream: {exc!r}")
        if self.to_up is not None:
            self.to_up.release_held()


class Proxy:
    """The proxy's shared state: where buffers come from, the upstream port, the links."""

    def __init__(self, make_buffer: Callable[[], Buffer], upstream_port: int, read_ahead: int, stats: Stats) -> None:
        self.make_buffer = make_buffer
        self.upstream_port = upstream_port
        self.read_ahead = read_ahead
        self.stats = stats
        self.links: list[Link] = []

    def accept(self) -> Sv2Protocol:
        link = Link(self)
        self.links.append(link)
        return link.down


class Echo(asyncio.Protocol):
    """The upstream server: every byte goes straight back."""

    def __init__(self, stats: Stats) -> None:
        self.stats = stats
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.stats.open_connections += 1

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self.stats.open_connections -= 1
        self.transport = None


async def client(client_id: int, port: int, deadline: float, window: int, stats: Stats) -> None:
    """Send frames until `deadline`, at most `window` unanswered; check every echo."""
    reader, writer = await asyncio.open_connection(HOST, port)
    decoder = Decoder(BufferFromSystemMemory())
    sent = received = 0
    try:
        while True:
            while sent - received < window and time.monotonic() < deadline:
                writer.write(expected_frame(client_id, sent))
                sent += 1
                stats.frames_sent += 1
            if received == sent:
                break
            data = await reader.read(1 << 16)
            if not data:
                raise ConnectionError(f"proxy closed with {sent - received} frames unanswered")
            for frame in decoder.feed(data):
                with frame:
                    if bytes(frame) == expected_frame(client_id, received):
                        stats.frames_echoed += 1
                    else:
                        stats.frames_corrupt += 1
                received += 1
    except (ConnectionError, OSError) as exc:
        stats.client_errors.append(f"client {client_id}: {exc!r}")
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass


def raise_fd_limit(connections: int) -> int:
    """Raise the soft fd limit for 4 sockets per connection; return how many connections fit."""
    need = 4 * connections + 64
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < need:
        target = need if hard == resource.RLIM_INFINITY else min(need, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    if soft == resource.RLIM_INFINITY:
        return connections
    return max(1, min(connections, (soft - 64) // 4))


BUFFER_KINDS: Final = ("system", "bufferpool", "pooled")


def buffer_factory(kind: str, pool_bytes: int, pool_buffers: int) -> tuple[Callable[[], Buffer], Callable[[], str]]:
    """A per-connection buffer maker for `kind`, and a function describing its memory.

    - system: `BufferFromSystemMemory`, a fresh allocation per frame;
    - bufferpool: a `BufferPool(pool_bytes)` per connection and side (8 slots each);
    - pooled: a `PooledBuffer` per connection and side, all drawing from one shared
      `Pool` of `pool_buffers` `ByteBuffer(pool_bytes)`.
    """
    if kind == "system":
        return BufferFromSystemMemory, lambda: "system memory: every frame is a fresh allocation"
    if kind == "bufferpool":
        made: list[BufferPool] = []

        def make() -> Buffer:
            pool = BufferPool(pool_bytes)
            made.append(pool)
            return pool

        def describe() -> str:
            alloc = sum(p.is_alloc_mode() for p in made)
            return (
                f"{len(made)} BufferPool({pool_bytes:,}) = {len(made) * pool_bytes / 2**20:,.1f} MiB,"
                f" {alloc} left in system-memory (Alloc) mode"
            )

        return make, describe
    if kind == "pooled":
        shared = Pool(lambda: ByteBuffer(pool_bytes), pool_buffers, name="proxy")

        def describe_shared() -> str:
            st = shared.stats()
            return (
                f"one Pool of {pool_buffers} ByteBuffer({pool_bytes:,}) = {pool_buffers * pool_bytes / 2**20:,.1f} MiB"
                f" shared by all connections; {st.allocations} lends, at most {st.high_water} out at once,"
                f" {st.exhausted} found it empty, {st.lent} still lent"
            )

        return lambda: PooledBuffer(shared), describe_shared
    raise ValueError(f"buffer kind must be one of {BUFFER_KINDS}, got {kind!r}")


@dataclass
class Report:
    """What a run measured."""

    connections: int
    elapsed: float
    stats: Stats
    pool: str

    @property
    def ok(self) -> bool:
        """Every frame sent came back intact, and nothing failed."""
        s = self.stats
        return (
            s.frames_sent == s.frames_echoed
            and not s.frames_corrupt
            and not s.client_errors
            and not s.proxy_errors
            and s.proxy_frames == 2 * s.frames_sent
        )

    def lines(self) -> list[str]:
        s = self.stats
        rate = s.proxy_frames / self.elapsed if self.elapsed else 0.0
        bps = s.proxy_bytes / self.elapsed if self.elapsed else 0.0
        pooled = s.frames_in_pool / s.proxy_frames if s.proxy_frames else 0.0
        out = [
            f"connections: {self.connections}, elapsed {self.elapsed:.2f} s",
            f"clients: {s.frames_sent} frames sent, {s.frames_echoed} echoed intact, {s.frames_corrupt} corrupt",
            f"proxy: {s.proxy_frames} frames decoded and forwarded ({rate:,.0f} frames/s, {bps / 1e6:,.1f} MB/s)",
            f"buffers: {s.frames_in_pool} frames in pool memory ({pooled:.1%}), {s.frames_in_system} in system memory;"
            f" {s.frames_held} held until their transport drained",
            f"pool: {self.pool}",
        ]
        out += [f"error: {e}" for e in (s.client_errors + s.proxy_errors)[:5]]
        return out


async def run_demo(
    connections: int = 1000,
    duration: float = 3.0,
    buffer: str = "system",
    window: int = 4,
    read_ahead: int = 4096,
    pool_bytes: int = 32768,
    pool_buffers: int = 0,
    grace: float = 20.0,
) -> Report:
    """Run the whole demo on 127.0.0.1 and return what it measured; bounded by duration + grace."""
    if connections < 1 or window < 1 or duration < 0:
        raise ValueError(f"need connections >= 1, window >= 1, duration >= 0; got {connections}, {window}, {duration}")
    make_buffer, describe = buffer_factory(buffer, pool_bytes, pool_buffers or connections)
    loop = asyncio.get_running_loop()
    stats = Stats()
    upstream = await loop.create_server(lambda: Echo(stats), HOST, 0, backlog=max(100, connections))
    up_port: int = upstream.sockets[0].getsockname()[1]
    proxy = Proxy(make_buffer, up_port, read_ahead, stats)
    server = await loop.create_server(proxy.accept, HOST, 0, backlog=max(100, connections))
    port: int = server.sockets[0].getsockname()[1]
    start = time.monotonic()
    try:
        async with asyncio.timeout(duration + grace):
            async with asyncio.TaskGroup() as tg:
                for i in range(connections):
                    tg.create_task(client(i, port, start + duration, window, stats))
    except TimeoutError:
        stats.client_errors.append(f"gave up after {duration + grace:.0f} s")
    elapsed = time.monotonic() - start
    server.close()
    upstream.close()
    # The clients have closed; wait (bounded) until every proxy and echo connection has seen
    # its end, so that no transport outlives the loop and every held frame was released.
    for _ in range(500):
        if not stats.open_connections:
            break
        await asyncio.sleep(0.01)
    else:
        stats.proxy_errors.append(f"{stats.open_connections} connections still open after 5 s")
    await server.wait_closed()
    await upstream.wait_closed()
    await asyncio.sleep(0)
    return Report(connections, elapsed, stats, describe())


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, run the demo, print the report; exit status 0 when every frame came back."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("-n", "--connections", type=int, default=1000, help="client connections (default 1000)")
    parser.add_argument("-d", "--duration", type=float, default=3.0, help="seconds of sending (default 3)")
    parser.add_argument("-b", "--buffer", choices=BUFFER_KINDS, default=BUFFER_KINDS[-1], help="proxy buffers")
    parser.add_argument("-w", "--window", type=int, default=4, help="unanswered frames per client (default 4)")
    # With read_ahead=0 every header and payload is a separate read, one loop iteration
    # apart, so with many busy connections nearly every one is mid-frame (holding memory)
    # at any time; reading ahead completes most small frames within one read.
    parser.add_argument(
        "--read-ahead", type=int, default=4096, help="Sv2Protocol read_ahead; 0 reads exactly (default 4096)"
    )
    parser.add_argument(
        "--pool-bytes", type=int, default=32768, help="BufferPool capacity, or ByteBuffer size (default 32768)"
    )
    parser.add_argument(
        "--pool-buffers", type=int, default=0, help="ByteBuffers in the shared pool (default: one per connection)"
    )
    args = parser.parse_args(argv)
    connections = raise_fd_limit(args.connections)
    if connections < args.connections:
        print(f"note: fd limit allows only {connections} connections (4 sockets each)")
    report = asyncio.run(
        run_demo(
            connections, args.duration, args.buffer, args.window, args.read_ahead, args.pool_bytes, args.pool_buffers
        )
    )
    print(f"buffer={args.buffer} window={args.window} read_ahead={args.read_ahead}")
    for line in report.lines():
        print(line)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
