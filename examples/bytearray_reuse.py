"""Read a file in chunks into pooled `ByteBuffer`s: no allocation per chunk.

`f.read(65536)` builds a new 64 KiB `bytes` for every chunk. Here the chunks land in
`Pool(lambda: ByteBuffer(64 * 1024), 32)`: 32 buffers allocated once, filled with
`buf.readinto(f)` and read through `buf.view()`. Releasing a buffer resets its length to 0
and keeps its memory, so the next chunk reuses the very same bytes.

To look like a real pipeline (a consumer that lags the reader: a socket, a thread, a
decoder), up to `--window` chunks are in flight at once; the pool's LIFO order means only
that many buffers are ever touched, which `stats().high_water` shows. The SHA-256 of the
chunks is checked against `hashlib.file_digest`, and `tracemalloc` measures the peak
memory allocated while reading, against the same loop written with `f.read()`.

`reset()` releases the views a buffer handed out, so a stale `buf.view()` raises instead of
showing the next chunk. `hasher.update(view)` copies what it needs, so that is safe; a view
you keep or slice yourself must be dropped before the buffer goes back.

Run `python examples/bytearray_reuse.py [PATH] [--size BYTES] [--window N]`; without a
PATH it hashes a temporary file of `--size` pseudo-random bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import random
import sys
import tempfile
import tracemalloc
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from objpool import ByteBuffer, OwnedRef, Pool, PoolStats

CHUNK = 64 * 1024


@dataclass(frozen=True)
class Report:
    """What reading one file through the pool did."""

    path: str
    size: int
    chunks: int
    sha256: str
    expected_sha256: str
    """`hashlib.file_digest` of the same file, for comparison."""
    buffers_used: int
    """Distinct `ByteBuffer` objects that held a chunk."""
    stats: PoolStats
    pooled_peak: int
    """Peak bytes allocated by the reading loop through the pool."""
    naive_peak: int
    """Peak bytes allocated by the same loop with `f.read(CHUNK)`."""


def hash_pooled(f: io.BufferedReader, pool: Pool[ByteBuffer], window: int) -> tuple[str, int, int, int]:
    """SHA-256 of what `f` holds, read into pooled buffers with `window` chunks in flight.

    Returns the hex digest, the bytes and chunks read, and how many distinct buffers held one.
    """
    hasher = hashlib.sha256()
    in_flight: deque[OwnedRef[ByteBuffer]] = deque()
    used: set[int] = set()
    size = chunks = 0
    try:
        while True:
            ref = pool.allocate()
            if ref.value.readinto(f) == 0:  # end of file
                ref.release()
                break
            in_flight.append(ref)
            chunks += 1
            if len(in_flight) == window:
                # The oldest chunk is consumed; its buffer goes back and is reused next.
                with in_flight.popleft() as buf:
                    used.add(id(buf))
                    size += len(buf)
                    hasher.update(buf.view())
        while in_flight:
            with in_flight.popleft() as buf:
                used.add(id(buf))
                size += len(buf)
                hasher.update(buf.view())
    finally:
        for ref in in_flight:  # only after an error: hand every buffer back
            ref.release()
    return hasher.hexdigest(), size, chunks, len(used)


def hash_naive(f: io.BufferedReader, window: int) -> str:
    """The same pipeline with a fresh `bytes` per chunk, for comparison."""
    hasher = hashlib.sha256()
    in_flight: deque[bytes] = deque()
    while chunk := f.read(CHUNK):
        in_flight.append(chunk)
        if len(in_flight) == window:
            hasher.update(in_flight.popleft())
    for chunk in in_flight:
        hasher.update(chunk)
    return hasher.hexdigest()


def peak_allocated(fn: Callable[[], object]) -> int:
    """Peak bytes `tracemalloc` saw allocated while `fn()` ran, above what was live before."""
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        fn()
        return tracemalloc.get_traced_memory()[1] - before
    finally:
        if started:
            tracemalloc.stop()


def run(path: Path, window: int = 4) -> Report:
    """Hash `path` through a pool of 32 buffers of 64 KiB, and measure both ways."""
    if not 1 <= window <= 32:
        raise ValueError(f"window must be between 1 and 32 (the pool's capacity), got {window}")
    pool = Pool(lambda: ByteBuffer(CHUNK), 32, name="64 KiB buffers")  # Pool[ByteBuffer]
    results: list[tuple[str, int, int, int]] = []
    # Files are opened outside the measurement: only the reading loop counts.
    with path.open("rb") as f:
        pooled_peak = peak_allocated(lambda: results.append(hash_pooled(f, pool, window)))
    with path.open("rb") as f:
        naive_peak = peak_allocated(lambda: hash_naive(f, window))
    with path.open("rb") as f:
        expected = hashlib.file_digest(f, "sha256").hexdigest()
    digest, size, chunks, used = results[0]
    return Report(
        path=str(path),
        size=size,
        chunks=chunks,
        sha256=digest,
        expected_sha256=expected,
        buffers_used=used,
        stats=pool.stats(),
        pooled_peak=pooled_peak,
        naive_peak=naive_peak,
    )


def main(argv: Sequence[str] | None = None) -> Report:
    """Parse arguments, hash the file (or a temporary one), print what it cost."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("path", nargs="?", type=Path, help="file to read (default: a temporary file)")
    parser.add_argument("--size", type=int, default=1 << 20, help="temporary file size (default 1 MiB)")
    parser.add_argument("--window", type=int, default=4, help="chunks in flight at once (default 4)")
    args = parser.parse_args(argv)
    if args.path is not None:
        report = run(args.path, args.window)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "data.bin"
            path.write_bytes(random.Random(2024).randbytes(args.size))
            report = run(path, args.window)
    s = report.stats
    verdict = "matches" if report.sha256 == report.expected_sha256 else "DIFFERS from"
    print(f"read {report.size} bytes in {report.chunks} chunks of up to {CHUNK} bytes")
    print(f"sha256 {report.sha256} {verdict} hashlib.file_digest")
    print(
        f"pool: {s.allocations} allocations, {s.deallocations} deallocations, "
        f"high water {s.high_water} of {s.capacity}; {report.buffers_used} distinct buffers held data"
    )
    print(f"peak allocated while reading: {report.pooled_peak} bytes pooled, {report.naive_peak} bytes with f.read()")
    return report


if __name__ == "__main__":
    main(sys.argv[1:])
