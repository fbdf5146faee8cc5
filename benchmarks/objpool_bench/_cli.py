"""The command line: pick workloads and a preset, print the header, tables and summary.

Invariant: everything printed or written to `--json` comes from this one run; the summary
is computed from the tables below it, never typed in. The first screen is the header and the
summary, one verdict per workload, its few names explained first; then the details, each
name they use explained before them; then the tables. No line of the first screen, the
details or the names is longer than `WIDTH`.

    objpool-bench --quick                 # under a minute on two cores
    objpool-bench                         # the full run, about a minute
    objpool-bench --only pool-cycle --json results.json
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import re
import sys
import textwrap
import time
from collections.abc import Sequence
from typing import Final, TextIO

from . import _bufpool, _bytebuffers, _decoder, _handoff, _pool_cycle, _sharing, _sizedpool, _sv2_single, _sv2_threads
from ._harness import Progress, Settings, Workload, WorkloadResult, format_group
from ._machine import describe, header_lines

__all__ = ["WORKLOADS", "main"]

WORKLOADS: Final[dict[str, Workload]] = {
    w.name: w
    for w in (
        _pool_cycle.WORKLOAD,
        _sv2_single.WORKLOAD,
        _sv2_threads.WORKLOAD,
        _decoder.WORKLOAD,
        _bytebuffers.WORKLOAD,
        _handoff.WORKLOAD,
        _bufpool.WORKLOAD,
        _sizedpool.WORKLOAD,
        _sharing.WORKLOAD,
    )
}


WIDTH: Final = 99  # the longest line of the first screen, the names and the details

# How to read the verdicts, printed above them.
READING: Final = (
    "Summary, one line per workload. 'Nx the speed of X': X's time over objpool's, measured in "
    "this run (above 1x objpool is faster). 'fresh memory': BufferFromSystemMemory, the Sv2 "
    "buffer that takes new memory for each message. '[k/n met]': k of the project's n targets "
    "for this build were met (see the details)."
)

# What the names in the details mean; each is printed once, above the details, if used there.
LEGEND: Final[dict[str, str]] = {
    "PPool": "an unchecked pool: a plain list of free objects, no handles, no checks; it lends "
    "one object twice after a double release. The speed a careless pool gets. Benchmark code: always "
    "interpreted, so on the compiled build it is no bound.",
    "MaxEfficiency": "a deliberately broken Sv2 buffer that never allocates and never checks (every "
    "slice shares one memory): a bound no correct buffer reaches. Benchmark code: always interpreted.",
    "BufferFromSystemMemory": "the Sv2 buffer that gives each message fresh memory: the no-pool baseline.",
    "10-byte chunks": "each message written as upstream's benchmark writes it, in 10-byte get_writable "
    "calls; 'one chunk': one get_writable per message.",
    "multi-thread 1": "each iteration's two slices go to two worker threads that release them after "
    "the hold (--hold-ms); only the producer is timed.",
    "multi-thread 2": "as multi-thread 1, but each iteration also waits until both slices were released.",
    "Decoder, feed": "Decoder.feed() with chunks split at random; 'recv': get_buffer()/buffer_updated() "
    "with short reads; 'asyncio': Sv2Protocol over loopback TCP ('read-ahead': read_ahead=64 KiB).",
    "mmap threshold": "run again in a child process with MALLOC_MMAP_THRESHOLD_=131072, so big blocks "
    "come from fresh mmap as in a long-running process with a fragmented heap.",
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="objpool-bench",
        description="Side-by-side benchmarks of objpool's pools against plain allocation and naive pools. "
        "Figures are medians of interleaved samples; ratios are against the no-pool baseline of the same run.",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="fewer, shorter samples: under a minute on 2 cores")
    mode.add_argument("--smoke", action="store_true", help=argparse.SUPPRESS)  # the test suite's tiny run
    parser.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        choices=list(WORKLOADS),
        help=f"run only this workload (repeatable): {', '.join(WORKLOADS)}",
    )
    parser.add_argument("--json", metavar="PATH", help="also write every result, samples included, to PATH")
    parser.add_argument("--hold-ms", type=float, help="Sv2 multi-thread: how long workers hold a slice (default 1)")
    parser.add_argument(
        "--wall-clock",
        action="store_true",
        help="time single-thread rows by wall time too (default: the thread's CPU time, robust to a busy machine)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Run the benchmarks; return the exit status."""
    args = _parser().parse_args(argv)
    stdout = sys.stdout if out is None else out
    settings = Settings.smoke() if args.smoke else Settings.quick() if args.quick else Settings.full()
    if args.hold_ms is not None:
        if not args.hold_ms >= 0:
            raise SystemExit(f"--hold-ms must be >= 0, got {args.hold_ms}")
        settings = dataclasses.replace(settings, hold_s=args.hold_ms / 1000)
    if args.wall_clock:
        settings = dataclasses.replace(settings, cpu_time=False)
    names = args.only or list(WORKLOADS)
    facts = describe()
    print("objpool benchmarks (objpool-bench)", file=stdout)
    for line in header_lines(facts):
        _wrapped(f"  {line}", stdout, indent=10)
    _wrapped(
        f"  mode    {settings.mode}: {settings.repeats} interleaved samples per contestant, "
        f"~{settings.sample_s * 1000:g} ms each; medians, IQR; 'vs' = speed against the baseline, same run",
        stdout,
        indent=10,
    )
    clock = "thread CPU time (time.thread_time)" if settings.cpu_time else "wall time (time.perf_counter)"
    _wrapped(f"  clock   single-thread rows: {clock}; rows with threads, sleeps or sockets: wall time", stdout, indent=10)
    stdout.flush()
    progress = Progress(enabled=not args.no_progress)
    start = time.perf_counter()
    results: list[WorkloadResult] = []
    tables = io.StringIO()  # printed after the summary, which needs every table first
    for name in names:
        workload = WORKLOADS[name]
        progress.workload(workload.title)
        result = workload.run(settings, progress)
        progress.done()
        results.append(result)
        _print_workload(result, tables)
    elapsed = time.perf_counter() - start
    print(file=stdout)
    _wrapped(READING, stdout)
    for result in results:
        _wrapped(f"- {result.verdict}{_targets(result.summary)}", stdout)
    print(f"(measured in {elapsed:.1f} s; the details and the tables follow)", file=stdout)
    lines = [line for result in results for line in result.summary]
    used = [term for term in LEGEND if any(term in line for line in lines)]
    if used:
        print("\nNames in the details", file=stdout)
        for term in used:
            _wrapped(f"- {term}: {LEGEND[term]}", stdout)
    print("\nDetails", file=stdout)
    for line in lines:
        _wrapped(f"- {line}", stdout)
    stdout.write(tables.getvalue())
    if args.json:
        document = {
            "machine": facts,
            "settings": dataclasses.asdict(settings),
            "elapsed_s": elapsed,
            "workloads": [r.to_json() for r in results],
        }
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(document, f, indent=1)
            f.write("\n")
    return 0


def _wrapped(text: str, out: TextIO, indent: int = 2) -> None:
    """`text` in lines of at most WIDTH characters, the later ones indented."""
    print(textwrap.fill(text, WIDTH, subsequent_indent=" " * indent, break_on_hyphens=False), file=out)


def _targets(details: list[str]) -> str:
    """How many of the workload's targets its details report met: " [2/3 met]"."""
    outcomes = [word for line in details for word in re.findall(r"\btarget[^\]]*?: (met|MISSED)", line)]
    if not outcomes:
        return ""
    return f" [{outcomes.count('met')}/{len(outcomes)} met]"


def _print_workload(result: WorkloadResult, out: TextIO) -> None:
    print(f"\n== {result.title} ({result.name}) ==", file=out)
    for group in result.groups:
        print(format_group(group), file=out)
    for note in result.notes:
        print(f"  note: {note}", file=out)
    out.flush()
