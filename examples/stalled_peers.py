"""What N stalled peers cost a server: each sends one header announcing a large frame, then nothing.

A hostile or broken peer can announce up to `max_payload` bytes (1 MiB by default) in a 6-byte
header and then stall. A decoder that reserved the announced frame at once would let 1,000 such
peers pin 1 GiB; objpool's `Decoder` reserves a frame `FRAME_STEP` (64 KiB) at a time as its
bytes arrive, so each stalled peer pins one step beyond what it sent, whatever it announced.
With `--frame-timeout`, `Sv2Protocol` drops a peer whose frame is not complete in time.

Everything runs on 127.0.0.1 in one asyncio loop, bounded in connections and time. It prints
the memory the server's buffers hold once every peer has stalled: the bytes reserved in the
buffers, the Python heap growth (tracemalloc) and the process's resident-set growth.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
import tracemalloc
from collections.abc import Callable, Sequence
from typing import Final

from objpool import ByteBuffer, Pool
from objpool.sv2 import DEFAULT_MAX_PAYLOAD, Buffer, BufferFromSystemMemory, Decoder, PooledBuffer, Sv2Protocol

HOST: Final = "127.0.0.1"
BUFFER_KINDS: Final = ("system", "pooled")


def rss_bytes() -> int:
    """The process's resident set now (Linux), 0 where /proc is missing."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096
    except OSError:
        return 0


def header(msg_length: int) -> bytes:
    """A 6-byte Sv2 header: extension 0, message type 1, `msg_length` payload bytes to follow."""
    return b"\x00\x00\x01" + msg_length.to_bytes(3, "little")


async def measure(connections: int, kind: str, announce: int, timeout: float) -> dict[str, float]:
    loop = asyncio.get_running_loop()
    shared: Pool[ByteBuffer] = Pool(lambda: ByteBuffer(4096), max(1, connections // 4))
    make: Callable[[], Buffer] = BufferFromSystemMemory if kind == "system" else (lambda: PooledBuffer(shared))
    protocols: list[Sv2Protocol] = []

    def make_protocol() -> Sv2Protocol:
        proto = Sv2Protocol(Decoder(make()), lambda frame: frame.release())
        protocols.append(proto)
        return proto

    server = await loop.create_server(make_protocol, HOST, 0)
    port = server.sockets[0].getsockname()[1]
    gc.collect()
    tracemalloc.start()
    heap_before, rss_before = tracemalloc.get_traced_memory()[0], rss_bytes()
    writers = []
    for _ in range(connections):
        _, writer = await asyncio.open_connection(HOST, port)
        writer.write(header(announce))
        writers.append(writer)
    deadline = time.monotonic() + timeout
    while sum(p.decoder.pending for p in protocols) < 6 * connections:
        if time.monotonic() > deadline:
            raise SystemExit(f"only {sum(p.decoder.pending for p in protocols) // 6} headers arrived in {timeout} s")
        await asyncio.sleep(0.01)
    reserved = sum(len(p.decoder.buffer) for p in protocols)
    heap = tracemalloc.get_traced_memory()[0] - heap_before
    rss = rss_bytes() - rss_before
    tracemalloc.stop()
    for writer in writers:
        writer.close()
    server.close()
    await server.wait_closed()
    return {"reserved": reserved, "heap": heap, "rss": rss}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the measurement and print it."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("-n", "--connections", type=int, default=1000, help="stalled peers (default 1000)")
    parser.add_argument("-b", "--buffer", choices=BUFFER_KINDS, default="system", help="the server's buffers")
    parser.add_argument(
        "--announce", type=int, default=DEFAULT_MAX_PAYLOAD, help="msg_length each header announces (default 1 MiB)"
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="give up after this many seconds (default 60)")
    args = parser.parse_args(argv)
    if not 1 <= args.connections <= 5000:
        parser.error(f"--connections must be in 1..5000, got {args.connections}")
    result = asyncio.run(measure(args.connections, args.buffer, args.announce, args.timeout))
    n = args.connections
    mib = 1 << 20
    print(f"{n} peers, each sent one 6-byte header announcing {args.announce} bytes, then stalled ({args.buffer} buffers):")
    print(f"  reserved in the buffers: {result['reserved'] / mib:8.1f} MiB ({result['reserved'] / n / 1024:.1f} KiB per peer)")
    print(f"  Python heap growth:      {result['heap'] / mib:8.1f} MiB ({result['heap'] / n / 1024:.1f} KiB per peer)")
    print(f"  resident set growth:     {result['rss'] / mib:8.1f} MiB ({result['rss'] / n / 1024:.1f} KiB per peer)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
