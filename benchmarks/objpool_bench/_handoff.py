"""Workload 6, "Hand-off to a waiter": how long a release takes to reach a waiting thread or task.

Invariant: one operation is one hand-off. Two parties share a one-object `Pool` and take turns,
each waiting in `allocate(timeout=None)` (a thread) or `await pool.acquire()` (a task) while
the other holds the object, so every release hands the object straight to a parked waiter.
The baselines are the same ping-pong with the bare mechanism a waiter parks on: two
`threading.Event`s between threads, and `loop.call_soon_threadsafe` on a future (with an
`Event` back) between a thread and a task. Wall time: the figure is wake-up latency, GIL
hand-over included.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Coroutine
from typing import Any, Final

from objpool import Pool
from ._harness import (
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
)

__all__ = ["WORKLOAD"]

ExitStack = contextlib.ExitStack[bool | None]

THREAD_BASELINE: Final = "threading.Event ping-pong"
THREAD_POOL: Final = "Pool: release -> allocate(timeout=None)"
TASK_BASELINE: Final = "call_soon_threadsafe ping-pong"
TASK_POOL: Final = "Pool: release on a thread -> await acquire()"


class _Token:
    def reset(self) -> None:
        pass


def _start(target: Any) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def _park_until(condition: Any) -> None:
    while not condition():
        time.sleep(0)


def _events(stack: ExitStack) -> Timer:
    def timer(loops: int) -> float:
        ping, pong = threading.Event(), threading.Event()

        def partner() -> None:
            for _ in range(loops):
                ping.wait()
                ping.clear()
                pong.set()

        thread = _start(partner)
        t0 = time.perf_counter()
        for _ in range(loops):
            ping.set()
            pong.wait()
            pong.clear()
        elapsed = time.perf_counter() - t0
        thread.join()
        return elapsed

    return timer


def _pool_threads(stack: ExitStack) -> Timer:
    pool = Pool(_Token, 1)

    def timer(loops: int) -> float:
        ref = pool.allocate()

        def partner() -> None:
            for _ in range(loops):
                pool.allocate(timeout=None).release()

        thread = _start(partner)
        _park_until(lambda: pool.waiting)
        t0 = time.perf_counter()
        ref.release()  # the first hand-off; then the two take turns through the line
        for _ in range(loops - 1):
            pool.allocate(timeout=None).release()
        thread.join()
        return time.perf_counter() - t0

    return timer


def _in_loop(stack: ExitStack, run: Any) -> Timer:
    loop = asyncio.new_event_loop()
    stack.callback(loop.close)

    def timer(loops: int) -> float:
        coroutine: Coroutine[Any, Any, float] = run(loops)
        return loop.run_until_complete(coroutine)

    return timer


def _future_and_event(stack: ExitStack) -> Timer:
    async def run(loops: int) -> float:
        loop = asyncio.get_running_loop()
        ready = threading.Event()
        pending: list[asyncio.Future[None]] = []

        def partner() -> None:
            for _ in range(loops):
                ready.wait()
                ready.clear()
                loop.call_soon_threadsafe(pending[-1].set_result, None)

        thread = _start(partner)
        t0 = time.perf_counter()
        for _ in range(loops):
            pending.append(loop.create_future())
            ready.set()
            await pending[-1]
        elapsed = time.perf_counter() - t0
        thread.join()
        return elapsed

    return _in_loop(stack, run)


def _pool_task(stack: ExitStack) -> Timer:
    pool = Pool(_Token, 1)

    async def run(loops: int) -> float:
        ref = pool.allocate()

        def partner() -> None:
            for _ in range(loops):
                pool.allocate(timeout=None).release()

        thread = _start(partner)
        while not pool.waiting:
            await asyncio.sleep(0)
        t0 = time.perf_counter()
        ref.release()
        for _ in range(loops - 1):
            (await pool.acquire()).release()
        elapsed = time.perf_counter() - t0
        thread.join()
        return elapsed

    return _in_loop(stack, run)


def _group(key: str, title: str, contestants: dict[str, MakeTimer]) -> Group:
    names = list(contestants)
    return Group(
        key,
        title,
        "hand-off",
        names[0],
        [Contestant(name, make) for name, make in contestants.items()],
        ops_per_loop=2,  # each turn of the ping-pong hands over twice
        note="wall time; every release wakes a parked waiter",
    )


def run(settings: Settings, progress: Progress) -> WorkloadResult:
    """Thread to thread, then thread to task, each against its bare mechanism."""
    result = WorkloadResult(NAME, TITLE)
    groups = [
        _group("threads", "a release wakes a waiting thread", {THREAD_BASELINE: _events, THREAD_POOL: _pool_threads}),
        _group("task", "a release on a thread wakes a waiting task", {TASK_BASELINE: _future_and_event, TASK_POOL: _pool_task}),
    ]
    for group in groups:
        result.groups.append(run_group(group, settings, progress))
    threads, task = result.groups
    result.summary.append(
        f"Hand-off to a waiter: a release wakes a waiting thread in {format_time(threads.row(THREAD_POOL).median)} "
        f"({THREAD_BASELINE}: {format_time(threads.row(THREAD_BASELINE).median)}), a waiting task in "
        f"{format_time(task.row(TASK_POOL).median)} ({TASK_BASELINE}: {format_time(task.row(TASK_BASELINE).median)})."
    )
    result.verdict = (
        f"Hand-off: a release wakes a waiting thread in {format_time(threads.row(THREAD_POOL).median)}, "
        f"a waiting task in {format_time(task.row(TASK_POOL).median)}"
    )
    return result


NAME: Final = "handoff"
TITLE: Final = "6. Hand-off to a waiter"
WORKLOAD: Final = Workload(NAME, TITLE, run)
