"""Quick per-message timing of the Sv2 buffers (not a benchmark suite; see `objpool-bench`, the benchmark suite in `benchmarks/`).

One message = `get_writable` in 10-byte chunks (as the Sv2 decoder fills), `get_data_owned`,
then `release()` of the slice: decode-and-drop, the common case. Prints the median over
repeats of ns per message for BufferFromSystemMemory (the baseline), BufferPool and
PooledBuffer, and each one's ratio to the baseline.

    python examples/sv2_buffer_timing.py                  # small default run
    python examples/sv2_buffer_timing.py --messages 200000 --repeats 9 --size 100
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence

from objpool import ByteBuffer, Pool
from objpool.sv2 import Buffer, BufferFromSystemMemory, BufferPool, PooledBuffer


def per_message_ns(buf: Buffer, messages: int, size: int, chunk: int = 10) -> float:
    """Time `messages` fill-take-release cycles of `size` bytes; ns per message."""
    chunks = [chunk] * (size // chunk) + ([size % chunk] if size % chunk else [])
    get_writable = buf.get_writable
    get_data_owned = buf.get_data_owned
    start = time.perf_counter_ns()
    for _ in range(messages):
        for n in chunks:
            get_writable(n)
        get_data_owned().release()
    return (time.perf_counter_ns() - start) / messages


def candidates(size: int) -> dict[str, Callable[[], Buffer]]:
    return {
        "BufferFromSystemMemory": BufferFromSystemMemory,
        "BufferPool": lambda: BufferPool(2**16 * 5),  # the Sv2 decoder's size
        "PooledBuffer": lambda: PooledBuffer(Pool(lambda: ByteBuffer(max(size, 1)), 8)),
    }


def run(messages: int, size: int, repeats: int) -> dict[str, float]:
    """Median ns per message for each buffer, measured interleaved to share the noise."""
    makers = candidates(size)
    samples: dict[str, list[float]] = {name: [] for name in makers}
    for _ in range(repeats):
        for name, make in makers.items():
            samples[name].append(per_message_ns(make(), messages, size))
    return {name: statistics.median(values) for name, values in samples.items()}


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--size", type=int, default=60, help="message bytes (default 60)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    result = run(args.messages, args.size, args.repeats)
    base = result["BufferFromSystemMemory"]
    print(
        f"{args.size}-byte messages in 10-byte get_writable chunks, + get_data_owned + release;"
        f" median of {args.repeats} x {args.messages} messages"
    )
    for name, ns in result.items():
        print(f"  {name:24} {ns:8.0f} ns/message  {ns / base:5.2f}x baseline")
    return result


if __name__ == "__main__":
    main()
