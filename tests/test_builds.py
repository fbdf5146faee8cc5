"""Which build runs: `objpool.COMPILED`, and the run-time way back to the pure reference."""

from __future__ import annotations

import importlib.machinery
import subprocess
from pathlib import Path

import child
import objpool
from objpool import BufAllocation, BufPool, Pool, SizedPool
from objpool._compiled import TWINS
from objpool.sv2 import BufferPool, Decoder, Slice

REPORT = (
    "import objpool, objpool.sv2 as sv2; "
    "print(objpool.COMPILED, type(objpool.Pool.allocate).__name__, sv2.Slice.__module__, sv2.Decoder.__mro__[1].__module__)"
)


def _report(**env: str) -> list[str]:
    proc = subprocess.run(
        child.python("-c", REPORT), env={**child.environment(), **env}, capture_output=True, text=True, timeout=60, check=True
    )
    return proc.stdout.split()


def test_every_hot_class_comes_from_the_build_that_runs() -> None:
    compiled = objpool.COMPILED
    assert (Slice.__module__ == "objpool.sv2._cslice") == compiled
    for cls in (Pool, BufferPool, Decoder, BufPool, SizedPool):
        core = cls.__mro__[1]
        assert (core.__module__ in TWINS) == compiled, core
    assert (BufAllocation.__module__ == "objpool._cbufpool") == compiled
    # The caches a Pool, BufPool or SizedPool keeps per thread (thread_cache=True) are compiled too.
    sized = SizedPool(thread_cache=True)
    sized.allocate(4096).release()
    assert [type(c).__module__ for c in sized._caches] == ["objpool._csizedpool" if compiled else "objpool._threadcache"]
    pool = Pool(bytearray, 1, reset=bytearray.clear, thread_cache=True)
    pool.allocate().release()
    caches = [c for c in pool._caches or () if c is not None]
    assert [type(c).__module__ for c in caches] == ["objpool._cpool" if compiled else "objpool._pool"]
    bufpool = BufPool(64, 64 * 64, thread_cache=True)
    bufpool.allocate(1).release()
    block_caches = [c for c in bufpool._caches or () if c is not None]
    assert [type(c).__module__ for c in block_caches] == ["objpool._cbufpool" if compiled else "objpool._bufpool"]


def test_objpool_pure_python_at_run_time_runs_the_reference() -> None:
    """Set in the environment, it undoes a compiled install's twins (and changes nothing in a pure one)."""
    assert _report(OBJPOOL_PURE_PYTHON="1") == ["False", "function", "objpool.sv2._slice", "objpool.sv2._codec"]
    default = _report(OBJPOOL_PURE_PYTHON="0")
    assert default[0] == str(objpool.COMPILED)


def test_importing_every_module_leaves_the_gil_as_it_was() -> None:
    """On a free-threaded build the GIL stays off: every twin declares that it runs without
    it (an extension that does not turns it back on, with a RuntimeWarning, here an error).
    In a fresh interpreter left to its default (no PYTHON_GIL), warnings as errors."""
    script = """
import importlib, pkgutil, sys
gil = getattr(sys, "_is_gil_enabled", lambda: True)
before = gil()
import objpool
for module in pkgutil.walk_packages(objpool.__path__, "objpool."):
    importlib.import_module(module.name)
print(before, gil())
"""
    env = child.environment()
    env.pop("PYTHON_GIL", None)
    run = subprocess.run(child.python("-W", "error", "-c", script), env=env, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    before, after = run.stdout.split()
    assert after == before, "importing objpool turned the GIL on"


def test_the_build_compiles_exactly_the_twins_listed_in_one_place() -> None:
    """`objpool._compiled.TWINS` is the one list: setup.py reads it, the sources hold a
    `.pyx` for each twin on it and no other, and a compiled install holds an extension
    module for each and nothing else (a pure one holds none)."""
    root = Path(objpool.__file__).parent
    built = set()
    suffixes = sorted(importlib.machinery.EXTENSION_SUFFIXES, key=len, reverse=True)
    for path in root.rglob("*"):
        name = ".".join(path.relative_to(root.parent).parts)
        suffix = next((s for s in suffixes if name.endswith(s)), None)
        if suffix is not None:
            built.add(name[: -len(suffix)])
    if objpool.COMPILED:
        assert built == set(TWINS)
    else:  # a pure install; or, run with OBJPOOL_PURE_PYTHON=1, a compiled one
        assert built in (set(), set(TWINS))
    sources = Path(__file__).resolve().parent.parent / "objpool"
    pyx = {".".join(p.relative_to(sources.parent).with_suffix("").parts) for p in sources.rglob("*.pyx")}
    assert pyx == set(TWINS)
