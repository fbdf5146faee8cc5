"""The run's context for the header: Python version, build (interpreted or compiled), machine.

Invariant: every fact here is read from the running interpreter and the imported objpool, so
a header can never describe a different build from the one measured.
"""

from __future__ import annotations

import datetime
import os
import platform
import sys
from importlib import metadata

from .. import _compiled

__all__ = ["describe", "header_lines"]


def _build() -> str:
    if _compiled.COMPILED:
        twins = ", ".join(_compiled.TWINS)
        return f"compiled hot path ({twins}), the rest interpreted"
    return "pure Python (interpreted)"


def _version() -> str:
    try:
        return metadata.version("typed-objpool")
    except metadata.PackageNotFoundError:
        return "not installed"


def describe() -> dict[str, object]:
    """The facts, for the JSON output."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count() or 0
    gil = getattr(sys, "_is_gil_enabled", None)
    return {
        "python": sys.version.replace("\n", " "),
        "implementation": platform.python_implementation(),
        "gil_enabled": True if gil is None else bool(gil()),
        "objpool_build": _build(),
        "objpool_version": _version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or "unknown",
        "cpu_count": os.cpu_count() or 0,
        "cpus_usable": usable,
        "utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
    }


def header_lines(facts: dict[str, object]) -> list[str]:
    """The header, a few lines of text."""
    gil = "" if facts["gil_enabled"] else ", free-threaded (no GIL)"
    return [
        f"python  {facts['implementation']} {facts['python']}{gil}",
        f"objpool {facts['objpool_version']}, {facts['objpool_build']}",
        f"machine {facts['platform']}, {facts['machine']}, {facts['cpu_count']} CPUs "
        f"({facts['cpus_usable']} usable)",
        f"date    {facts['utc']}",
    ]
