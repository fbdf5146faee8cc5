"""The timing harness: calibrated loops, interleaved repeats, medians with spread, same-run ratios.

Invariant: every figure in a table is the median of `repeats` samples taken in one process,
and every ratio compares two medians of the same group, whose samples were interleaved (one
sample of each contestant per round, in a fresh seeded order each round), all with the same
loop count. Drift (thermal, frequency, a noisy neighbour) therefore hits every contestant of a
group alike, and a contestant never sees easier work than its baseline.

Why `time.perf_counter` with calibrated repeats and not pyperf:

- the bench ships inside the package and the guide allows only the standard library and
  typing-extensions at runtime; pyperf would be a runtime dependency for one command;
- pyperf's strength is spawning many worker processes and calibrating each, which takes
  minutes per benchmark; `--quick` must run five workloads, some threaded, some in a child
  process, in under a minute on two cores;
- pyperf compares results from *separate* runs (`compare_to`); our claims are ratios within one
  run, which needs interleaving inside one process, which pyperf does not do.

What we keep from pyperf and timeit: a warm-up sample that is thrown away, loop counts
calibrated so that a sample lasts `sample_s`, medians rather than means, the spread shown
(quartiles, and min/max in the JSON), and the machine described in the header. The garbage
collector stays *enabled* (unlike timeit): collections triggered by fresh allocations are part
of what allocating costs. Before a group, `gc.freeze()` moves everything that exists into the
permanent generation, and `gc.collect()` runs before every sample, so each sample starts from
the same state and a big heap (a test runner's) does not make collections dearer.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import json
import math
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, TextIO

import objpool

__all__ = [
    "speed_span",
    "Threads",
    "Clock",
    "Contestant",
    "Group",
    "MakeTimer",
    "GroupResult",
    "Progress",
    "Row",
    "Settings",
    "Timer",
    "Workload",
    "WorkloadResult",
    "child_reply",
    "child_request",
    "format_group",
    "format_time",
    "run_child",
    "run_group",
    "speed_words",
]

Clock = Callable[[], float]
"""A clock read at the start and end of a sample: `Settings.clock`, or `time.perf_counter`."""

Timer = Callable[[int], float]
"""Runs `loops` operations and returns the seconds they took (setup excluded)."""

MakeTimer = Callable[["contextlib.ExitStack[bool | None]"], Timer]
"""Builds a contestant's state once per group (clean-up goes on the stack) and returns its `Timer`."""

SEED: Final = 20260521  # every random choice in the bench derives from this


@dataclass(frozen=True)
class Settings:
    """How hard to measure; `quick()`, `full()` and `smoke()` are the three presets."""

    mode: str
    repeats: int  # samples per contestant (odd, so the median is a sample)
    sample_s: float  # target duration of the slowest contestant's sample
    max_loops: int = 1 << 30
    hold_s: float = 0.001  # Sv2 multi-thread: how long a worker holds each slice
    sv2_max_loops: int = 1 << 30  # cap on Sv2 iterations per sample
    decoder_stream_bytes: int = 4 << 20
    loopback_stream_bytes: int = 4 << 20
    byte_sizes: tuple[int, ...] = (1 << 10, 4 << 10, 64 << 10, 1 << 20)
    child: bool = True  # measure in child processes too (the mmap threshold, the pure reference)
    cpu_time: bool = True  # single-thread timers read the thread's CPU time (see `clock`)

    @property
    def clock(self) -> Clock:
        """The clock of single-thread timers: the thread's CPU time, or wall time.

        CPU time (`time.thread_time`, which counts the kernel's work for the thread too: page
        faults, mmap, read) does not count the time the thread waits while other processes
        run, so figures stay meaningful on a busy machine. Timers that involve other threads,
        sleeps or sockets always use wall time (`time.perf_counter`).
        """
        return time.thread_time if self.cpu_time else time.perf_counter

    @classmethod
    def quick(cls) -> Settings:
        """Under a minute for everything on two cores: the README's main-job command."""
        return cls("quick", repeats=9, sample_s=0.02, decoder_stream_bytes=1 << 20, loopback_stream_bytes=2 << 20)

    @classmethod
    def full(cls) -> Settings:
        """About a minute on two cores: more and longer samples."""
        return cls("full", repeats=15, sample_s=0.05)

    @classmethod
    def smoke(cls) -> Settings:
        """Seconds: tiny sizes and a few iterations, for the test suite only (numbers mean nothing)."""
        return cls(
            "smoke",
            repeats=3,
            sample_s=0.0002,
            max_loops=50,
            hold_s=0.0002,
            sv2_max_loops=3,
            decoder_stream_bytes=64 << 10,
            loopback_stream_bytes=64 << 10,
            byte_sizes=(1 << 10, 64 << 10),
        )


@dataclass(frozen=True)
class Contestant:
    """One way of doing a group's operation.

    `make` builds the state (pools, threads, files) once per group, registers any clean-up on
    the `ExitStack`, and returns the `Timer`; state persists across samples (steady state).
    """

    name: str
    make: MakeTimer


@dataclass(frozen=True)
class Group:
    """Contestants doing the same work, compared with `baseline` (the no-pool way)."""

    key: str
    title: str
    unit: str  # what one operation is: "cycle", "iteration", "frame", "fill"
    baseline: str
    contestants: Sequence[Contestant]
    ops_per_loop: int = 1  # e.g. frames per decoded stream
    max_loops: int = 1 << 30
    note: str = ""
    # Samples this many times `Settings.sample_s`: thread groups need samples spanning many
    # GIL switch intervals (5 ms), or the threads barely interleave and contention hides.
    sample_scale: float = 1.0


@dataclass(frozen=True)
class Row:
    """One contestant's result: seconds per operation."""

    name: str
    samples: list[float]
    median: float
    q1: float
    q3: float
    low: float
    high: float
    speedup: float  # baseline median / this median: > 1 is faster than the baseline

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "median_ns": self.median * 1e9,
            "q1_ns": self.q1 * 1e9,
            "q3_ns": self.q3 * 1e9,
            "min_ns": self.low * 1e9,
            "max_ns": self.high * 1e9,
            "speedup_vs_baseline": self.speedup,
            "samples_ns": [s * 1e9 for s in self.samples],
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Row:
        """The inverse of `to_json`, for results a child process sent back."""
        return cls(
            str(raw["name"]),
            [float(s) / 1e9 for s in raw["samples_ns"]],
            float(raw["median_ns"]) / 1e9,
            float(raw["q1_ns"]) / 1e9,
            float(raw["q3_ns"]) / 1e9,
            float(raw["min_ns"]) / 1e9,
            float(raw["max_ns"]) / 1e9,
            float(raw["speedup_vs_baseline"]),
        )


@dataclass(frozen=True)
class GroupResult:
    """A measured group: its rows, in the group's order, baseline included."""

    key: str
    title: str
    unit: str
    baseline: str
    loops: int
    ops_per_loop: int
    rows: list[Row]
    note: str = ""

    def row(self, name: str) -> Row:
        for row in self.rows:
            if row.name == name:
                return row
        raise KeyError(f"no contestant {name!r} in group {self.key!r}")

    def has(self, name: str) -> bool:
        return any(row.name == name for row in self.rows)

    def to_json(self) -> dict[str, object]:
        return {
            "key": self.key,
            "title": self.title,
            "unit": self.unit,
            "baseline": self.baseline,
            "loops_per_sample": self.loops,
            "ops_per_loop": self.ops_per_loop,
            "note": self.note,
            "rows": [row.to_json() for row in self.rows],
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> GroupResult:
        """The inverse of `to_json`, for results a child process sent back."""
        return cls(
            str(raw["key"]),
            str(raw["title"]),
            str(raw["unit"]),
            str(raw["baseline"]),
            int(raw["loops_per_sample"]),
            int(raw["ops_per_loop"]),
            [Row.from_json(r) for r in raw["rows"]],
            str(raw["note"]),
        )


@dataclass
class WorkloadResult:
    """A workload's groups, plus its summary lines and any notes."""

    name: str
    title: str
    groups: list[GroupResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    summary: list[str] = field(default_factory=list)  # the details, one line per finding
    verdict: str = ""  # one short line for the whole workload, the summary's first screen

    def group(self, key: str) -> GroupResult:
        for group in self.groups:
            if group.key == key:
                return group
        raise KeyError(f"no group {key!r} in workload {self.name!r}")

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "title": self.title,
            "groups": [g.to_json() for g in self.groups],
            "notes": self.notes,
            "verdict": self.verdict,
            "summary": self.summary,
        }


@dataclass(frozen=True)
class Workload:
    """A named workload: `run` measures it, and fills the result's summary lines."""

    name: str
    title: str
    run: Callable[[Settings, Progress], WorkloadResult]


class Progress:
    """A one-line progress display on stderr (rewritten in place on a terminal)."""

    def __init__(self, stream: TextIO | None = None, *, enabled: bool = True) -> None:
        self._stream = sys.stderr if stream is None else stream
        self._enabled = enabled
        self._tty = enabled and self._stream.isatty()
        self._width = 0
        self._start = time.perf_counter()
        self._prefix = ""

    @property
    def enabled(self) -> bool:
        """Whether progress is shown at all."""
        return self._enabled

    def workload(self, text: str) -> None:
        self._prefix = text
        if self._enabled and not self._tty:
            self._stream.write(f"[bench {self._elapsed()}] {text}\n")
            self._stream.flush()

    def update(self, text: str) -> None:
        if not self._tty:
            return
        line = f"[bench {self._elapsed()}] {self._prefix}: {text}"[:119]
        self._stream.write("\r" + line.ljust(self._width))
        self._width = len(line)
        self._stream.flush()

    def done(self) -> None:
        if self._tty and self._width:
            self._stream.write("\r" + " " * self._width + "\r")
            self._stream.flush()
            self._width = 0

    def _elapsed(self) -> str:
        return f"{time.perf_counter() - self._start:5.1f}s"


def _sample(timer: Timer, loops: int) -> float:
    gc.collect()
    return timer(loops)


def _calibrate(timer: Timer, target: float, cap: int) -> int:
    """The loop count that makes one sample of `timer` last about `target` seconds."""
    loops = 1
    _sample(timer, 1)  # warm-up: first-use costs (imports, page faults, lazy state)
    while True:
        elapsed = _sample(timer, loops)
        if loops >= cap:
            return cap
        if elapsed >= target / 4:
            return max(1, min(cap, math.ceil(loops * target / max(elapsed, 1e-9))))
        # Jump close to the target once the sample is long enough to trust, else grow 10x.
        grow = 10 if elapsed < 1e-4 else max(2, math.ceil(target / elapsed / 2))
        loops = min(cap, loops * grow)


def run_group(group: Group, settings: Settings, progress: Progress) -> GroupResult:
    """Measure every contestant of `group`: calibrate, then interleave the repeats."""
    names = [c.name for c in group.contestants]
    if group.baseline not in names:
        raise ValueError(f"group {group.key!r}: baseline {group.baseline!r} is not a contestant")
    rng = random.Random(f"{SEED}:{group.key}")
    cap = min(settings.max_loops, group.max_loops)
    with contextlib.ExitStack() as stack:
        timers: dict[str, Timer] = {}
        for contestant in group.contestants:
            progress.update(f"{group.title}: set up {contestant.name}")
            timers[contestant.name] = contestant.make(stack)
        # Objects that exist now (the interpreter's, the contestants' long-lived state) go to
        # the permanent generation: the per-sample gc.collect() then only walks what the
        # samples made, so it is cheap and the same for every contestant, whatever the heap.
        gc.collect()
        gc.freeze()
        stack.callback(gc.unfreeze)
        # One loop count for the whole group, sized for its slowest contestant, so that all
        # do exactly the same work (Sv2 message sizes, decoder streams) in every sample.
        loops = cap
        for name, timer in timers.items():
            progress.update(f"{group.title}: calibrate {name}")
            loops = min(loops, _calibrate(timer, settings.sample_s * group.sample_scale, cap))
        samples: dict[str, list[float]] = {name: [] for name in names}
        order = list(names)
        for r in range(settings.repeats):
            rng.shuffle(order)
            progress.update(f"{group.title}: round {r + 1}/{settings.repeats}")
            for name in order:
                samples[name].append(_sample(timers[name], loops) / (loops * group.ops_per_loop))
    base = statistics.median(samples[group.baseline])
    rows = []
    for name in names:
        values = samples[name]
        med = statistics.median(values)
        q1, q3 = _quartiles(values)
        rows.append(Row(name, values, med, q1, q3, min(values), max(values), base / med if med > 0 else math.inf))
    return GroupResult(group.key, group.title, group.unit, group.baseline, loops, group.ops_per_loop, rows, group.note)


def _quartiles(values: list[float]) -> tuple[float, float]:
    if len(values) < 2:
        return values[0], values[0]
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, q3


def format_time(seconds: float) -> str:
    """`seconds` with three significant digits in ns, µs, ms or s."""
    for scale, unit in ((1e-9, "ns"), (1e-6, "us"), (1e-3, "ms")):
        if seconds < scale * 1000:
            return f"{seconds / scale:.3g} {unit}".replace("e+03", "000")
    return f"{seconds:.3g} s"


def _format_rate(per_second: float) -> str:
    for scale, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if per_second >= scale:
            return f"{per_second / scale:.3g}{unit}"
    return f"{per_second:.3g}"


def speed_span(speedups: Sequence[float]) -> str:
    """Speed-ups as one multiplier or a range of them: "1.05x", "0.82-1.36x"."""
    low, high = min(speedups), max(speedups)
    return f"{low:.2f}x" if f"{low:.2f}" == f"{high:.2f}" else f"{low:.2f}-{high:.2f}x"


def speed_words(speedup: float) -> str:
    """A speed-up as words: "2.50x faster" or "1.30x slower"."""
    if speedup >= 1:
        return f"{speedup:.2f}x faster"
    return f"{1 / speedup:.2f}x slower"


def format_group(result: GroupResult) -> str:
    """The group as a fixed-width table: median, quartiles, rate, and speed vs the baseline."""
    name_w = max(len("contestant"), *(len(r.name) for r in result.rows))
    lines = [
        f"  {result.title} ({result.loops * result.ops_per_loop:,} {result.unit}s per sample,"
        f" {len(result.rows[0].samples)} samples each)",
        f"    {'contestant':<{name_w}}  {'median/' + result.unit:>16}  {'IQR (q1-q3)':>21}  "
        f"{result.unit + 's/s':>10}  vs {result.baseline}",
    ]
    for row in result.rows:
        iqr = f"{format_time(row.q1)}-{format_time(row.q3)}"
        rate = _format_rate(1 / row.median) if row.median > 0 else "inf"
        lines.append(
            f"    {row.name:<{name_w}}  {format_time(row.median):>16}  {iqr:>21}  {rate:>10}  "
            f"{'baseline' if row.name == result.baseline else speed_words(row.speedup)}"
        )
    if result.note:
        lines.append(f"    note: {result.note}")
    return "\n".join(lines)


def run_child(module: str, settings: Settings, progress: Progress, env: dict[str, str]) -> list[GroupResult]:
    """Run `module.child_main()` in a child process of this very objpool, `env` added to its
    environment; return the groups it measured (see `child_request`, `child_reply`)."""
    child_env = dict(os.environ)
    child_env.update(env)
    # Import this very objpool and these benchmarks in the child, whatever the current directory.
    roots = [os.path.dirname(os.path.dirname(os.path.abspath(m.__file__ or ""))) for m in (objpool, sys.modules[__package__])]
    child_env["PYTHONPATH"] = os.pathsep.join(p for p in (*roots, child_env.get("PYTHONPATH", "")) if p)
    proc = subprocess.run(
        # -P: no current directory on sys.path, where another objpool could shadow this one.
        [sys.executable, "-P", "-c", f"from {module} import child_main; child_main()"],
        input=json.dumps({"settings": dataclasses.asdict(settings), "progress": progress.enabled}),
        stdout=subprocess.PIPE,
        text=True,
        env=child_env,
        check=True,
        timeout=600,
    )
    return [GroupResult.from_json(g) for g in json.loads(proc.stdout)]


def child_request() -> tuple[Settings, Progress]:
    """In a child started by `run_child`: the parent's settings and progress display."""
    raw = json.loads(sys.stdin.read())
    options = raw["settings"]
    options["byte_sizes"] = tuple(options["byte_sizes"])
    return Settings(**options), Progress(enabled=raw["progress"])


def child_reply(results: Sequence[GroupResult]) -> None:
    """In a child started by `run_child`: hand the measured groups back to the parent."""
    json.dump([g.to_json() for g in results], sys.stdout)


class Threads:
    """`count` long-lived threads that each run `loops // count` cycles of `body` on a shared object.

    The timer covers the release of the threads until all finish: wall time, so the
    per-operation figure includes GIL hand-offs between them. With `count=1` it is the
    single-thread figure to compare them with: the same runner and the same clock.
    """

    def __init__(self, body: Callable[[int], None], count: int) -> None:
        self._body = body
        self._count = count
        self._loops = 0
        self._stop = False
        self._start = threading.Barrier(count + 1)
        self._end = threading.Barrier(count + 1)
        self._threads = [threading.Thread(target=self._work, daemon=True) for _ in range(count)]
        for thread in self._threads:
            thread.start()

    def _work(self) -> None:
        while True:
            self._start.wait()
            if self._stop:
                return
            self._body(self._loops)
            self._end.wait()

    def __call__(self, loops: int) -> float:
        self._loops = max(1, loops // self._count)
        self._start.wait()
        t0 = time.perf_counter()
        self._end.wait()
        elapsed = time.perf_counter() - t0
        return elapsed * loops / (self._count * self._loops)  # per requested op, if not divisible

    def close(self) -> None:
        self._stop = True
        self._start.wait()
        for thread in self._threads:
            thread.join(5)
