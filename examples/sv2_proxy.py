"""A loopback Sv2 proxy: N clients -> proxy -> echo upstream -> proxy -> the same N clients.

Everything runs on 127.0.0.1 in one asyncio loop, bounded in connections and time:

- the upstream server echoes every byte it gets;
- the proxy accepts N downstream connections, opens one upstream connection for each, and
  decodes every frame in both directions with `Sv2Protocol` into that connection's own
  buffer (system memory, a `BufferPool`, or a `PooledBuffer` drawing from one shared
  `Pool[ByteBuffer]`, falling back to system memory when the pool is empty or, with
  `pooled-wait`, pausing that connection's reading until a buffer comes back), then
  forwards the frame's bytes and releases it;
- each client sends channel frames of mixed sizes (its id as channel id, a sequence number,
  a deterministic body), at most `--window` unanswered at a time, for `--duration` seconds
  counted from the moment the last client connected, and checks that every echo comes back
  intact and in order. A run in which nothing was sent says so and exits 1.

It prints frames/s and bytes/s through the proxy, where the frames' memory came from, and
the peak memory: frame bytes (the pool's, plus the most ever alive in system memory) and the
process's peak RSS. `--compare` runs the fallback and the backpressure modes in fresh
processes over the same pool and prints them side by side.
Run `python examples/sv2_proxy.py --help`; the defaults (1,000 connections, 3 s, pooled
buffers, 4 KiB read-ahead) suit a 2-core machine. A test runs it with a few connections.

Forwarding a pooled frame without copying needs care: since CPython 3.12 a transport that
cannot send at once keeps a reference to the very memoryview it was given (3.11 copies).
`FrameSender` therefore releases a frame only once the transport's write buffer is empty,
and checks for that every millisecond while it holds any: with backpressure, a held frame
is a buffer another connection may be waiting for.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import subprocess
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
    system_bytes: int = 0  # bytes of frames in system memory alive now
    system_bytes_peak: int = 0  # the most ever alive at once
    open_connections: int = 0  # proxy and upstream sides not yet closed, to shut down cleanly
    proxy_errors: list[str] = field(default_factory=list)


def release(frame: Frame, stats: Stats) -> None:
    """Release a frame the proxy is done with, counting its system memory as gone."""
    if not frame.data.from_pool:
        stats.system_bytes -= len(frame)
    frame.release()


class FrameSender:
    """Writes frames to a transport without copying, releasing each once it is surely sent."""

    POLL_S: Final = 0.001

    def __init__(self, transport: asyncio.Transport, stats: Stats) -> None:
        self.transport = transport
        self.stats = stats
        self.held: list[Frame] = []  # written, but maybe still referenced by the transport
        self.poll: asyncio.TimerHandle | None = None

    def send(self, frame: Frame) -> None:
        transport = self.transport
        if self.held and not transport.get_write_buffer_size():
            self.release_held()  # the transport drained: it no longer holds any of them
        transport.write(frame.view)
        if transport.get_write_buffer_size():
            self.held.append(frame)
            self.stats.frames_held += 1
            if self.poll is None:
                self.poll = asyncio.get_running_loop().call_later(self.POLL_S, self.check_drained)
        else:
            release(frame, self.stats)  # sent in full, synchronously

    def check_drained(self) -> None:
        self.poll = None
        if not self.transport.get_write_buffer_size():
            self.release_held()
        elif self.held:
            self.poll = asyncio.get_running_loop().call_later(self.POLL_S, self.check_drained)

    def release_held(self) -> None:
        for frame in self.held:
            release(frame, self.stats)
        self.held.clear()
        if self.poll is not None:
            self.poll.cancel()
            self.poll = None


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
            stats.system_bytes += len(frame)
            stats.system_bytes_peak = max(stats.system_bytes_peak, stats.system_bytes)

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
            release(frame, self.stats)
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


class Window:
    """When the clients send: from the moment the last one connected, for `duration` seconds
    and until at least `frames` frames were sent (a test's N; 0 for the timed demo)."""

    def __init__(self, connections: int, duration: float, frames: int) -> None:
        self.waiting_for = connections
        self.duration = duration
        self.frames = frames
        self.opened = asyncio.Event()
        self.start = self.deadline = 0.0

    def arrived(self) -> None:
        """One client connected (or failed to): the last one opens the window."""
        self.waiting_for -= 1
        if not self.waiting_for:
            self.start = time.monotonic()
            self.deadline = self.start + self.duration
            self.opened.set()

    def is_open(self, stats: Stats) -> bool:
        return time.monotonic() < self.deadline or stats.frames_sent < self.frames


async def client(client_id: int, port: int, window: Window, in_flight: int, stats: Stats) -> None:
    """Connect, wait until every client has, then send while the window is open, at most
    `in_flight` frames unanswered; check every echo."""
    try:
        reader, writer = await asyncio.open_connection(HOST, port)
    except OSError as exc:
        stats.client_errors.append(f"client {client_id}: could not connect: {exc!r}")
        window.arrived()
        return
    window.arrived()
    decoder = Decoder(BufferFromSystemMemory())
    sent = received = 0
    try:
        await window.opened.wait()
        while True:
            while sent - received < in_flight and window.is_open(stats):
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


BUFFER_KINDS: Final = ("system", "bufferpool", "pooled", "pooled-wait")
WAITING: Final = "pooled-wait"  # reads exactly: Sv2Protocol refuses read_ahead with it


@dataclass
class Buffers:
    """Where one demo's buffers come from: a per-connection maker and what it holds."""

    make: Callable[[], Buffer]
    describe: Callable[[], str]
    held_bytes: Callable[[], int]  # buffer memory allocated up front or kept (not frames)


def buffer_factory(kind: str, pool_bytes: int, pool_buffers: int) -> Buffers:
    """The buffers for `kind`:

    - system: `BufferFromSystemMemory`, a fresh allocation per frame;
    - bufferpool: a `BufferPool(pool_bytes)` per connection and side (8 slots each);
    - pooled: a `PooledBuffer` per connection and side, all drawing from one shared
      `Pool` of `pool_buffers` `ByteBuffer(pool_bytes)`, falling back to system memory
      when the pool is empty;
    - pooled-wait: the same, but a connection whose frame finds the pool empty pauses
      reading until a buffer comes back (`PooledBuffer(pool, timeout=None)`).
    """
    if kind == "system":
        return Buffers(BufferFromSystemMemory, lambda: "system memory: every frame is a fresh allocation", lambda: 0)
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

        return Buffers(make, describe, lambda: len(made) * pool_bytes)
    if kind in ("pooled", WAITING):
        shared = Pool(lambda: ByteBuffer(pool_bytes), pool_buffers, name="proxy")
        timeout = None if kind == WAITING else 0

        def describe_shared() -> str:
            st = shared.stats()
            policy = "waited for" if kind == WAITING else "fell back to system memory"
            return (
                f"one Pool of {pool_buffers} ByteBuffer({pool_bytes:,}) = {pool_buffers * pool_bytes / 2**20:,.1f} MiB"
                f" shared by all connections; {st.allocations} lends, at most {st.high_water} out at once,"
                f" {st.exhausted} found it empty ({policy}), {st.lent} still lent"
            )

        return Buffers(
            lambda: PooledBuffer(shared, timeout=timeout), describe_shared, lambda: pool_buffers * pool_bytes
        )
    raise ValueError(f"buffer kind must be one of {BUFFER_KINDS}, got {kind!r}")


def peak_rss_bytes() -> int:
    """This process's peak resident set size so far (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


@dataclass
class Report:
    """What a run measured."""

    connections: int
    elapsed: float
    stats: Stats
    pool: str
    held_bytes: int  # buffer memory the pools hold
    peak_rss: int

    @property
    def ok(self) -> bool:
        """Frames were sent, every one came back intact, and nothing failed."""
        s = self.stats
        return (
            s.frames_sent > 0
            and s.frames_sent == s.frames_echoed
            and not s.frames_corrupt
            and not s.client_errors
            and not s.proxy_errors
            and s.proxy_frames == 2 * s.frames_sent
        )

    @property
    def peak_frame_memory(self) -> int:
        """The pools' buffers plus the most frame bytes ever alive in system memory at once."""
        return self.held_bytes + self.stats.system_bytes_peak

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
            f"peak memory: frames {self.peak_frame_memory / 2**20:,.1f} MiB (pools {self.held_bytes / 2**20:,.1f} MiB"
            f" + system memory {s.system_bytes_peak / 2**20:,.1f} MiB at most at once);"
            f" process peak RSS {self.peak_rss / 2**20:,.1f} MiB",
        ]
        if not s.frames_sent:
            out.append("error: the clients sent nothing (a window too short for this machine? try -d 3)")
        out += [f"error: {e}" for e in (s.client_errors + s.proxy_errors)[:5]]
        return out

    def summary(self) -> dict[str, float]:
        """The figures `--compare` puts side by side."""
        s = self.stats
        return {
            "frames_per_s": s.proxy_frames / self.elapsed if self.elapsed else 0.0,
            "frames_in_system": s.frames_in_system,
            "pool_mib": self.held_bytes / 2**20,
            "system_peak_mib": s.system_bytes_peak / 2**20,
            "frame_peak_mib": self.peak_frame_memory / 2**20,
            "rss_peak_mib": self.peak_rss / 2**20,
            "ok": float(self.ok),
        }


async def run_demo(
    connections: int = 1000,
    duration: float = 3.0,
    buffer: str = "system",
    window: int = 4,
    read_ahead: int = 4096,
    pool_bytes: int = 32768,
    pool_buffers: int = 0,
    grace: float = 20.0,
    frames: int = 0,
) -> Report:
    """Run the whole demo on 127.0.0.1 and return what it measured.

    The clients send from the moment the last one has connected, for `duration` seconds and
    until at least `frames` frames were sent; the run gives up `grace` seconds after that.
    """
    if connections < 1 or window < 1 or duration < 0 or frames < 0:
        raise ValueError(
            "need connections >= 1, window >= 1, duration >= 0, frames >= 0;"
            f" got {connections}, {window}, {duration}, {frames}"
        )
    if buffer == WAITING and read_ahead:
        raise ValueError(f"{WAITING} reads exactly: read_ahead must be 0, got {read_ahead}")
    buffers = buffer_factory(buffer, pool_bytes, pool_buffers or connections)
    loop = asyncio.get_running_loop()
    stats = Stats()
    upstream = await loop.create_server(lambda: Echo(stats), HOST, 0, backlog=max(100, connections))
    up_port: int = upstream.sockets[0].getsockname()[1]
    proxy = Proxy(buffers.make, up_port, read_ahead, stats)
    server = await loop.create_server(proxy.accept, HOST, 0, backlog=max(100, connections))
    port: int = server.sockets[0].getsockname()[1]
    opening = Window(connections, duration, frames)
    tasks = [asyncio.create_task(client(i, port, opening, window, stats)) for i in range(connections)]
    try:
        async with asyncio.timeout(grace):  # connecting
            await opening.opened.wait()
        async with asyncio.timeout(duration + grace):  # sending, and the last echoes
            await asyncio.gather(*tasks)
    except TimeoutError:
        stats.client_errors.append(f"gave up: still running {duration + grace:.0f} s after the last client connected")
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    elapsed = time.monotonic() - opening.start if opening.start else 0.0
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
    return Report(connections, elapsed, stats, buffers.describe(), buffers.held_bytes(), peak_rss_bytes())


def compare(argv: Sequence[str], modes: Sequence[str] = ("pooled", WAITING)) -> list[str]:
    """Run each mode in a fresh process (so each peak RSS is its own); return a table."""
    rows = [
        f"{'mode':<12} {'frames/s':>10} {'in system':>10} {'pool MiB':>9} {'system MiB':>11}"
        f" {'frames MiB':>11} {'peak RSS MiB':>13}  ok"
    ]
    for mode in modes:
        child = [sys.executable, __file__, *argv, "--buffer", mode, "--read-ahead", "0", "--json"]
        out = subprocess.run(child, capture_output=True, text=True, check=False)
        if out.returncode not in (0, 1) or not out.stdout.strip():
            rows.append(f"{mode:<12} failed (exit {out.returncode}): {out.stderr.strip()[-300:]}")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append(
            f"{mode:<12} {r['frames_per_s']:>10,.0f} {r['frames_in_system']:>10,.0f} {r['pool_mib']:>9,.1f}"
            f" {r['system_peak_mib']:>11,.1f} {r['frame_peak_mib']:>11,.1f} {r['rss_peak_mib']:>13,.1f}"
            f"  {'yes' if r['ok'] else 'NO'}"
        )
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, run the demo, print the report; exit status 0 when every frame came back."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("-n", "--connections", type=int, default=1000, help="client connections (default 1000)")
    parser.add_argument("-d", "--duration", type=float, default=3.0, help="seconds of sending, from the last connection (default 3)")
    parser.add_argument(
        "--frames", type=int, default=0, help="and until at least this many frames were sent (default 0)"
    )
    parser.add_argument("-b", "--buffer", choices=BUFFER_KINDS, default="pooled", help="proxy buffers (default pooled)")
    parser.add_argument("-w", "--window", type=int, default=4, help="unanswered frames per client (default 4)")
    # With read_ahead=0 every header and payload is a separate read, one loop iteration
    # apart, so with many busy connections nearly every one is mid-frame (holding memory)
    # at any time; reading ahead completes most small frames within one read.
    parser.add_argument(
        "--read-ahead",
        type=int,
        default=None,
        help=f"Sv2Protocol read_ahead; 0 reads exactly (default 4096, and 0 for {WAITING})",
    )
    parser.add_argument(
        "--pool-bytes", type=int, default=32768, help="BufferPool capacity, or ByteBuffer size (default 32768)"
    )
    parser.add_argument(
        "--pool-buffers", type=int, default=0, help="ByteBuffers in the shared pool (default: one per connection)"
    )
    parser.add_argument(
        "--compare",
        action="store_true",
        help="run pooled (fallback) and pooled-wait (backpressure) in fresh processes; print both",
    )
    parser.add_argument("--json", action="store_true", help="print only the summary, as one JSON line")
    args = parser.parse_args(argv)
    if args.compare:
        passed = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--compare"]
        print(
            f"fallback (pooled) vs backpressure (pooled-wait): {args.connections} connections,"
            f" {args.duration} s each, reading exactly (read_ahead=0), each in a fresh process"
        )
        for line in compare(passed):
            print(line)
        return 0
    read_ahead = args.read_ahead if args.read_ahead is not None else (0 if args.buffer == WAITING else 4096)
    connections = raise_fd_limit(args.connections)
    if connections < args.connections and not args.json:
        print(f"note: fd limit allows only {connections} connections (4 sockets each)")
    report = asyncio.run(
        run_demo(
            connections,
            args.duration,
            args.buffer,
            args.window,
            read_ahead,
            args.pool_bytes,
            args.pool_buffers,
            frames=args.frames,
        )
    )
    if args.json:
        print(json.dumps(report.summary()))
    else:
        print(f"buffer={args.buffer} window={args.window} read_ahead={read_ahead}")
        for line in report.lines():
            print(line)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
