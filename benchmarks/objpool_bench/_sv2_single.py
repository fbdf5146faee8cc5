"""Workload 2, "Sv2 single thread": upstream buffer_sv2's benchmark, one thread, per `Buffer`.

Invariant: one operation is one of upstream's inner iterations: write a message (4,385 to
16,384 bytes from a prepared random source), take it as a slice, write another, take it, drop
both. Every sample of every contestant replays the same messages from the start, once written
10 bytes per `get_writable` as upstream does and once in one chunk.
"""

from __future__ import annotations

import contextlib
from typing import Final

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
    format_time,
    run_group,
    speed_span,
    speed_words,
)
from ._sv2_buffers import BASELINE, BROKEN, WRITERS, BufferMaker, Messages, Writer, buffer_makers

__all__ = ["WORKLOAD", "sv2_summary", "sv2_verdict"]

PLAN: Final = 4096  # messages prepared; samples longer than PLAN // 2 iterations wrap around

ExitStack = contextlib.ExitStack[bool | None]


def _contestant(make_buffer: BufferMaker, writer: Writer, messages: Messages, clock: Clock) -> MakeTimer:
    def make(stack: ExitStack) -> Timer:
        buffer = make_buffer()
        source = messages.source
        plan = messages.plan
        n = len(plan)

        def timer(loops: int) -> float:
            i = 0
            t0 = clock()
            for _ in range(loops):
                off, size = plan[i]
                first = writer(buffer, source, off, size)
                off, size = plan[i + 1]
                second = writer(buffer, source, off, size)
                first.release()
                second.release()
                i = (i + 2) % n
            return clock() - t0

        return timer

    return make


def run(settings: Settings, progress: Progress) -> WorkloadResult:
    """One group per writer, every available `Buffer` in each."""
    result = WorkloadResult(NAME, TITLE)
    makers = buffer_makers()
    messages = Messages.prepare(PLAN, "sv2-single")
    for label, writer in WRITERS.items():
        group = Group(
            f"single/{label}",
            f"write+take 2 messages, {label}",
            "iteration",
            BASELINE,
            [Contestant(name, _contestant(maker, writer, messages, settings.clock)) for name, maker in makers.items()],
            max_loops=settings.sv2_max_loops,
        )
        result.groups.append(run_group(group, settings, progress))
    result.summary.extend(sv2_summary("Sv2 single thread", result.groups))
    result.verdict = sv2_verdict("Sv2, 1 thread", result.groups)
    return result


# Speed against system memory that objpool's buffers aim for, single thread: with whole
# messages the pool's gain shows; with upstream's 10-byte chunks the caller's own interpreted
# loop dominates, so the aim there is only never to be slower.
_TARGETS: Final[dict[tuple[str, str], float]] = {
    ("one chunk", "BufferPool"): 1.5,
    ("one chunk", "PooledBuffer"): 1.2,
    ("10-byte chunks", "BufferPool"): 1.0,
    ("10-byte chunks", "PooledBuffer"): 1.0,
}


def sv2_verdict(what: str, groups: list[GroupResult]) -> str:
    """objpool's two pooled Sv2 buffers against fresh memory, over `groups`, in one line."""
    spans = [
        f"{name} {speed_span([g.row(name).speedup for g in groups if g.has(name)])}"
        for name in ("BufferPool", "PooledBuffer")
        if any(g.has(name) for g in groups)
    ]
    return f"{what}: {', '.join(spans)} fresh memory's speed"


def sv2_summary(what: str, groups: list[GroupResult]) -> list[str]:
    """One line per group: BufferPool and PooledBuffer against BufferFromSystemMemory."""
    lines = []
    for group in groups:
        base = format_time(group.row(BASELINE).median)
        parts = []
        for name in ("BufferPool", "PooledBuffer", "PPool"):
            if group.has(name):
                row = group.row(name)
                part = f"{name} {format_time(row.median)} ({speed_words(row.speedup)})"
                target = _TARGETS.get((group.key.rsplit("/", 1)[-1], name))
                if target is not None and group.key.startswith("single"):
                    part += f" [target >= {target:g}x: {'met' if row.speedup >= target else 'MISSED'}]"
                parts.append(part)
        if group.has(BROKEN):
            # The broken buffer never allocates nor checks: no correct buffer can beat it.
            parts.append(f"bound: {BROKEN} {speed_words(group.row(BROKEN).speedup)}")
        lines.append(f"{what}, {group.title}: {BASELINE} {base}/{group.unit}; " + ", ".join(parts) + ".")
    return lines


NAME: Final = "sv2-single"
TITLE: Final = "2. Sv2 single thread"
WORKLOAD: Final = Workload(NAME, TITLE, run)
