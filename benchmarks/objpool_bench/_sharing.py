"""Workload 9, "Threads sharing a pool": does a shared pool scale, and who gets the turns.

Invariant: the interpreter's GIL state is part of every figure, and is printed with it: with
the GIL, threads take turns and no pool can scale; without it (a free-threaded build) they
run at once.

- Scaling: the same cycle (`Pool`, `SizedPool` 4 KiB, `BufPool` 2 buffers) on one thread, on
  two threads sharing one pool, and on two threads with a pool each, in wall time. Two
  threads with a pool each are the ceiling the machine allows (they share nothing of ours);
  the target is a shared pool at >= 80% of it.
- Fairness: 50 threads loop on `with pool.allocate(timeout=None):` over a 4-object `Pool` for
  a while; the busiest thread's acquisitions over the median thread's, and how many
  acquisitions found nobody waiting in the pool's line (those turns were given by the
  interpreter's scheduling, not by the line). The target without the GIL: <= 2x.
"""

from __future__ import annotations

import contextlib
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from itertools import repeat
from typing import Final

from objpool import BufPool, Pool, SizedPool
from ._harness import (
    Contestant,
    Group,
    GroupResult,
    MakeTimer,
    Progress,
    Settings,
    Threads,
    Timer,
    Workload,
    WorkloadResult,
    run_group,
)

__all__ = ["WORKLOAD", "fairness", "gil_state"]

ExitStack = contextlib.ExitStack[bool | None]

ONE: Final = "1 thread"
SHARED: Final = "2 threads, one shared pool"
OWN: Final = "2 threads, a pool each"
FAIR_THREADS: Final = 50
FAIR_CAPACITY: Final = 4


class _Token:
    def reset(self) -> None:
        pass


def gil_state() -> str:
    """"GIL on" or "GIL off" (a free-threaded build running without it)."""
    return "GIL on" if getattr(sys, "_is_gil_enabled", lambda: True)() else "GIL off"


def _pool_cycle() -> Callable[[int], None]:
    pool = Pool(_Token, 64)

    def body(loops: int) -> None:
        allocate, deallocate = pool.allocate, pool.deallocate
        for _ in repeat(None, loops):
            deallocate(allocate())

    return body


def _sized_cycle() -> Callable[[int], None]:
    pool = SizedPool(min_size=4 << 10, max_size=64 << 10)

    def body(loops: int) -> None:
        allocate = pool.allocate
        for _ in repeat(None, loops):
            allocate(4096).release()

    return body


def _bufpool_cycle() -> Callable[[int], None]:
    pool = BufPool(4096, 4 << 20)

    def body(loops: int) -> None:
        allocate = pool.allocate
        for _ in repeat(None, loops):
            allocate(2).release()

    return body


CYCLES: Final[dict[str, Callable[[], Callable[[int], None]]]] = {
    "Pool": _pool_cycle,
    "SizedPool": _sized_cycle,
    "BufPool": _bufpool_cycle,
}


def _threads(cycle: Callable[[], Callable[[int], None]], count: int, shared: bool) -> MakeTimer:
    def make(stack: ExitStack) -> Timer:
        if shared:
            runner = Threads(cycle(), count)
        else:
            own = threading.local()  # each thread builds its pool on its first sample

            def body(loops: int) -> None:
                mine: Callable[[int], None] | None = getattr(own, "body", None)
                if mine is None:
                    mine = own.body = cycle()
                mine(loops)

            runner = Threads(body, count)
        stack.callback(runner.close)
        return runner

    return make


@dataclass(frozen=True)
class Fairness:
    """Where the turns went: per-thread acquisitions, and those that found the line empty."""

    counts: list[int]
    empty_line: int

    @property
    def busiest_over_median(self) -> float:
        return max(self.counts) / max(statistics.median(self.counts), 1)

    @property
    def empty_line_share(self) -> float:
        return self.empty_line / max(sum(self.counts), 1)


def fairness(seconds: float, threads: int = FAIR_THREADS, capacity: int = FAIR_CAPACITY) -> Fairness:
    """`threads` threads loop on `with pool.allocate(timeout=None):` for `seconds`."""
    pool = Pool(_Token, capacity)
    counts = [0] * threads
    empty = [0] * threads
    stop = threading.Event()
    start = threading.Barrier(threads + 1)

    def run(i: int) -> None:
        start.wait()
        n = e = 0
        while not stop.is_set():
            if not pool.waiting:
                e += 1
            with pool.allocate(timeout=None):
                n += 1
        counts[i], empty[i] = n, e

    workers = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(threads)]
    for worker in workers:
        worker.start()
    start.wait()
    time.sleep(seconds)
    stop.set()
    for worker in workers:
        worker.join(10)
    return Fairness(counts, sum(empty))


def run(settings: Settings, progress: Progress) -> WorkloadResult:
    """The three pools' scaling groups, then the fairness run."""
    result = WorkloadResult(NAME, TITLE)
    gil = gil_state()
    for name, cycle in CYCLES.items():
        group = Group(
            name.lower(),
            f"{name}: 1 thread, 2 threads sharing one pool, 2 threads with a pool each (wall time, {gil})",
            "cycle",
            ONE,
            [
                Contestant(ONE, _threads(cycle, 1, True)),
                Contestant(SHARED, _threads(cycle, 2, True)),
                Contestant(OWN, _threads(cycle, 2, False)),
            ],
            note="'vs' is throughput against one thread",
            sample_scale=5.0,  # samples spanning many switch intervals (see _sizedpool)
        )
        result.groups.append(run_group(group, settings, progress))
    shares = {g.title.split(":")[0]: _shared_over_own(g) for g in result.groups}
    progress.update(f"{TITLE}: fairness, {FAIR_THREADS} threads")
    fair = fairness(0.02 if settings.mode == "smoke" else 2.0 if settings.mode == "full" else 0.5)
    for name, share in shares.items():
        measured = next(g for g in result.groups if g.title.startswith(name))
        target = f" [{'met' if share >= 0.8 else 'missed'}: >= 80% without the GIL]" if gil == "GIL off" else ""
        result.summary.append(
            f"{name} ({gil}): two threads sharing one pool {measured.row(SHARED).speedup:.2f}x one thread's "
            f"throughput, two with a pool each {measured.row(OWN).speedup:.2f}x: shared at {share:.0%} of own{target}."
        )
    if gil == "GIL on":
        result.summary.append("With the GIL one thread runs at a time: no pool scales, the figures show its cost.")
    result.summary.append(
        f"Fairness ({gil}): {FAIR_THREADS} threads looping on a {FAIR_CAPACITY}-object Pool, the busiest did "
        f"{fair.busiest_over_median:.2f}x the median thread's acquisitions; {fair.empty_line_share:.0%} of "
        f"acquisitions found nobody in the pool's line (their order is the interpreter's scheduling)"
        + (f" [{'met' if fair.busiest_over_median <= 2 else 'missed'}: <= 2x without the GIL]." if gil == "GIL off" else ".")
    )
    low, high = min(shares.values()), max(shares.values())
    result.verdict = (
        f"Threads, {gil}: a shared pool {low:.0%}-{high:.0%} of a pool each's speed; "
        f"busiest/median thread {fair.busiest_over_median:.1f}x"
    )
    return result


def _shared_over_own(group: GroupResult) -> float:
    return group.row(SHARED).speedup / group.row(OWN).speedup


NAME: Final = "sharing"
TITLE: Final = "9. Threads sharing a pool"
WORKLOAD: Final = Workload(NAME, TITLE, run)
