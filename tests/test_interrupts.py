"""An interrupt anywhere in a wait (or a lend) loses nothing: no slot, no byte of budget,
no waiter left in a line.

A tracer raises `KeyboardInterrupt` at the N-th event in objpool's own code, for every N
through the whole operation (raising in a trace function also ends tracing, so there is one
interrupt per run). The events are every call (a signal handler runs at a function's entry,
at loops and after C calls), and every line of the functions that hold no lock: the lend
paths, where an index or a grant is in transit. Lines are left out where only a tracer can
raise and CPython's own exception table has gaps: in a function with a `try`/`finally` (a
locked section) a `return` runs the `finally` inline first, and an exception raised at its
line skips the handler; the NOP of a `try:` line is covered by no handler at all. So are the
lines of a function its caller runs under a lock (its docstring says "Under the ... lock"),
which makes no call before its state is whole: a signal's handler runs only at a function's
entry and after calls, and so can land there only where a tracer can. Finalisers
(`__del__`) are not interrupted: CPython ignores what they raise, and a tracer raising in one
that runs while another exception unwinds corrupts CPython 3.11 (seen here: "'traceback'
object is not callable", then a segmentation fault). The
holder's release that ends a wait is made from inside the tracer, at a chosen moment of the
waiting thread's own run: so the hand-off lands exactly there, with no second thread and no
timing. After each run the pool must be whole, and nothing may have been dropped as a leak.
"""

from __future__ import annotations

import ast
import functools
import os
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

import objpool
from objpool import BufPool, Pool, PoolExhaustedError, _waiting

PACKAGE = os.path.dirname(objpool.__file__) + os.sep
SHORT_WAIT_S = 0.001  # the timeout of the waits that run out


@pytest.fixture(autouse=True)
def one_nap_per_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    """A wait with a deadline ends after its first nap that nobody cut short, whatever the
    clock says: so every run of a sweep makes the same events, however busy the machine (a
    nap that ended a hair early used to add a second turn of the wait loop to one run)."""
    monkeypatch.setattr(_waiting, "expired", lambda deadline: deadline is not None)


@functools.cache
def untraced_lines(filename: str) -> frozenset[int]:
    """The lines of `filename` left out (see the module docstring): `try:` keywords, and every
    line of a function that has a `try`/`finally` or runs under its caller's lock."""
    lines: set[int] = set()
    for node in ast.walk(ast.parse(Path(filename).read_text())):
        if isinstance(node, ast.Try):
            lines.add(node.lineno)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            locked = (ast.get_docstring(node) or "").startswith("Under the")
            if locked or any(isinstance(inner, ast.Try) and inner.finalbody for inner in ast.walk(node)):
                lines.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    return frozenset(lines)


class Widget:
    def reset(self) -> None:
        pass


@dataclass
class Run:
    """One run: interrupt at event `n` (0: never); call `release` at the first call of `trigger`."""

    n: int
    trigger: str | None
    release: Callable[[], object]
    events: int = 0
    released: bool = False
    interrupted: bool = False

    def trace(self, frame: FrameType, event: str, arg: object) -> Any:
        if not frame.f_code.co_filename.startswith(PACKAGE) or frame.f_code.co_name == "__del__":
            return None  # not ours, or a finaliser: neither counted nor traced inside
        if frame.f_code.co_name == self.trigger and not self.released:
            self.released = True
            self.release()  # untraced: CPython suspends tracing inside a trace function
        self.step()
        return self.local

    def local(self, frame: FrameType, event: str, arg: object) -> Any:
        if event == "line" and frame.f_lineno not in untraced_lines(frame.f_code.co_filename):
            self.step()
        return self.local

    def step(self) -> None:
        self.events += 1
        if self.events == self.n:
            self.interrupted = True
            raise KeyboardInterrupt(f"at event {self.n}")


def run_traced(run: Run, operation: Callable[[], object]) -> object:
    """The operation's result, or the exception it raised."""
    sys.settrace(run.trace)
    try:
        return operation()
    except (KeyboardInterrupt, PoolExhaustedError) as exc:
        return exc
    finally:
        sys.settrace(None)


def sweep(make: Callable[[Run], None], trigger: str | None) -> int:
    """Run `make` interrupted at every event of its uninterrupted run; return how many."""
    clean = Run(0, trigger, lambda: None)
    make(clean)
    assert clean.events > 3, "the tracer saw nothing of the operation"
    for n in range(1, clean.events + 2):
        run = Run(n, trigger, lambda: None)
        make(run)
        if n <= clean.events:
            assert run.interrupted, f"event {n} of {clean.events} was never reached"
    assert clean.released or trigger is None, f"{trigger} was never called"
    return clean.events


# -- Pool ------------------------------------------------------------------------------------------


def pool_wait(timeout: float) -> Callable[[Run], None]:
    def make(run: Run) -> None:
        pool = Pool(Widget, 1)
        held = pool.allocate()
        run.release = held.release
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a handle dropped by the interrupt would warn: none may
            result = run_traced(run, lambda: pool.allocate(timeout=timeout))
        if isinstance(result, objpool.OwnedRef):
            result.release()
        if held.alive:
            held.release()
        stats = pool.stats()
        assert (pool.waiting, stats.free, stats.lent, stats.leaks) == (0, 1, 0, 0), (run, result, stats)
        assert stats.allocations == stats.deallocations, (run, result, stats)
        pool.allocate().release()  # and it still lends

    return make


@pytest.mark.parametrize("trigger", [None, "join", "sleep", "_give_up"])
def test_an_interrupted_wait_that_runs_out_loses_no_slot(trigger: str | None) -> None:
    sweep(pool_wait(SHORT_WAIT_S), trigger)


@pytest.mark.parametrize("trigger", ["join", "sleep"])
def test_an_interrupted_wait_that_is_handed_a_slot_loses_it_nowhere(trigger: str) -> None:
    """Released as the waiter joins (it takes the slot at once), or as it parks (a hand-off:
    the sweep then goes through everything after it, the lend included)."""
    sweep(pool_wait(10.0), trigger)


def test_an_interrupted_allocate_loses_no_slot() -> None:
    """The lend itself: between taking an index off the free stack and the handle owning it."""

    def make(run: Run) -> None:
        pool = Pool(Widget, 2)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            result = run_traced(run, pool.allocate)
        if isinstance(result, objpool.OwnedRef):
            result.release()
        stats = pool.stats()
        assert (stats.free, stats.lent, stats.leaks) == (2, 0, 0), (run, result, stats)

    if objpool.COMPILED:  # the lend is C: the tracer sees none of it, there is nothing to sweep
        make(Run(1, None, lambda: None))
        return
    sweep(make, None)


# -- BufPool ---------------------------------------------------------------------------------------


def bufpool_wait(timeout: float, n: int) -> Callable[[Run], None]:
    def make(run: Run) -> None:
        pool = BufPool(64, 64 * 2)
        held = pool.allocate(2)
        run.release = held.release
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            result = run_traced(run, lambda: pool.allocate(n, timeout=timeout))
        if isinstance(result, objpool.BufAllocation):
            result.release()
        if held.alive:
            held.release()
        stats = pool.stats()
        assert (stats.lent_bytes, stats.waiting, stats.leaks) == (0, 0, 0), (run, result, stats)
        pool.allocate(2).release()

    return make


@pytest.mark.parametrize("trigger", [None, "join", "sleep", "_give_up"])
def test_an_interrupted_budget_wait_that_runs_out_loses_no_byte(trigger: str | None) -> None:
    sweep(bufpool_wait(SHORT_WAIT_S, 1), trigger)


@pytest.mark.parametrize("trigger", ["join", "sleep"])
def test_an_interrupted_budget_wait_that_is_granted_loses_it_nowhere(trigger: str) -> None:
    sweep(bufpool_wait(10.0, 2), trigger)


def test_an_interrupted_buffer_allocation_loses_no_byte() -> None:
    def make(run: Run) -> None:
        pool = BufPool(64, 64 * 4)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            result = run_traced(run, lambda: pool.allocate(3))
        if isinstance(result, objpool.BufAllocation):
            result.release()
        stats = pool.stats()
        assert (stats.lent_bytes, stats.leaks) == (0, 0), (run, result, stats)

    if objpool.COMPILED:
        make(Run(1, None, lambda: None))
        return
    sweep(make, None)
