"""Workload 4, "Decoder throughput": frames per second through the Sv2 `Decoder`, per `Buffer`.

Invariant: one operation is one frame of a prepared, seeded stream of mixed-size frames
(payloads log-uniform from 16 B to 16 KiB), which every contestant decodes whole in every
loop, releasing each frame as soon as it is out (decode-and-drop, a proxy's common case).
The stream arrives split at prepared random points (chunks of 1 B to 16 KiB, like socket
reads), fed three ways:

- `feed`: each chunk copied in with `Decoder.feed`;
- `recv`: the zero-copy path, `get_buffer()` then `buffer_updated(n)`, with short reads that
  stop at the chunk boundaries (the copy stands in for `socket.recv_into`);
- `asyncio`: a real `Sv2Protocol` server on 127.0.0.1 fed by a client in the same event
  loop, once reading straight into the buffer and once with `read_ahead=64 KiB`.

On the compiled build a last group compares the builds within the run: `Decoder.feed` of one
whole 64-byte or 1 KiB frame per call over a `BufferPool`, here and in a child process that
runs the pure-Python reference of this same install (`OBJPOOL_PURE_PYTHON=1`).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from objpool import COMPILED
from objpool.sv2 import BufferFromSystemMemory, BufferPool, Decoder, Encoder, Frame, MissingBytes, Sv2Protocol
from ._harness import (
    Clock,
    Contestant,
    Group,
    GroupResult,
    MakeTimer,
    Progress,
    Settings,
    Timer,
    Workload,
    WorkloadResult,
    child_reply,
    child_request,
    format_time,
    run_child,
    run_group,
    speed_span,
    speed_words,
)
from ._sv2_buffers import BASELINE, BufferMaker, buffer_makers

__all__ = ["WORKLOAD", "child_main"]

ExitStack = contextlib.ExitStack[bool | None]

MIN_PAYLOAD: Final = 16
MAX_PAYLOAD: Final = (16 << 10) - 6  # whole frames fit the PPool's 16 KiB blocks
MAX_CHUNK: Final = 16 << 10
READ_AHEAD: Final = 64 << 10
LOOPBACK_TIMEOUT_S: Final = 60.0
WHOLE_FRAME_SIZES: Final = (64, 1024)  # on the wire, header included
CROSS_BUILD_TARGET: Final = 1.5  # issue 9: compiled frames/s over the pure build's


@dataclass(frozen=True)
class Stream:
    """Encoded frames back to back, the number of frames, and the split points."""

    data: memoryview
    frames: int
    chunks: list[memoryview]

    @classmethod
    def prepare(cls, total: int, seed: str) -> Stream:
        rng = random.Random(seed)
        encoder = Encoder(BufferFromSystemMemory())
        wire = bytearray()
        frames = 0
        lo, hi = math.log(MIN_PAYLOAD), math.log(MAX_PAYLOAD)
        while len(wire) < total:
            size = int(math.exp(rng.uniform(lo, hi)))
            with encoder.encode(rng.randrange(256), rng.randbytes(size), extension_type=1) as frame:
                wire += frame.view
            frames += 1
        data = memoryview(bytes(wire))
        chunks = []
        pos = 0
        while pos < len(data):
            end = min(len(data), pos + rng.randint(1, MAX_CHUNK))
            chunks.append(data[pos:end])
            pos = end
        return cls(data, frames, chunks)


def _feed(make_buffer: BufferMaker, stream: Stream, clock: Clock) -> MakeTimer:
    def make(stack: ExitStack) -> Timer:
        decoder = Decoder(make_buffer())
        chunks = stream.chunks

        def timer(loops: int) -> float:
            feed = decoder.feed
            t0 = clock()
            for _ in range(loops):
                for chunk in chunks:
                    for frame in feed(chunk):
                        frame.release()
            return clock() - t0

        return timer

    return make


def _recv(make_buffer: BufferMaker, stream: Stream, clock: Clock) -> MakeTimer:
    def make(stack: ExitStack) -> Timer:
        decoder = Decoder(make_buffer())
        chunks = stream.chunks

        def timer(loops: int) -> float:
            get_buffer = decoder.get_buffer
            buffer_updated = decoder.buffer_updated
            t0 = clock()
            for _ in range(loops):
                for chunk in chunks:
                    pos = 0
                    end = len(chunk)
                    while pos < end:
                        view = get_buffer()
                        take = min(len(view), end - pos)
                        view[:take] = chunk[pos : pos + take]
                        pos += take
                        ev = buffer_updated(take)
                        if not isinstance(ev, MissingBytes):
                            ev.release()
            return clock() - t0

        return timer

    return make


async def _loopback(make_buffer: BufferMaker, stream: Stream, loops: int, read_ahead: int) -> float:
    loop = asyncio.get_running_loop()
    want = stream.frames * loops
    done = loop.create_future()
    count = 0

    def on_frame(frame: Frame) -> None:
        nonlocal count
        frame.release()
        count += 1
        if count == want:
            done.set_result(None)

    def on_close(exc: BaseException | None) -> None:
        if exc is not None and not done.done():
            done.set_exception(exc)

    server = await loop.create_server(
        lambda: Sv2Protocol(Decoder(make_buffer()), on_frame, on_close, read_ahead=read_ahead), "127.0.0.1", 0
    )
    async with server:
        port = server.sockets[0].getsockname()[1]
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            t0 = time.perf_counter()
            for _ in range(loops):
                writer.write(stream.data)
            await asyncio.wait_for(done, LOOPBACK_TIMEOUT_S)
            elapsed = time.perf_counter() - t0
        finally:
            writer.close()
            await writer.wait_closed()
    return elapsed


def _asyncio(make_buffer: BufferMaker, stream: Stream, read_ahead: int) -> MakeTimer:
    def make(stack: ExitStack) -> Timer:
        def timer(loops: int) -> float:
            return asyncio.run(_loopback(make_buffer, stream, loops, read_ahead))

        return timer

    return make


def _whole_frames(size: int, clock: Clock) -> MakeTimer:
    def make(stack: ExitStack) -> Timer:
        decoder = Decoder(BufferPool(1 << 16))
        with Encoder(BufferFromSystemMemory()).encode(1, bytes(size - 6), extension_type=1) as frame:
            wire = bytes(frame.view)

        def timer(loops: int) -> float:
            feed = decoder.feed
            t0 = clock()
            for _ in range(loops):
                for frame in feed(wire):
                    frame.release()
            return clock() - t0

        return timer

    return make


def _measure_whole_frames(settings: Settings, progress: Progress, build: str) -> GroupResult:
    names = [f"{size}-byte frames, {build}" for size in WHOLE_FRAME_SIZES]
    group = Group(
        f"whole-frames/{build}",
        f"Decoder.feed over BufferPool, one whole frame per call, {build} build",
        "frame",
        names[0],
        [Contestant(name, _whole_frames(size, settings.clock)) for name, size in zip(names, WHOLE_FRAME_SIZES)],
    )
    return run_group(group, settings, progress)


def child_main() -> None:
    """Entry point of the child process that runs the pure-Python reference (see the module)."""
    settings, progress = child_request()
    progress.workload(f"{TITLE}, child running the pure-Python reference")
    result = _measure_whole_frames(settings, progress, "pure")
    progress.done()
    child_reply([result])


def _cross_build(settings: Settings, progress: Progress, result: WorkloadResult) -> None:
    """Whole frames here; on the compiled build, in the pure reference too, and the ratio."""
    here = _measure_whole_frames(settings, progress, "compiled" if COMPILED else "pure")
    result.groups.append(here)
    if not COMPILED:
        rates = ", ".join(f"{size}-byte {1 / row.median:,.0f}" for size, row in zip(WHOLE_FRAME_SIZES, here.rows))
        result.summary.append(f"Decoder.feed over BufferPool, whole frames, frames/s: {rates} (the compiled build compares itself with these).")
        return
    if not settings.child:
        return
    progress.done()
    (pure,) = run_child(__name__, settings, progress, {"OBJPOOL_PURE_PYTHON": "1"})
    # The child's rows are compared with this build's, not with its own baseline.
    result.groups.append(pure)
    parts = []
    ratios = []
    for size, mine, theirs in zip(WHOLE_FRAME_SIZES, here.rows, pure.rows):
        ratio = theirs.median / mine.median
        ratios.append(ratio)
        parts.append(f"{size}-byte {1 / mine.median:,.0f} frames/s = {ratio:.2f}x the pure build's {1 / theirs.median:,.0f}")
    met = "met" if min(ratios) >= CROSS_BUILD_TARGET else "MISSED"
    result.verdict += f"; compiled {speed_span(ratios)} pure"
    result.summary.append(
        "Decoder.feed over BufferPool, whole frames, compiled vs the pure reference in a child process: "
        + "; ".join(parts)
        + f" [target >= {CROSS_BUILD_TARGET:g}x: {met}]."
    )


Kind = Callable[[BufferMaker, Stream], MakeTimer]


def run(settings: Settings, progress: Progress) -> WorkloadResult:
    """Sans-IO feed and recv, then asyncio on loopback, every available `Buffer`."""
    result = WorkloadResult(NAME, TITLE)
    makers = buffer_makers()
    stream = Stream.prepare(settings.decoder_stream_bytes, "decoder")
    loop_stream = Stream.prepare(settings.loopback_stream_bytes, "loopback")
    kinds: list[tuple[str, str, Kind, Stream]] = [
        ("feed", "Decoder.feed, random splits", lambda m, s: _feed(m, s, settings.clock), stream),
        ("recv", "get_buffer/buffer_updated, short reads", lambda m, s: _recv(m, s, settings.clock), stream),
        ("asyncio", "Sv2Protocol on loopback", lambda m, s: _asyncio(m, s, 0), loop_stream),
        (
            "asyncio-read-ahead",
            "Sv2Protocol on loopback, read_ahead=64 KiB",
            lambda m, s: _asyncio(m, s, READ_AHEAD),
            loop_stream,
        ),
    ]
    for key, title, kind, s in kinds:
        group = Group(
            key,
            f"{title} ({s.frames:,} frames, {len(s.data) >> 10:,} KiB)",
            "frame",
            BASELINE,
            [Contestant(name, kind(maker, s)) for name, maker in makers.items()],
            ops_per_loop=s.frames,
        )
        result.groups.append(run_group(group, settings, progress))
    for measured in result.groups:
        base = measured.row(BASELINE)
        parts = [f"{BASELINE} {1 / base.median:,.0f} frames/s"]
        for name in ("BufferPool", "PooledBuffer"):
            if measured.has(name):
                row = measured.row(name)
                parts.append(f"{name} {1 / row.median:,.0f} ({speed_words(row.speedup)})")
        result.summary.append(f"Decoder, {measured.key}: " + ", ".join(parts) + f"; {format_time(base.median)}/frame.")
    pooled = [g.row(name).speedup for g in result.groups for name in ("BufferPool", "PooledBuffer") if g.has(name)]
    result.verdict = f"Decoder: pooled buffers {speed_span(pooled)} fresh memory's frames/s"
    _cross_build(settings, progress, result)
    return result


NAME: Final = "decoder"
TITLE: Final = "4. Decoder throughput"
WORKLOAD: Final = Workload(NAME, TITLE, run)
