"""The examples run with small inputs and do what their docstrings claim."""

from __future__ import annotations

import hashlib
import re
import runpy
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
sys.path.insert(0, str(EXAMPLES))

import bytearray_reuse  # noqa: E402  # examples/ is not a package; the path is set just above
import pooled_strings  # noqa: E402
import typed_app  # noqa: E402

from objpool import ByteBuffer, Pool, PoolExhaustedError, Reset  # noqa: E402


# -- pooled_strings -----------------------------------------------------------------


def test_pooled_strings_main(capsys: pytest.CaptureFixture[str]) -> None:
    summary = pooled_strings.main(["--count", "200"])
    out = capsys.readouterr().out
    assert 200 == len(summary.strings)
    assert summary.identical, "a reused builder built a different string than a fresh one"
    assert "row 199: ·item0·item1·item2 ✓" == summary.strings[-1]
    s = summary.stats
    assert (200, 200, 0, 0) == (s.allocations, s.deallocations, s.lent, s.leaks)
    assert 1 == s.high_water  # one string at a time: LIFO hands out the same builder
    # The point of the example: the pooled builder grows a few times, then never again.
    assert 0 < summary.pooled_growths <= 3 < summary.fresh_growths
    assert 64 == max(summary.capacities)
    assert re.search(r"^buffer growths: \d+ pooled vs \d+ with a fresh builder each time$", out, re.M)
    assert re.search(r"^pool: 200 allocations, 200 deallocations, high water 1$", out, re.M)


def test_text_builder_keeps_capacity_across_reset() -> None:
    assert isinstance(pooled_strings.TextBuilder(), Reset)
    sb = pooled_strings.TextBuilder(4)
    sb.write("héllo, ")
    sb.write("wörld")
    assert ("héllo, wörld", 14, 16, 2) == (sb.build(), len(sb), sb.capacity, sb.growths)
    sb.reset()
    assert (0, "", 16) == (len(sb), sb.build(), sb.capacity)
    sb.write("ok")
    assert ("ok", 16, 2) == (sb.build(), sb.capacity, sb.growths)  # old bytes past len() never show


def test_text_builder_rejects_bad_capacity() -> None:
    with pytest.raises(ValueError, match=r"^capacity must be >= 1, got int 0$"):
        pooled_strings.TextBuilder(0)


# -- bytearray_reuse ----------------------------------------------------------------


def test_bytearray_reuse_main_hashes_a_temporary_file(capsys: pytest.CaptureFixture[str]) -> None:
    report = bytearray_reuse.main(["--size", str(300_000), "--window", "3"])
    out = capsys.readouterr().out
    assert 300_000 == report.size
    assert 5 == report.chunks  # 4 full chunks of 64 KiB and one of 37856 bytes
    assert report.expected_sha256 == report.sha256
    s = report.stats
    assert (6, 6, 0) == (s.allocations, s.deallocations, s.lent)  # the 6th read hit end of file
    assert (3, 3, 32) == (s.high_water, report.buffers_used, s.capacity)
    # No allocation per chunk: far less than one chunk's worth was allocated while reading,
    # while f.read() held `window` chunks of fresh bytes at its peak.
    assert report.pooled_peak < bytearray_reuse.CHUNK // 8
    assert report.naive_peak > 3 * bytearray_reuse.CHUNK
    assert f"sha256 {report.sha256} matches hashlib.file_digest" in out


def test_bytearray_reuse_reads_a_given_path(tmp_path: Path) -> None:
    path = tmp_path / "given.bin"
    data = bytes(range(256)) * 1000
    path.write_bytes(data)
    report = bytearray_reuse.main([str(path), "--window", "1"])
    assert (len(data), hashlib.sha256(data).hexdigest()) == (report.size, report.sha256)
    assert 1 == report.stats.high_water == report.buffers_used


def test_bytearray_reuse_returns_buffers_after_an_error(tmp_path: Path) -> None:
    """A failure mid-read hands every in-flight buffer back: no leak, no ResourceWarning."""
    path = tmp_path / "data.bin"
    path.write_bytes(bytes(10 * bytearray_reuse.CHUNK))
    pool = Pool(lambda: ByteBuffer(bytearray_reuse.CHUNK), 3)
    with path.open("rb") as f, pytest.raises(
        PoolExhaustedError, match=r"^all 3 objects of <Pool 3/3 lent, 0 free> are lent out$"
    ):
        bytearray_reuse.hash_pooled(f, pool, window=4)  # window > capacity: exhausted
    s = pool.stats()
    assert (0, 0, 3) == (s.lent, s.leaks, s.deallocations)


def test_bytearray_reuse_rejects_a_window_larger_than_the_pool(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"^window must be between 1 and 32 \(the pool's capacity\), got 33$"):
        bytearray_reuse.run(tmp_path / "unused", window=33)


# -- typed_app ----------------------------------------------------------------------


def test_typed_app_main(capsys: pytest.CaptureFixture[str]) -> None:
    summary = typed_app.main(["--bursts", "2"])
    out = capsys.readouterr().out
    statuses = [r.status for r in summary.responses]
    # Per burst: 4 admitted (200, 200, 405, 404), 2 refused with 503, in arrival order.
    assert [200, 200, 405, 404, 503, 503] * 2 == statuses
    assert typed_app.Response(200, "ITEM1=VALUE 1; ITEM2=VALUE 2") == summary.responses[7]
    contexts, db, scratch = (summary.stats[k] for k in ("contexts", "db", "scratch"))
    assert (8, 4, 4, 0) == (contexts.allocations, contexts.exhausted, contexts.high_water, contexts.lent)
    # The 405 answers before touching the database; every other admitted request used it.
    assert (8, 0, 0) == (db.allocations, db.lent, scratch.lent)
    assert 2 == summary.rollbacks  # one per "GET /items/nope", by Connection.reset()
    assert "transactions rolled back by Connection.reset(): 2" in out
    assert re.search(r"^contexts: 8 allocations, 4 refused, high water 4/4$", out, re.M)


def test_typed_app_releases_everything_when_a_handler_fails() -> None:
    app = typed_app.App()
    admitted = app.admit("GET /items/item1/missing")
    assert not isinstance(admitted, typed_app.Response)
    assert typed_app.Response(404, "no such item: missing") == app.finish(admitted)
    assert not admitted.alive
    assert [0, 0, 0] == [s.lent for s in app.stats().values()]
    assert [1, 0] == [c.rollbacks for c in app.connections]
    assert not any(c.in_transaction for c in app.connections)


# -- all of them --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("script", "argv"),
    [
        ("pooled_strings.py", ["--count", "3"]),
        ("bytearray_reuse.py", ["--size", "1000"]),
        ("typed_app.py", ["--bursts", "1"]),
    ],
)
def test_examples_run_as_scripts(
    script: str, argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "argv", [script, *argv])
    runpy.run_path(str(EXAMPLES / script), run_name="__main__")
    assert capsys.readouterr().out.strip()



# -- stalled_peers -------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["system", "pooled"])
def test_stalled_peers_pin_one_step_each(kind: str, capsys: pytest.CaptureFixture[str]) -> None:
    import stalled_peers  # noqa: E402  # examples/ is on the path (set above)

    assert 0 == stalled_peers.main(["--connections", "20", "--buffer", kind, "--timeout", "20"])
    out = capsys.readouterr().out
    assert f"20 peers, each sent one 6-byte header announcing 1048576 bytes, then stalled ({kind} buffers):" in out
    assert re.search(r"reserved in the buffers: +1\.3 MiB \(64\.0 KiB per peer\)$", out, re.M)


# -- load_checkpoint -----------------------------------------------------------------


def test_load_checkpoint_loads_every_tensor_s_exact_bytes_every_way(tmp_path: Path) -> None:
    import load_checkpoint  # noqa: E402  # examples/ is on the path (set above)

    path = str(tmp_path / "model.safetensors")
    size = load_checkpoint.write_checkpoint(path, layers=1, d_model=64, vocab=256, context=64)
    with open(path, "rb", buffering=0) as f:
        tensors = load_checkpoint.read_index(f)
        assert size == tensors[-1].offset + tensors[-1].size, "the tensors run to the end of the file"
        assert 16 == len(tensors) and tensors[0].name == "wte" and tensors[0].size == 256 * 64 * 4
        raw = Path(path).read_bytes()
        for method in load_checkpoint.METHODS:
            loader = load_checkpoint.Loader(method, tensors)
            for _ in range(3):  # the pooled loader reuses the buffers from the 2nd load on
                loader.load(f)
                assert [raw[t.offset : t.offset + t.size] for t in tensors] == [bytes(x) for x in loader.model]  # type: ignore[call-overload]
            if method == "pooled":
                stats = loader.pool.stats()
                assert (16, 32) == (sum(c.misses for c in stats.classes), sum(c.hits for c in stats.classes))
            loader.close()


def test_load_checkpoint_refuses_a_file_that_is_not_safetensors(tmp_path: Path) -> None:
    import load_checkpoint  # noqa: E402

    path = tmp_path / "junk.bin"
    path.write_bytes((1 << 40).to_bytes(8, "little") + b"{}")
    with open(path, "rb", buffering=0) as f, pytest.raises(ValueError, match=r"^not a safetensors file"):
        load_checkpoint.read_index(f)


def test_load_checkpoint_main_prints_the_table_for_a_given_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import load_checkpoint  # noqa: E402

    path = str(tmp_path / "model.safetensors")
    load_checkpoint.write_checkpoint(path, layers=1, d_model=64, vocab=256, context=64)
    assert 0 == load_checkpoint.main(["--file", path, "--loads", "2"])
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:3] == ["method", "1st", "load"]
    assert [line.split()[0] for line in out[1:4]] == list(load_checkpoint.METHODS)
    assert out[4].endswith("16 tensors, 2 loads)")
