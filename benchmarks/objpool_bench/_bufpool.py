"""Workload 7, "BufPool latency": lending n contiguous 4 KiB buffers against allocating them.

Invariant: one operation is one `allocate(n)` + `release()` on a `BufPool` whose budget holds
every request, so no call waits; the baseline allocates `bytearray(n * 4096)` and drops it.
Issue 10's targets: the cost constant in n within 1.5x from 1 to 1024, and faster than the
`bytearray` from 16 buffers up.

Then head-of-line blocking, the price of first come, first served, in wall time: threads
cycling small requests through a 64-buffer budget, alone, then with a large request arriving
every 10 ms that queues (what `BufPool` does), then with one that retries without queueing
(what a pool without fairness gives a large request: it must find room by luck).
"""

from __future__ import annotations

import contextlib
import statistics
import threading
import time
from dataclasses import dataclass, field
from itertools import repeat
from typing import Final

from objpool import BufAllocation, BufPool, PoolExhaustedError
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


HOL_BUDGET: Final = 64  # buffers
HOL_SMALL: Final = 4  # buffers per small request
HOL_WORKERS: Final = 8  # threads, each holding one small request at a time: 32 busy at most
HOL_LARGE: Final = 48  # buffers per large request: it fits only when <= 16 are out
HOL_EVERY_S: Final = 0.01  # a large request arrives this long after the last one ended
HOL_HOLD_S: Final = 0.0005  # every request holds its buffers this long
HOL_GIVE_UP_S: Final = 0.2  # a large request without a place in line stops retrying here
HOL_SECONDS: Final = {"smoke": 0.05, "quick": 0.6, "full": 2.0}


@dataclass
class HeadOfLine:
    """What one phase of the head-of-line run saw (seconds)."""

    small_waits: list[float] = field(default_factory=list)
    large_waits: list[float] = field(default_factory=list)
    large_starved: int = 0  # retrying large requests that gave up after HOL_GIVE_UP_S
    idle_while_waiting: list[int] = field(default_factory=list)  # free buffers, sampled


def _try(pool: BufPool, n: int) -> BufAllocation | None:
    try:
        return pool.allocate(n)
    except PoolExhaustedError:
        return None


def head_of_line(seconds: float, large: str | None) -> HeadOfLine:
    """Small requests on HOL_WORKERS threads for `seconds`; `large`: None, "queued" or "retried"."""
    pool = BufPool(BUFFER, HOL_BUDGET * BUFFER)
    seen = HeadOfLine()
    stop = time.perf_counter() + seconds
    clock = time.perf_counter

    def small() -> None:
        while clock() < stop:
            t0 = clock()
            allocation = pool.allocate(HOL_SMALL, timeout=None)
            seen.small_waits.append(clock() - t0)
            time.sleep(HOL_HOLD_S)
            allocation.release()

    def big() -> None:
        while clock() < stop:
            time.sleep(HOL_EVERY_S)
            t0 = clock()
            if large == "queued":
                allocation = pool.allocate(HOL_LARGE, timeout=None)
            else:
                got = _try(pool, HOL_LARGE)
                while got is None and clock() - t0 < HOL_GIVE_UP_S:
                    time.sleep(0.0001)
                    got = _try(pool, HOL_LARGE)
                if got is None:
                    seen.large_starved += 1
                    continue
                allocation = got
            seen.large_waits.append(clock() - t0)
            time.sleep(HOL_HOLD_S)
            allocation.release()

    def sample() -> None:
        while clock() < stop:
            stats = pool.stats()
            if stats.waiting:
                seen.idle_while_waiting.append((stats.budget_bytes - stats.lent_bytes) // BUFFER)
            time.sleep(0.0002)

    threads = [threading.Thread(target=small) for _ in range(HOL_WORKERS)] + [threading.Thread(target=sample)]
    if large is not None:
        threads.append(threading.Thread(target=big))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return seen


def _quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _head_of_line_lines(settings: Settings) -> list[str]:
    seconds = HOL_SECONDS.get(settings.mode, 0.6)
    alone = head_of_line(seconds, None)
    queued = head_of_line(seconds, "queued")
    retried = head_of_line(seconds, "retried")

    def smalls(run: HeadOfLine) -> str:
        return f"median {format_time(_quantile(run.small_waits, 0.5))}, p99 {format_time(_quantile(run.small_waits, 0.99))}"

    idle = statistics.fmean(queued.idle_while_waiting) if queued.idle_while_waiting else 0.0
    return [
        f"head-of-line blocking: {HOL_WORKERS} threads cycling {HOL_SMALL}-buffer requests through a "
        f"{HOL_BUDGET}-buffer budget, {seconds:g} s per phase; small requests' wait alone: {smalls(alone)}",
        f"with a {HOL_LARGE}-buffer request every {HOL_EVERY_S * 1000:g} ms, queued (BufPool's first come, first "
        f"served): the large waited median {format_time(_quantile(queued.large_waits, 0.5))}, max "
        f"{format_time(max(queued.large_waits, default=float('nan')))} ({len(queued.large_waits)} served); small "
        f"requests' wait: {smalls(queued)}; while anyone waited, {idle:.1f} of {HOL_BUDGET} buffers sat idle "
        "on average (the price: budget nobody may use until the head fits)",
        f"the same large request retrying without a place in line (no fairness): "
        f"{len(retried.large_waits)} served (median {format_time(_quantile(retried.large_waits, 0.5))}), "
        f"{retried.large_starved} gave up after {HOL_GIVE_UP_S * 1000:g} ms; small requests' wait: {smalls(retried)}",
    ]


def _by_count(n: int) -> str:
    return f"BufPool, n={n}"


def run(settings: Settings, progress: Progress) -> WorkloadResult:
    """One group per buffer count against bytearray, then one of the pool alone across counts."""
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
    # Constant in n, measured apart: next to a 4 MiB bytearray, whose memset flushes the
    # caches, the n=1024 group runs only ~80 cycles a sample, mostly on cold caches.
    across = Group(
        "across-n",
        "BufPool alone, n = 1, 16, 1024 (constant in n?)",
        "cycle",
        _by_count(COUNTS[0]),
        [Contestant(_by_count(n), _pooled(n, settings.clock)) for n in COUNTS],
    )
    result.groups.append(run_group(across, settings, progress))
    costs = [row.median for row in result.groups[-1].rows]
    spread = max(costs) / min(costs)
    parts = [
        f"n={n}: {format_time(g.row(POOLED).median)} vs {format_time(g.row(FRESH).median)} ({speed_words(g.row(POOLED).speedup)})"
        for n, g in zip(COUNTS, result.groups)
    ]
    from_16 = all(g.row(POOLED).speedup > 1 for n, g in zip(COUNTS, result.groups) if n >= 16)
    result.summary.append(
        "BufPool allocate+release of n 4 KiB buffers vs bytearray(n * 4 KiB): "
        + "; ".join(parts)
        + f". Alone: {', '.join(format_time(c) for c in costs)} for n = {', '.join(map(str, COUNTS))}, "
        + f"constant in n within {spread:.2f}x (target <= 1.5x: {'met' if spread <= 1.5 else 'MISSED'}); "
        + f"faster than bytearray from 16 buffers up: {'met' if from_16 else 'MISSED'}."
    )
    ends = [g.row(POOLED).speedup for g in (result.groups[0], result.groups[len(COUNTS) - 1])]
    result.verdict = f"BufPool: {ends[0]:.2f}x (n=1) to {ends[1]:.2f}x (n={COUNTS[-1]}) the speed of bytearray(n x 4 KiB)"
    hol = _head_of_line_lines(settings)
    result.notes.extend(hol)
    result.summary.append("BufPool " + hol[0] + "; " + "; ".join(hol[1:]) + ".")
    return result


NAME: Final = "bufpool"
TITLE: Final = "7. BufPool latency"
WORKLOAD: Final = Workload(NAME, TITLE, run)
