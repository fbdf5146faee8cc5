"""Workload 5, "Byte buffers": fill 1, 4 and 64 KiB and 1 MiB from a file and from `BytesIO`.

Invariant: every contestant fills a whole buffer of the group's size per operation, so the
memory it is given is touched (written) in every case: a pooled `ByteBuffer` from
`Pool(lambda: ByteBuffer(n), k)` and `readinto`, against a fresh `bytearray(n)` and
`readinto` (the baseline), and a fresh `bytes` from `read(n)` (no zero-fill: the cheapest way
to get fresh bytes from a file). The same groups run again in a child process whose environment sets
`MALLOC_MMAP_THRESHOLD_=131072`: glibc then serves every block of 128 KiB or more with a fresh
`mmap` (and returns it with `munmap`), which is what a long-running process with a fragmented
heap sees for big blocks; the child sends its results back as JSON on stdout.
"""

from __future__ import annotations

import contextlib
import io
import os
import random
import tempfile
from collections.abc import Callable
from itertools import repeat
from typing import Final

from objpool import ByteBuffer, Pool
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

__all__ = ["WORKLOAD", "child_main"]

ExitStack = contextlib.ExitStack[bool | None]
Source = Callable[[ExitStack], io.RawIOBase | io.BytesIO]

MMAP_THRESHOLD: Final = 131072
POOLED: Final = "Pool[ByteBuffer] + readinto"
FRESH: Final = "fresh bytearray(n) + readinto"
READ: Final = "fresh bytes: read(n)"
POOL_SIZE: Final = 4


def _pooled(size: int, open_source: Source, clock: Clock) -> MakeTimer:
    def make(stack: ExitStack) -> Timer:
        src = open_source(stack)
        pool = Pool(lambda: ByteBuffer(size), POOL_SIZE)

        def timer(loops: int) -> float:
            seek = src.seek
            allocate = pool.allocate
            t0 = clock()
            for _ in repeat(None, loops):
                seek(0)
                with allocate() as buf:
                    buf.readinto(src)  # a file or BytesIO fills it in one call, as for the baseline
            return clock() - t0

        return timer

    return make


def _fresh(size: int, open_source: Source, clock: Clock) -> MakeTimer:
    def make(stack: ExitStack) -> Timer:
        src = open_source(stack)

        def timer(loops: int) -> float:
            seek = src.seek
            readinto = src.readinto
            t0 = clock()
            for _ in repeat(None, loops):
                seek(0)
                buf = bytearray(size)
                readinto(buf)  # a file or BytesIO fills it in one call
            return clock() - t0

        return timer

    return make


def _read(size: int, open_source: Source, clock: Clock) -> MakeTimer:
    def make(stack: ExitStack) -> Timer:
        src = open_source(stack)

        def timer(loops: int) -> float:
            seek = src.seek
            read = src.read
            t0 = clock()
            for _ in repeat(None, loops):
                seek(0)
                read(size)
            return clock() - t0

        return timer

    return make


def _groups(settings: Settings, path: str, data: bytes, where: str) -> list[Group]:
    def open_file(stack: ExitStack) -> io.RawIOBase:
        # Unbuffered: readinto goes straight to read(2), as a competent bulk reader does.
        return stack.enter_context(open(path, "rb", buffering=0))

    def open_bytesio(stack: ExitStack) -> io.BytesIO:
        return io.BytesIO(data)

    groups = []
    for source_name, open_source in (("file", open_file), ("BytesIO", open_bytesio)):
        for size in settings.byte_sizes:
            sources: Source = open_source
            groups.append(
                Group(
                    f"{where}/{source_name}/{size}",
                    f"{where}: fill {_size_name(size)} from {source_name}",
                    "fill",
                    FRESH,
                    [
                        Contestant(FRESH, _fresh(size, sources, settings.clock)),
                        # BytesIO.read() of its whole content returns its own bytes object,
                        # with no copy: that fills nothing, so it is no contestant there.
                        *([Contestant(READ, _read(size, sources, settings.clock))] if source_name == "file" else []),
                        Contestant(POOLED, _pooled(size, sources, settings.clock)),
                    ],
                )
            )
    return groups


def _size_name(size: int) -> str:
    return f"{size >> 20} MiB" if size >= 1 << 20 else f"{size >> 10} KiB"


def _measure(settings: Settings, progress: Progress, where: str) -> list[GroupResult]:
    size = max(settings.byte_sizes)
    data = random.Random("bytebuffers").randbytes(size)
    with tempfile.TemporaryDirectory(prefix="objpool-bench-") as tmp:
        path = os.path.join(tmp, "source.bin")
        with open(path, "wb") as f:
            f.write(data)
        return [run_group(g, settings, progress) for g in _groups(settings, path, data, where)]


def child_main() -> None:
    """Entry point of the child process: settings as JSON on stdin, group results on stdout."""
    settings, progress = child_request()
    progress.workload(f"{TITLE}, child with MALLOC_MMAP_THRESHOLD_={MMAP_THRESHOLD}")
    results = _measure(settings, progress, "mmap threshold")
    progress.done()
    child_reply(results)


def run(settings: Settings, progress: Progress) -> WorkloadResult:
    """In this process, then in a child with the mmap threshold set."""
    result = WorkloadResult(NAME, TITLE)
    result.groups.extend(_measure(settings, progress, "default malloc"))
    if settings.child:
        progress.done()
        result.groups.extend(run_child(__name__, settings, progress, {"MALLOC_MMAP_THRESHOLD_": str(MMAP_THRESHOLD)}))
    by_setup: dict[tuple[str, str], list[GroupResult]] = {}
    for group in result.groups:
        where, source, _ = group.key.split("/")
        by_setup.setdefault((where, source), []).append(group)
    for (where, source), groups in by_setup.items():
        parts = []
        for group in groups:
            row = group.row(POOLED)
            size = int(group.key.rsplit("/", 1)[1])
            part = f"{_size_name(size)} {format_time(row.median)} vs {format_time(group.row(FRESH).median)} ({speed_words(row.speedup)})"
            if where == "mmap threshold" and size == 1 << 20:
                part += f" [target >= 15x: {'met' if row.speedup >= 15 else 'MISSED'}]"
            parts.append(part)
        result.summary.append(f"Byte buffers from {source}, {where}: pooled vs fresh bytearray fill: " + "; ".join(parts) + ".")
    losses: dict[int, list[float]] = {}
    for group in result.groups:
        size = int(group.key.rsplit("/", 1)[1])
        losses.setdefault(size, []).append(group.row(POOLED).speedup)
    slower = [
        f"{_size_name(size)} ({1 / max(speedups):.2f}-{1 / min(speedups):.2f}x slower)"
        for size, speedups in sorted(losses.items())
        if max(speedups) < 1
    ]
    if slower:
        result.summary.append(
            "A pooled ByteBuffer does not pay where a fresh bytearray is cheap: "
            + ", ".join(slower)
            + " in every setup above (a Pool cycle plus ByteBuffer bookkeeping costs more than malloc + memset)."
        )
    ends = sorted(losses.items())[:: max(1, len(losses) - 1)]  # the smallest size and the largest
    result.verdict = (
        "ByteBuffer fill: "
        + " to ".join(f"{speed_span(speedups)} ({_size_name(size)})" for size, speedups in ends)
        + " a fresh bytearray's speed"
    )
    from_4k = [speedup for size, speedups in losses.items() if size >= 4 << 10 for speedup in speedups]
    if from_4k:
        result.summary.append(
            f"From 4 KiB up a pooled ByteBuffer fill is {min(from_4k):.2f}-{max(from_4k):.2f}x the speed of a fresh "
            f"bytearray's (target: faster in every setup: {'met' if min(from_4k) > 1 else 'MISSED'})."
        )
    return result


NAME: Final = "bytebuffers"
TITLE: Final = "5. Byte buffers"
WORKLOAD: Final = Workload(NAME, TITLE, run)
