"""Workload 7, "BufPool latency": lending n contiguous 4 KiB buffers against allocating them.

Invariant: one operation is one `allocate(n)` + `release()` on a `BufPool` whose budget holds
every request, so no call waits; the baseline allocates `bytearray(n * 4096)` and drops it.
Issue 10's targets: the cost constant in n within 1.5x from 1 to 1024, and faster than the
`bytearray` from 16 buffers up.
"""

from __future__ import annotations

import contextlib
from itertools import repeat
from typing import Final

from .. import BufPool
from ._harness import (
    Clock,
    Contestant,
    Group,
    MakeTimer,
    Progress,
    Settings,
    Timer,
    Workload,
    WorkloadResult,
    format_time,
    run_group,
    speed_words,
)

__all__ = ["WORKLOAD"]

ExitStack = contextlib.ExitStack[bool | None]

BUFFER: Final = 4096
COUNTS: Final = (1, 16, 1024)
FRESH: Final = "bytearray(n * 4 KiB)"
POOLED: Final = "BufPool allocate(n) + release()"


def _fresh(n: int, clock: Clock) -> MakeTimer:
    def make(stack: ExitStack) -> Timer:
        size = n * BUFFER

        def timer(loops: int) -> float:
            t0 = clock()
            for _ in repeat(None, loops):
                bytearray(size)
            return clock() - t0

        return timer

    return make


def _pooled(n: int, clock: Clock) -> MakeTimer:
    def make(stack: ExitStack) -> Timer:
        pool = BufPool(BUFFER, max(COUNTS) * BUFFER)
        pool.allocate(n).release()  # its block is idle from now on: the steady state

        def timer(loops: int) -> float:
            allocate = pool.allocate
            t0 = clock()
            for _ in repeat(None, loops):
                allocate(n).release()
            return clock() - t0

        return timer

    return make


def run(settings: Settings, progress: Progress) -> WorkloadResult:
    """One group per buffer count."""
    result = WorkloadResult(NAME, TITLE)
    for n in COUNTS:
        group = Group(
            f"n={n}",
            f"{n} buffer{'s' if n != 1 else ''} of 4 KiB",
            "cycle",
            FRESH,
            [Contestant(FRESH, _fresh(n, settings.clock)), Contestant(POOLED, _pooled(n, settings.clock))],
        )
        result.groups.append(run_group(group, settings, progress))
    costs = [g.row(POOLED).median for g in result.groups]
    spread = max(costs) / min(costs)
    parts = [
        f"n={n}: {format_time(g.row(POOLED).median)} vs {format_time(g.row(FRESH).median)} ({speed_words(g.row(POOLED).speedup)})"
        for n, g in zip(COUNTS, result.groups)
    ]
    from_16 = all(g.row(POOLED).speedup > 1 for n, g in zip(COUNTS, result.groups) if n >= 16)
    result.summary.append(
        "BufPool allocate+release of n 4 KiB buffers vs bytearray(n * 4 KiB): "
        + "; ".join(parts)
        + f". Constant in n within {spread:.2f}x (target <= 1.5x: {'met' if spread <= 1.5 else 'MISSED'}); "
        + f"faster than bytearray from 16 buffers up: {'met' if from_16 else 'MISSED'}."
    )
    return result


NAME: Final = "bufpool"
TITLE: Final = "7. BufPool latency"
WORKLOAD: Final = Workload(NAME, TITLE, run)
