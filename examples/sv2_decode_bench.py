"""Decoder throughput: frames/s for 64 B, 1 KiB and 16 KiB frames, per `Buffer` implementation.

Each run decodes a pre-encoded stream and releases every frame at once (a decode-and-drop
loop, the proxy's common case), in two ways:

- `feed`: 64 KiB chunks copied in with `Decoder.feed`, as `Sv2Protocol(read_ahead=...)` does;
- `recv`: `get_buffer()` / copy / `buffer_updated()` with exactly the bytes asked for, as the
  zero-copy `Sv2Protocol` path does (the copy stands in for `socket.recv_into`).

Run `PYTHONHASHSEED=0 python examples/sv2_decode_bench.py` (add `--quick` for a smoke run).
`measure()` is importable for the benchmark suite.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from typing import Final

from objpool import ByteBuffer, Pool
from objpool.sv2 import Buffer, BufferFromSystemMemory, BufferPool, Decoder, MissingBytes, PooledBuffer

FRAME_SIZES: Final = (64, 1024, 16384)  # whole frames on the wire, header included
CHUNK: Final = 1 << 16


def stream_of(frame_size: int, count: int) -> bytes:
    """`count` identical frames of `frame_size` wire bytes."""
    length = frame_size - 6
    one = b"\x01\x00\x07" + length.to_bytes(3, "little") + bytes(length)
    return one * count


def _decode_feed(decoder: Decoder, stream: memoryview) -> int:
    n = 0
    for pos in range(0, len(stream), CHUNK):
        for frame in decoder.feed(stream[pos : pos + CHUNK]):
            frame.release()
            n += 1
    return n


def _decode_recv(decoder: Decoder, stream: memoryview) -> int:
    n = 0
    pos = 0
    end = len(stream)
    while pos < end:
        view = decoder.get_buffer()
        take = len(view)
        view[:] = stream[pos : pos + take]
        pos += take
        ev = decoder.buffer_updated(take)
        if not isinstance(ev, MissingBytes):
            ev.release()
            n += 1
    return n


MODES: Final[dict[str, Callable[[Decoder, memoryview], int]]] = {"feed": _decode_feed, "recv": _decode_recv}


def measure(make_buffer: Callable[[], Buffer], frame_size: int, mode: str = "feed", seconds: float = 0.3) -> float:
    """Frames decoded per second (best of 3 runs of about `seconds / 3` each)."""
    count = max(16, min(20000, (8 << 20) // frame_size))
    stream = memoryview(stream_of(frame_size, count))
    decode = MODES[mode]
    best = 0.0
    for _ in range(3):
        decoder = Decoder(make_buffer())
        done = 0
        start = time.perf_counter()
        elapsed = 0.0
        while elapsed < seconds / 3 or done == 0:
            done += decode(decoder, stream)
            elapsed = time.perf_counter() - start
        best = max(best, done / elapsed)
    return best


def buffers() -> dict[str, Callable[[], Buffer]]:
    """Every Buffer implementation worth comparing, by name."""
    return {
        "system": BufferFromSystemMemory,
        "BufferPool": lambda: BufferPool(1 << 18),
        "PooledBuffer": lambda: PooledBuffer(Pool(lambda: ByteBuffer(1 << 15), 4)),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Print a frames/s table: one row per buffer and mode, one column per frame size."""
    parser = argparse.ArgumentParser(description="Sv2 decoder frames/s per Buffer implementation")
    parser.add_argument("--quick", action="store_true", help="a short smoke run")
    args = parser.parse_args(argv)
    seconds = 0.03 if args.quick else 0.6
    print(f"Python {sys.version.split()[0]}; frames/s, decode-and-release")
    print(f"{'buffer':<14}{'mode':<6}" + "".join(f"{size:>12,} B" for size in FRAME_SIZES))
    for name, make in buffers().items():
        for mode in MODES:
            rates = [measure(make, size, mode, seconds) for size in FRAME_SIZES]
            print(f"{name:<14}{mode:<6}" + "".join(f"{rate:>14,.0f}" for rate in rates))
    return 0


if __name__ == "__main__":
    sys.exit(main())
