"""Smoke tests for `python -m objpool.bench`: every workload runs, tiny, and reports sanely.

No test asserts a timing: the numbers of a smoke run mean nothing.
"""

from __future__ import annotations

import io
import json
import subprocess
from pathlib import Path

import pytest

import child
import objpool
from objpool.bench import _harness, main
from objpool.bench._baselines import MaxEfficiency, PPool, PPoolBuffer
from objpool.bench._cli import WORKLOADS
from objpool.bench._sv2_buffers import BASELINE, Messages, buffer_makers, write_chunked, write_one

EXPECTED_WORKLOADS = ["pool-cycle", "sv2-single", "sv2-threads", "decoder", "bytebuffers", "handoff", "bufpool", "sizedpool"]


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
    assert text.index("\nSummary\n") < text.index("\nNames in the summary\n") < text.index("\n== 1. "), (
        "the summary and its legend come before the tables"
    )
    for term in ("PPool", "MaxEfficiency", "multi-thread 1", "multi-thread 2", "mmap threshold"):
        assert f"\n- {term}: " in text, f"{term} is used in the summary but not explained"
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
    assert "Sv2" not in text


def test_unknown_workload_is_refused() -> None:
    with pytest.raises(SystemExit):
        main(["--only", "nonsense"], out=io.StringIO())


def test_module_runs_as_a_command() -> None:
    """`python -m objpool.bench` works, shows progress on stderr and the header on stdout."""
    proc = subprocess.run(
        child.python("-m", "objpool.bench", "--smoke", "--only", "sv2-single"),
        capture_output=True,
        text=True,
        env=child.environment(),
        timeout=120,
        check=True,
    )
    assert proc.stdout.startswith("objpool benchmarks")
    assert "CPU" in proc.stdout and "python" in proc.stdout
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
