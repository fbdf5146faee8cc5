"""Workload 3, "Sv2 multi-thread": slices handed to long-lived worker threads that hold them.

Invariant: one operation is one upstream iteration (two messages written and taken, see
`_sv2_single`), whose two slices go to two long-lived worker threads (never a thread per
slice: upstream spawns one, which measures thread creation, not buffers). A worker releases
each slice `hold_s` after receiving it (1 ms by default, `--hold-ms`), so slices stay alive
concurrently, as in a proxy whose consumers take a while.

- "multi-thread 1": the producer never waits; the sample times the producer's loop, then
  waits, untimed, until the workers released everything, so each sample starts clean.
- "multi-thread 2": each iteration also waits until both of its slices were released.
"""

from __future__ import annotations

import contextlib
import dataclasses
import queue
import threading
import time
from typing import Final

from objpool.sv2 import Slice
from ._harness import (
    Contestant,
    Group,
    MakeTimer,
    Progress,
    Settings,
    Timer,
    Workload,
    WorkloadResult,
    run_group,
)
from ._sv2_buffers import BASELINE, WRITERS, BufferMaker, Messages, Writer, buffer_makers
from ._sv2_single import PLAN, sv2_summary, sv2_verdict

__all__ = ["WORKLOAD"]

# Buffers whose slices may come from pool memory or fall back to system memory.
POOLED_KINDS: Final = ("BufferPool", "PooledBuffer", "PPool")

ExitStack = contextlib.ExitStack[bool | None]

# A worker's queue holds (deadline, slice) to release at the deadline, (0.0, None) to
# acknowledge on `acks` once everything before it was released, or None to stop.
_Item = tuple[float, Slice | None] | None


class _Holder:
    """A long-lived thread that releases each slice `hold_s` after it was handed over."""

    def __init__(self, hold_s: float, acks: queue.SimpleQueue[int]) -> None:
        self.items: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._hold = hold_s
        self._acks = acks
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        get = self.items.get
        ack = self._acks.put
        perf_counter = time.perf_counter
        sleep = time.sleep
        while (item := get()) is not None:
            deadline, slice_ = item
            if slice_ is None:
                ack(0)
                continue
            delay = deadline - perf_counter()
            if delay > 0:
                sleep(delay)
            slice_.release()
            del slice_, item  # drop our references before blocking on the queue again

    def close(self) -> None:
        self.items.put(None)
        self._thread.join(5)


def _contestant(
    make_buffer: BufferMaker, writer: Writer, messages: Messages, hold_s: float, wait: bool, tally: list[int]
) -> MakeTimer:
    """`tally` accumulates [slices in pool memory, slices] over every sample."""

    def make(stack: ExitStack) -> Timer:
        buffer = make_buffer()
        acks: queue.SimpleQueue[int] = queue.SimpleQueue()
        first_worker = _Holder(hold_s, acks)
        stack.callback(first_worker.close)
        second_worker = _Holder(hold_s, acks)
        stack.callback(second_worker.close)
        to_first = first_worker.items.put
        to_second = second_worker.items.put
        source = messages.source
        plan = messages.plan
        n = len(plan)
        get_ack = acks.get
        perf_counter = time.perf_counter

        def drain() -> None:
            to_first((0.0, None))
            to_second((0.0, None))
            get_ack()
            get_ack()

        def timed(loops: int) -> float:
            i = 0
            pooled = 0
            t0 = perf_counter()
            for _ in range(loops):
                off, size = plan[i]
                first = writer(buffer, source, off, size)
                off, size = plan[i + 1]
                second = writer(buffer, source, off, size)
                pooled += first.from_pool + second.from_pool
                deadline = perf_counter() + hold_s
                to_first((deadline, first))
                to_second((deadline, second))
                del first, second
                if wait:  # multi-thread 2: both slices are dropped before the next iteration
                    drain()
                i = (i + 2) % n
            elapsed = perf_counter() - t0
            if not wait:  # multi-thread 1 times the producer only: settle outside the clock
                drain()
            tally[0] += pooled
            tally[1] += 2 * loops
            return elapsed

        return timed

    return make


def run(settings: Settings, progress: Progress) -> WorkloadResult:
    """Multi-thread 1 and 2, each with both writers, every available `Buffer`."""
    result = WorkloadResult(NAME, TITLE)
    makers = buffer_makers()
    result.notes.append(
        f"workers hold each slice {settings.hold_s * 1000:g} ms; multi-thread 1 times the producer only "
        "(it never waits), multi-thread 2 waits for both slices of each iteration"
    )
    messages = Messages.prepare(PLAN, "sv2-threads")
    for wait, kind in ((False, "multi-thread 1"), (True, "multi-thread 2")):
        for label, writer in WRITERS.items():
            tallies = {name: [0, 0] for name in makers}
            contestants = [
                Contestant(name, _contestant(maker, writer, messages, settings.hold_s, wait, tallies[name]))
                for name, maker in makers.items()
            ]
            group = Group(
                f"{kind}/{label}", f"{kind}, {label}", "iteration", BASELINE, contestants,
                max_loops=settings.sv2_max_loops,
            )
            measured = run_group(group, settings, progress)
            shares = ", ".join(
                f"{name} {100 * pooled / total:.0f}%"
                for name, (pooled, total) in tallies.items()
                if name in POOLED_KINDS and total
            )
            result.groups.append(dataclasses.replace(measured, note=f"slices in pool memory: {shares}"))
    for measured_group, line in zip(result.groups, sv2_summary("Sv2", result.groups), strict=True):
        # Say what each row really measures: where the slices came from, and for
        # multi-thread 2 that the hold, not the buffer, sets the pace.
        what = f" [{measured_group.note}]"
        if measured_group.key.startswith("multi-thread 2/"):
            what += (
                f" [each iteration waits out the {settings.hold_s * 1000:g} ms hold, so every buffer "
                "reads about 1.00x here: a check that nothing stalls, not a speed comparison]"
            )
        result.summary.append(line[:-1] + what + ".")
    # multi-thread 2 waits out the hold each iteration: a stall check, not a speed comparison.
    paced = [g for g in result.groups if not g.key.startswith("multi-thread 2/")]
    result.verdict = sv2_verdict("Sv2, threads", paced or result.groups)
    return result


NAME: Final = "sv2-threads"
TITLE: Final = "3. Sv2 multi-thread"
WORKLOAD: Final = Workload(NAME, TITLE, run)
