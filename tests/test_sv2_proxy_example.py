"""examples/sv2_proxy.py with a few connections: every frame comes back intact."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import pytest

sys.path.append(str(Path(__file__).resolve().parent.parent / "examples"))

import sv2_proxy  # noqa: E402  # examples/ is not a package; the path is set just above


@pytest.mark.parametrize(
    ("buffer", "read_ahead"),
    [(b, r) for b in sv2_proxy.BUFFER_KINDS for r in (0, 4096) if not (b == sv2_proxy.WAITING and r)],
)
def test_proxy_forwards_every_frame_intact(buffer: str, read_ahead: int) -> None:
    # Runs until 200 frames went through, however slow the machine: no wall-clock window.
    report = asyncio.run(
        sv2_proxy.run_demo(connections=12, duration=0, frames=200, buffer=buffer, window=3, read_ahead=read_ahead)
    )
    stats = report.stats
    assert [] == stats.client_errors + stats.proxy_errors
    assert 0 == stats.frames_corrupt
    assert stats.frames_sent >= 200
    assert stats.frames_sent == stats.frames_echoed
    assert 2 * stats.frames_sent == stats.proxy_frames == stats.frames_in_pool + stats.frames_in_system
    assert 0 == stats.open_connections  # every proxy and echo connection saw its end
    assert report.ok
    assert all(line for line in report.lines())


def test_backpressure_keeps_every_frame_in_a_pool_smaller_than_the_load() -> None:
    """24 proxy-side buffers for 12 connections' 2 sides x 4 frames in flight: they wait."""
    report = asyncio.run(
        sv2_proxy.run_demo(
            connections=12, duration=0, frames=400, buffer=sv2_proxy.WAITING, window=4, read_ahead=0, pool_buffers=6
        )
    )
    stats = report.stats
    assert report.ok
    assert (0, 0) == (stats.frames_in_system, stats.system_bytes_peak)
    assert report.peak_frame_memory == 6 * 32768, "the pool's memory and no more"
    assert " found it empty (waited for), 0 still lent" in report.pool
    assert int(report.pool.split(" found it empty")[0].rsplit(" ", 1)[1]) > 0, "connections did wait"


def test_a_waiting_demo_refuses_read_ahead() -> None:
    with pytest.raises(ValueError, match=r"^pooled-wait reads exactly: read_ahead must be 0, got 4096$"):
        asyncio.run(sv2_proxy.run_demo(connections=1, duration=0, buffer=sv2_proxy.WAITING, read_ahead=4096))


def test_compare_runs_both_modes_in_fresh_processes(capsys: pytest.CaptureFixture[str]) -> None:
    assert 0 == sv2_proxy.main(["-n", "4", "-d", "0", "--frames", "100", "--pool-buffers", "2", "--compare"])
    out = capsys.readouterr().out.splitlines()
    assert out[1].split()[:2] == ["mode", "frames/s"]
    fallback, waiting = (line.split() for line in out[2:4])
    assert (fallback[0], waiting[0]) == ("pooled", sv2_proxy.WAITING)
    assert fallback[-1] == waiting[-1] == "yes"
    assert waiting[2] == "0", "no frame in system memory with backpressure"


def test_main_prints_the_report(capsys: pytest.CaptureFixture[str]) -> None:
    assert 0 == sv2_proxy.main(["-n", "3", "-d", "0", "--frames", "30"])
    out = capsys.readouterr().out
    echoed = re.search(r" (\d+) echoed intact, 0 corrupt$", out, re.MULTILINE)
    assert echoed is not None
    assert int(echoed[1]) > 3  # more than one frame per client
    assert "frames/s" in out


def test_expected_frames_are_valid_channel_frames() -> None:
    from objpool.sv2 import BufferFromSystemMemory, Decoder

    wire = b"".join(sv2_proxy.expected_frame(5, seq) for seq in range(len(sv2_proxy.SIZES)))
    frames = Decoder(BufferFromSystemMemory()).feed(wire)
    assert [5] * len(sv2_proxy.SIZES) == [f.channel_id for f in frames]
    assert sorted(sv2_proxy.SIZES) == sorted(f.msg_length - 8 for f in frames)
    for f in frames:
        f.release()


class SlowTransport(asyncio.Transport):
    """Accepts writes but sends nothing until `drain()`: what a full socket looks like."""

    def __init__(self) -> None:
        super().__init__()
        self.queued: list[memoryview] = []
        self.sent = bytearray()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.queued.append(memoryview(data))  # keeps a reference, as CPython >= 3.12 does

    def get_write_buffer_size(self) -> int:
        return sum(len(v) for v in self.queued)

    def drain(self) -> None:
        for view in self.queued:
            self.sent += view
        self.queued.clear()


def test_frame_sender_releases_a_frame_only_after_its_transport_drained() -> None:
    from objpool.sv2 import BufferPool, Encoder

    async def main() -> None:
        encoder = Encoder(BufferPool(1024))
        transport = SlowTransport()
        sender = sv2_proxy.FrameSender(transport, sv2_proxy.Stats())
        first = encoder.encode_frame(1, b"one")
        sender.send(first)
        assert first.alive, "the transport still references its bytes"
        transport.drain()
        second = encoder.encode_frame(2, b"two")
        sender.send(second)  # the transport drained, so the first frame goes back now
        assert not first.alive
        assert second.alive
        assert 2 == sender.stats.frames_held
        transport.drain()
        await asyncio.sleep(0.05)  # no further send: the sender's poll finds it drained
        assert not second.alive
        assert sender.poll is None, "nothing held: no more polling"
        assert encoder.buffer.is_droppable()
        assert b"\x00\x00\x01\x03\x00\x00one\x00\x00\x02\x03\x00\x00two" == bytes(transport.sent)

    asyncio.run(main())


def test_a_run_that_sent_nothing_says_so_and_fails(capsys: pytest.CaptureFixture[str]) -> None:
    """A window that closed before any frame went out once reported 0 frames and exited 0."""
    assert 1 == sv2_proxy.main(["-n", "2", "-d", "0"])
    out = capsys.readouterr().out
    assert " 0 frames sent, 0 echoed intact" in out
    assert "error: the clients sent nothing" in out
