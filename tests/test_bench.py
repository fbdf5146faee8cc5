"""Smoke tests for the benchmark suite (`objpool-bench`, the `objpool-bench` distribution in
`benchmarks/`): every workload runs, tiny, and reports sanely; it measures the objpool it
imports and says so; and the library's own distribution ships none of it.

No test asserts a timing: the numbers of a smoke run mean nothing.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

import child
import objpool
from objpool_bench import _harness, main
from objpool_bench._baselines import MaxEfficiency, PPool, PPoolBuffer
from objpool_bench._cli import WIDTH, WORKLOADS
from objpool_bench._machine import installed_compiled_init, shadowing_warning
from objpool_bench._sv2_buffers import BASELINE, Messages, buffer_makers, write_chunked, write_one

EXPECTED_WORKLOADS = ["pool-cycle", "sv2-single", "sv2-threads", "decoder", "bytebuffers", "handoff", "bufpool", "sizedpool", "sharing"]


def test_smoke_every_workload(tmp_path: Path) -> None:
    """A tiny run of every workload prints every table and writes consistent JSON."""
    out = io.StringIO()
    path = tmp_path / "results.json"
    assert main(["--smoke", "--no-progress", "--json", str(path)], out=out) == 0
    text = out.getvalue()
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert [w["name"] for w in doc["workloads"]] == EXPECTED_WORKLOADS
    assert doc["machine"]["objpool_build"].startswith("compiled" if objpool.COMPILED else "pure Python")
    repeats = doc["settings"]["repeats"]
    for workload in doc["workloads"]:
        assert workload["groups"], workload["name"]
        assert workload["summary"], workload["name"]
        assert f"== {workload['title']} ({workload['name']}) ==" in text
        for group in workload["groups"]:
            names = [row["name"] for row in group["rows"]]
            assert group["baseline"] in names
            assert group["title"] in text
            for row in group["rows"]:
                assert len(row["samples_ns"]) == repeats
                assert row["min_ns"] <= row["q1_ns"] <= row["median_ns"] <= row["q3_ns"] <= row["max_ns"]
                assert row["median_ns"] > 0
                if row["name"] == group["baseline"]:
                    assert row["speedup_vs_baseline"] == 1.0
    first_screen, _, rest = text.partition("\nNames in the details\n")
    legend, _, details = ("\n" + rest).partition("\nDetails\n")
    assert details.index("\n== 1. ") > 0, "the tables come after the details"
    verdicts = [line for line in first_screen.splitlines() if line.startswith("- ")]
    assert len(verdicts) == len(EXPECTED_WORKLOADS), "one verdict line per workload"
    assert [w["verdict"] for w in doc["workloads"]] == [v[2:].split(" [")[0] for v in verdicts]
    assert len(first_screen.splitlines()) <= 30, "the header and the summary fit on one screen"
    for line in (first_screen + legend + details.partition("\n== 1. ")[0]).splitlines():
        assert len(line) <= WIDTH, line
    for term in ("PPool", "MaxEfficiency", "multi-thread 1", "multi-thread 2", "mmap threshold"):
        assert f"\n- {term}: " in legend, f"{term} is used in the details but not explained before them"
    assert "'fresh memory'" in first_screen, "the verdicts' one name is explained above them"
    keys = [g["key"] for w in doc["workloads"] for g in w["groups"]]
    assert any(k.startswith("mmap threshold/") for k in keys), "the child process's groups are missing"
    # The builds compared in one run: the pure reference always, the compiled build when built.
    assert ("whole-frames/compiled" in keys) == objpool.COMPILED
    assert "whole-frames/pure" in keys, "the pure reference's group (a child's, on the compiled build) is missing"
    cross = "compiled vs the pure reference in a child process" in text
    assert cross == objpool.COMPILED


def test_only_runs_the_named_workload() -> None:
    out = io.StringIO()
    assert main(["--smoke", "--no-progress", "--only", "pool-cycle"], out=out) == 0
    text = out.getvalue()
    assert "== 1. Object pool cycle (pool-cycle) ==" in text
    assert "== 2." not in text and "\n- Sv2" not in text


def test_unknown_workload_is_refused() -> None:
    with pytest.raises(SystemExit):
        main(["--only", "nonsense"], out=io.StringIO())


def test_module_runs_as_a_command() -> None:
    """`python -m objpool_bench` works, shows progress on stderr and the header on stdout."""
    proc = subprocess.run(
        child.python("-m", "objpool_bench", "--smoke", "--only", "sv2-single"),
        capture_output=True,
        text=True,
        env=child.environment(),
        timeout=120,
        check=True,
    )
    assert proc.stdout.startswith("objpool benchmarks")
    assert "CPU" in proc.stdout and "python" in proc.stdout
    assert f"from {os.path.dirname(objpool.__file__)}" in proc.stdout, "the header names the objpool measured"
    assert ("compiled hot path" in proc.stdout) == objpool.COMPILED
    assert "2. Sv2 single thread" in proc.stderr  # the progress line


def test_workloads_are_listed_in_order_and_in_the_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert list(WORKLOADS) == EXPECTED_WORKLOADS
    with pytest.raises(SystemExit):
        main(["--help"], out=io.StringIO())
    help_text = " ".join(capsys.readouterr().out.split())
    assert "run only this workload (repeatable): " + ", ".join(EXPECTED_WORKLOADS) in help_text


def test_format_time_picks_a_unit() -> None:
    assert _harness.format_time(12.3e-9) == "12.3 ns"
    assert _harness.format_time(4.56e-6) == "4.56 us"
    assert _harness.format_time(0.25) == "250 ms"
    assert _harness.format_time(3.0) == "3 s"
    assert _harness.speed_words(2.0) == "2.00x faster"
    assert _harness.speed_words(0.5) == "2.00x slower"


def test_run_group_refuses_a_missing_baseline() -> None:
    group = _harness.Group("g", "g", "op", "absent", [])
    with pytest.raises(ValueError, match=r"^group 'g': baseline 'absent' is not a contestant$"):
        _harness.run_group(group, _harness.Settings.smoke(), _harness.Progress(enabled=False))


def test_ppool_reuses_and_resets() -> None:
    resets: list[list[int]] = []

    def reset(obj: list[int]) -> None:
        resets.append(obj)
        obj.clear()

    pool: PPool[list[int]] = PPool(list, 1, reset)
    first = pool.acquire()
    first.append(1)
    extra = pool.acquire()  # empty: a fresh object
    assert extra is not first
    pool.release(first)
    assert first == [] and resets == [first]
    assert pool.acquire() is first


def test_every_sv2_contestant_keeps_message_bytes() -> None:
    """Each Buffer contestant hands back exactly the bytes written, both ways of writing."""
    makers = buffer_makers()
    assert next(iter(makers)) == BASELINE
    messages = Messages.prepare(4, "test")
    for label, maker in makers.items():
        buffer = maker()
        for writer in (write_chunked, write_one):
            slices = []
            for off, size in messages.plan[:2]:
                slices.append((writer(buffer, messages.source, off, size), off, size))
            for s, off, size in slices:
                if "broken" not in label:  # MaxEfficiency aliases its slices on purpose
                    assert bytes(s) == bytes(messages.source[off : off + size]), label
                s.release()


def test_ppool_buffer_falls_back_for_big_messages() -> None:
    buffer = PPoolBuffer(16, 1)
    buffer.write(b"x" * 10)
    buffer.write(b"y" * 10)  # outgrows the 16-byte block: moves to fresh memory
    with buffer.get_data_owned() as s:
        assert bytes(s) == b"x" * 10 + b"y" * 10
        assert not s.from_pool
    buffer.write(b"z" * 3)
    with buffer.get_data_owned() as s:
        assert bytes(s) == b"zzz" and s.from_pool
    assert len(buffer) == 0 and buffer.is_droppable()


def test_max_efficiency_aliases_on_purpose() -> None:
    buffer = MaxEfficiency(64)
    buffer.write(b"abc")
    first = buffer.get_data_owned()
    buffer.write(b"xyz")
    second = buffer.get_data_owned()
    assert bytes(first) == b"xyz" == bytes(second)  # the same memory: broken, as documented
    first.release()
    second.release()


def test_the_library_distribution_ships_no_benchmark_code() -> None:
    """The benchmarks are their own distribution: the library's files hold none of them."""
    files = [f for f in metadata.files("typed-objpool") or [] if f.parts[0] == "objpool"]
    assert files, "the distribution lists the package's files"
    assert not [f for f in files if "bench" in str(f)], "benchmark code in the library's distribution"
    assert (metadata.distribution("typed-objpool").read_text("top_level.txt") or "objpool").split() == ["objpool"]
    assert Path(objpool.__file__).parent.name == "objpool"
    assert not (Path(objpool.__file__).parent / "bench").exists()


def test_a_checkout_shadowing_an_installed_compiled_build_is_named_in_the_header(tmp_path: Path) -> None:
    """Run from a directory holding a pure copy of the package while a compiled build is
    installed, `python -m` imports the copy: the header says so, loudly."""
    here = shadowing_warning()
    assert here is None, f"this very run is shadowed: {here}"
    installed = installed_compiled_init()
    shutil.copytree(Path(objpool.__file__).parent, tmp_path / "objpool", ignore=shutil.ignore_patterns("*.so", "*.pyd"))
    env = child.environment()
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env["PYTHONPATH"]])
    proc = subprocess.run(
        [sys.executable, "-m", "objpool_bench", "--smoke", "--only", "handoff", "--no-progress"],
        capture_output=True, text=True, env=env, timeout=120, check=True, cwd=tmp_path,
    )
    header = " ".join(proc.stdout.split())
    assert f"from {tmp_path / 'objpool'}" in header and "pure Python" in header
    # An installed compiled build is shadowed (CI's installs); an editable one is the checkout
    # itself, and a pure one loses nothing: no warning.
    assert ("WARNING: measuring the objpool at " + str(tmp_path / "objpool") in header) == (installed is not None)


def test_the_shadowing_warning_reads_the_installed_files() -> None:
    """What the header's warning decides on, given an install's file list."""
    installed = "/venv/site-packages/objpool/__init__.py"
    assert shadowing_warning(installed, installed) is None
    warning = shadowing_warning(installed, "/checkout/objpool/__init__.py")
    assert warning is not None and warning.startswith(
        "WARNING: measuring the objpool at /checkout/objpool, not the compiled build installed at /venv/site-packages/objpool"
    )
