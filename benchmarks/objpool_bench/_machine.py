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

import objpool

__all__ = ["describe", "header_lines", "installed_compiled_init", "shadowing_warning"]

DISTRIBUTION = "typed-objpool"


def _build() -> str:
    if objpool.COMPILED:
        return "compiled hot path (Cython twins), the rest interpreted"
    if os.environ.get("OBJPOOL_PURE_PYTHON", "") not in ("", "0"):
        return "pure Python (interpreted; OBJPOOL_PURE_PYTHON is set)"
    return "pure Python (interpreted)"


def _version() -> str:
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "not installed"


def installed_compiled_init() -> str | None:
    """Where the installed distribution put `objpool/__init__.py`, if it installed a compiled
    build as regular files (None for a pure install, an editable one, or none)."""
    try:
        files = list(metadata.files(DISTRIBUTION) or [])
    except metadata.PackageNotFoundError:
        return None
    installed = [f for f in files if f.parts[:1] == ("objpool",)]
    init = next((f for f in installed if f.parts == ("objpool", "__init__.py")), None)
    if init is None or not any(f.suffix in (".so", ".pyd") for f in installed):
        return None
    return str(init.locate())


def shadowing_warning(installed_init: str | None = None, imported: str | None = None) -> str | None:
    """A warning if the objpool imported is not the compiled build installed: a source
    checkout on `sys.path` (the current directory, with `python -m`) shadows the build
    `pip install .` made, and the run would measure the checkout's pure Python instead.

    Defaults: `installed_compiled_init()`, and this process's `objpool.__file__`.
    """
    if installed_init is None:
        installed_init = installed_compiled_init()
        if installed_init is None:  # nothing compiled is installed: nothing to shadow
            return None
    location = os.path.realpath(installed_init)
    imported = os.path.realpath(objpool.__file__ if imported is None else imported)
    if imported == location:
        return None
    return (
        f"WARNING: measuring the objpool at {os.path.dirname(imported)}, not the compiled build "
        f"installed at {os.path.dirname(location)}: a source checkout shadows it. Run "
        "`objpool-bench` (or `python -P -m objpool_bench`), from any directory."
    )


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
        "objpool_path": os.path.dirname(os.path.realpath(objpool.__file__)),
        "shadowed": shadowing_warning(),
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
    lines = [
        f"python  {facts['implementation']} {facts['python']}{gil}",
        f"objpool {facts['objpool_version']}, {facts['objpool_build']}",
        f"        from {facts['objpool_path']}",
        f"machine {facts['platform']}, {facts['machine']}, {facts['cpu_count']} CPUs "
        f"({facts['cpus_usable']} usable)",
        f"date    {facts['utc']}",
    ]
    if facts["shadowed"]:
        lines[:0] = ["!" * 78, str(facts["shadowed"]), "!" * 78]
    return lines
