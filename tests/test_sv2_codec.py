"""The sans-IO Sv2 `Decoder` and `Encoder` over every `Buffer` implementation."""

from __future__ import annotations

from collections.abc import Callable
from typing import assert_type

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from objpool import FrameError
from objpool.sv2 import (
    CHANNEL_MSG_FLAG,
    FRAME_STEP,
    HEADER_LEN,
    Buffer,
    BufferFromSystemMemory,
    Decoder,
    Encoder,
    Frame,
    MissingBytes,
    Slice,
)
from sv2_buffers import BUFFERS

# Example counts follow the Hypothesis profile from conftest.py (100 by default).
SCALE: int = settings().max_examples



class SpyBuffer(Buffer):
    """System memory that records every reservation, to prove what was (not) reserved."""

    def __init__(self) -> None:
        self.inner = BufferFromSystemMemory()
        self.reserved: list[int] = []

    def get_writable(self, n: int) -> memoryview:
        self.reserved.append(n)
        return self.inner.get_writable(n)

    def get_data_owned(self) -> Slice:
        return self.inner.get_data_owned()

    def get_data_by_ref(self, n: int) -> memoryview:
        return self.inner.get_data_by_ref(n)

    def __len__(self) -> int:
        return len(self.inner)

    def is_droppable(self) -> bool:
        return self.inner.is_droppable()

    def danger_set_start(self, i: int) -> None:
        self.inner.danger_set_start(i)


def wire(raw_ext: int, msg_type: int, payload: bytes) -> bytes:
    return raw_ext.to_bytes(2, "little") + bytes([msg_type]) + len(payload).to_bytes(3, "little") + payload


FrameSpec = tuple[int, int, bool, bytes]  # extension_type, msg_type, channel_msg, payload

frame_specs = st.tuples(
    st.integers(0, 0x7FFF),
    st.integers(0, 0xFF),
    st.booleans(),
    st.binary(max_size=300),
).map(lambda t: (t[0], t[1], t[2], t[3].ljust(4, b"\0") if t[2] else t[3]))


def encode(specs: list[FrameSpec]) -> bytes:
    return b"".join(wire(ext | (CHANNEL_MSG_FLAG if chan else 0), t, p) for ext, t, chan, p in specs)


def summary(frame: Frame) -> FrameSpec:
    return (frame.extension_type, frame.msg_type, frame.channel_msg, bytes(frame.payload))


def test_codec_sv2_loop_fills_writable_then_asks_next_frame() -> None:
    """codec_sv2's loop: fill all of writable(), then next_frame(): 6 header bytes, then the payload."""
    buffer = SpyBuffer()
    decoder = Decoder(buffer)
    assert MissingBytes(6) == decoder.next_frame()
    view = decoder.writable()
    assert 6 == len(view)
    view[:] = wire(0x0201, 3, b"hello")[:6]
    assert MissingBytes(5) == decoder.next_frame()
    assert [11] == buffer.reserved, "header and payload reserved at once, once the header passed"
    assert MissingBytes(5) == decoder.next_frame(), "asking again changes nothing"
    payload = decoder.writable()
    assert 5 == len(payload)
    payload[:] = b"hello"
    frame = decoder.next_frame()
    assert isinstance(frame, Frame)
    assert (0x0201, 3, False, b"hello") == summary(frame)
    assert 11 == len(frame.data)  # header + payload, one slice
    assert 0 == len(buffer)
    assert MissingBytes(6) == decoder.next_frame()
    frame.release()


def test_next_frame_narrows_to_frame() -> None:
    """mypy narrows `Frame | MissingBytes` with one isinstance check."""
    decoder = Decoder(BufferFromSystemMemory())
    decoder.writable()[:] = wire(0, 1, b"")
    ev = decoder.next_frame()
    assert_type(ev, Frame | MissingBytes)
    if isinstance(ev, MissingBytes):
        assert_type(ev.count, int)
        raise AssertionError("a whole frame was written")
    assert_type(ev, Frame)
    assert 1 == ev.msg_type
    ev.release()


def test_empty_payload_frame_comes_right_after_its_header() -> None:
    decoder = Decoder(BufferFromSystemMemory())
    decoder.writable()[:] = wire(7, 9, b"")
    frame = decoder.next_frame()
    assert isinstance(frame, Frame)
    assert (7, 9, False, b"") == summary(frame)
    frame.release()


def test_missing_bytes_is_a_small_value() -> None:
    assert MissingBytes(3) == MissingBytes(3) != MissingBytes(4)
    assert MissingBytes(3) != 3
    assert hash(MissingBytes(3)) == hash(MissingBytes(3))
    assert "MissingBytes(3)" == repr(MissingBytes(3))


def test_decoder_rejects_bad_max_payload() -> None:
    with pytest.raises(ValueError, match=r"^max_payload must be in 0\.\.0xffffff, got int 16777216$"):
        Decoder(BufferFromSystemMemory(), max_payload=1 << 24)
    assert 5 == Decoder(BufferFromSystemMemory(), max_payload=5).max_payload
    with pytest.raises(TypeError, match=r"^max_payload must be an int, got float 1\.0$"):
        Decoder(BufferFromSystemMemory(), max_payload=1.0)  # type: ignore[arg-type]  # runtime check


@pytest.mark.parametrize("make_buffer", BUFFERS.values(), ids=BUFFERS.keys())
@settings(max_examples=SCALE * 3 // 5, deadline=None)
@given(specs=st.lists(frame_specs, max_size=8), data=st.data())
def test_splitting_the_wire_anywhere_gives_the_same_frames(
    make_buffer: Callable[[], Buffer], specs: list[FrameSpec], data: st.DataObject
) -> None:
    stream = encode(specs)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10), label="cuts"))
    decoder = Decoder(make_buffer())
    frames: list[Frame] = []
    for a, b in zip([0, *cuts], [*cuts, len(stream)]):
        frames += decoder.feed(stream[a:b])
    assert specs == [summary(f) for f in frames]
    assert [bytes(f) for f in frames] == [bytes(encode([s])) for s in specs]
    assert 0 == decoder.pending
    for f in frames:
        f.release()
    assert decoder.buffer.is_droppable()


@pytest.mark.parametrize("make_buffer", BUFFERS.values(), ids=BUFFERS.keys())
@settings(max_examples=SCALE * 2 // 5, deadline=None)
@given(specs=st.lists(frame_specs, min_size=1, max_size=6), data=st.data())
def test_short_reads_through_get_buffer_give_the_same_frames(
    make_buffer: Callable[[], Buffer], specs: list[FrameSpec], data: st.DataObject
) -> None:
    """The asyncio path: each read fills any part of the view get_buffer() returned."""
    stream = memoryview(encode(specs))
    decoder = Decoder(make_buffer())
    frames: list[Frame] = []
    pos = 0
    try:
        while pos < len(stream):
            view = decoder.get_buffer()
            assert len(view) > 0
            # Hypothesis may stop an example at any draw: the finally releases its frames.
            n = data.draw(st.integers(1, min(len(view), len(stream) - pos)), label="read")
            view[:n] = stream[pos : pos + n]
            pos += n
            ev = decoder.buffer_updated(n)
            if isinstance(ev, MissingBytes):
                assert ev.count == decoder.missing > 0
                assert MissingBytes(ev.count) == decoder.next_frame()
            else:
                frames.append(ev)
        assert specs == [summary(f) for f in frames]
    finally:
        for f in frames:
            f.release()


# Random bytes alone rarely get past the first header (a random u24 length is huge), so mix
# valid frames, raw headers (short channel messages included) and noise.
blobs = st.lists(
    st.one_of(
        frame_specs.map(lambda spec: encode([spec])),
        st.tuples(st.integers(0, 0xFFFF), st.integers(0, 0xFF), st.integers(0, 40)).map(
            lambda t: wire(t[0], t[1], b"")[:3] + t[2].to_bytes(3, "little")
        ),
        st.binary(max_size=40),
    ),
    max_size=6,
).map(b"".join)


@pytest.mark.parametrize("make_buffer", BUFFERS.values(), ids=BUFFERS.keys())
@settings(max_examples=SCALE * 4 // 5, deadline=None)
@given(blob=st.one_of(st.binary(max_size=200), blobs), data=st.data())
def test_arbitrary_bytes_decode_or_raise_frame_error(
    make_buffer: Callable[[], Buffer], blob: bytes, data: st.DataObject
) -> None:
    """h11's fuzz property: nothing but Frames or FrameError comes out."""
    max_payload = data.draw(st.sampled_from([0, 16, 100, 1 << 20]), label="max_payload")
    decoder = Decoder(make_buffer(), max_payload=max_payload)
    cut = data.draw(st.integers(0, len(blob)), label="cut")
    frames: list[Frame] = []
    try:
        frames += decoder.feed(blob[:cut])
        frames += decoder.feed(blob[cut:])
        frames += decoder.feed(b"")  # surfaces an error held back behind returned frames
    except FrameError as exc:
        assert 0 <= exc.offset <= len(blob)
        assert decoder.error is not None
        with pytest.raises(FrameError):
            decoder.next_frame()  # broken until clear()
        decoder.clear()
        assert decoder.error is None
        assert 0 == len(decoder.buffer)
    consumed = sum(len(f) for f in frames)
    assert blob[:consumed] == b"".join(bytes(f) for f in frames)
    for f in frames:
        assert f.msg_length <= max_payload
        assert (f.channel_id is not None) == f.channel_msg
        f.release()


def test_oversize_header_raises_before_reserving_payload_memory() -> None:
    buffer = SpyBuffer()
    decoder = Decoder(buffer, max_payload=4)
    good = wire(0, 1, b"ok")
    [frame] = decoder.feed(good)
    frame.release()
    with pytest.raises(FrameError, match=r"^payload length 5 exceeds max_payload=4$") as info:
        decoder.feed(wire(0, 2, b"12345"))
    assert len(good) == info.value.offset
    assert [8] == buffer.reserved, "the good frame; nothing for the bad header"
    assert (0, 6) == (len(buffer), decoder.pending)


@pytest.mark.parametrize("split", [1, 3, 6])
def test_get_buffer_reserves_nothing_until_a_header_passed(split: int) -> None:
    buffer = SpyBuffer()
    decoder = Decoder(buffer, max_payload=4)
    bad = wire(0, 2, b"12345")
    decoder.get_buffer()[:split] = bad[:split]
    if split < 6:
        assert MissingBytes(6 - split) == decoder.buffer_updated(split)
        decoder.get_buffer()[: 6 - split] = bad[split:6]
    with pytest.raises(FrameError, match=r"^payload length 5 exceeds max_payload=4$"):
        decoder.buffer_updated(6 - split if split < 6 else 6)
    assert [] == buffer.reserved
    assert 6 == decoder.pending
    decoder.clear()
    good = wire(0, 2, b"1234")
    decoder.get_buffer()[:] = good[:6]
    assert MissingBytes(4) == decoder.buffer_updated(6)
    assert [10] == buffer.reserved  # header + payload, reserved at once
    decoder.get_buffer()[:] = good[6:]
    frame = decoder.buffer_updated(4)
    assert isinstance(frame, Frame)
    assert good == bytes(frame)
    frame.release()


def test_huge_announcement_with_default_limit() -> None:
    buffer = SpyBuffer()
    decoder = Decoder(buffer)
    with pytest.raises(FrameError, match=r"^payload length 16777215 exceeds max_payload=1048576$"):
        decoder.feed(b"\x00\x00\x00\xff\xff\xff")
    assert [] == buffer.reserved


def test_channel_message_too_short_for_its_id_fails_at_the_header() -> None:
    buffer = SpyBuffer()
    decoder = Decoder(buffer)
    decoder.writable()[:] = wire(CHANNEL_MSG_FLAG, 1, b"abc")[:6]
    with pytest.raises(FrameError, match=r"^channel message needs a 4-byte channel id, msg_length is 3$") as info:
        decoder.next_frame()
    assert 0 == info.value.offset
    assert [] == buffer.reserved, "nothing reserved for a rejected header"


def test_a_broken_decoder_keeps_failing_until_clear() -> None:
    decoder = Decoder(BufferFromSystemMemory(), max_payload=0)
    bad = wire(0, 1, b"x")
    with pytest.raises(FrameError):
        decoder.feed(bad)
    for call in (decoder.next_frame, decoder.writable, decoder.get_buffer, lambda: decoder.feed(b"")):
        with pytest.raises(FrameError, match=r"^payload length 1 exceeds max_payload=0$"):
            call()
    assert "<Decoder broken max_payload=0>" == repr(decoder)
    decoder.clear()
    assert "<Decoder missing=6 max_payload=0>" == repr(decoder)
    [frame] = decoder.feed(wire(0, 2, b""))
    assert 2 == frame.msg_type
    frame.release()
    assert 12 == decoder.offset  # the dropped 6 header bytes count in the stream offset


def test_frames_before_bad_bytes_are_returned_and_the_error_follows() -> None:
    decoder = Decoder(BufferFromSystemMemory(), max_payload=2)
    frames = decoder.feed(wire(0, 1, b"") + wire(0, 2, b"ab") + wire(0, 3, b"abc") + wire(0, 4, b""))
    assert [1, 2] == [f.msg_type for f in frames]
    for f in frames:
        f.release()
    assert decoder.error is not None
    assert 14 == decoder.error.offset
    with pytest.raises(FrameError, match=r"^payload length 3 exceeds max_payload=2$"):
        decoder.feed(b"")


def test_clear_drops_a_partial_frame() -> None:
    decoder = Decoder(BufferFromSystemMemory())
    assert [] == decoder.feed(wire(0, 1, b"abcdef")[:9])
    assert (9, 3) == (decoder.pending, decoder.missing)
    decoder.clear()
    assert (0, 6, 0) == (decoder.pending, decoder.missing, len(decoder.buffer))
    decoder.get_buffer()[:3] = b"\x00\x00\x01"
    decoder.buffer_updated(3)  # a partial header is dropped too
    decoder.clear()
    assert (0, 6, 0) == (decoder.pending, decoder.missing, len(decoder.buffer))
    assert 12 == decoder.offset
    decoder.writable()[:] = wire(0, 1, b"abc")[:6]
    assert MissingBytes(3) == decoder.next_frame()
    assert 9 == len(decoder.buffer)  # a frame reserved through the codec_sv2 API...
    decoder.clear()  # ...goes back too
    assert (0, 6, 0) == (decoder.pending, decoder.missing, len(decoder.buffer))


def test_bytes_written_behind_the_decoder_s_back_are_a_frame_error() -> None:
    """The decoder must be its buffer's only user; a frame slice of the wrong size says so."""
    buffer = BufferFromSystemMemory()
    decoder = Decoder(buffer)
    buffer.write(b"extra")
    with pytest.raises(
        FrameError, match=r"^the buffer handed over 13 bytes for a 8-byte frame: something else wrote into it$"
    ) as info:
        decoder.feed(wire(0, 1, b"ab"))
    assert 0 == info.value.offset
    assert 0 == len(buffer), "the bad slice went back"
    decoder.clear()
    [frame] = decoder.feed(wire(0, 1, b"ab"))
    assert b"ab" == bytes(frame.payload)
    frame.release()


def test_the_incremental_apis_mix() -> None:
    decoder = Decoder(BufferFromSystemMemory())
    with pytest.raises(RuntimeError, match=r"^buffer_updated\(\) without get_buffer\(\)$"):
        decoder.buffer_updated(1)
    view = decoder.get_buffer()
    assert 6 == len(view)
    with pytest.raises(ValueError, match=r"^nbytes must be in 0\.\.6, got int 7$"):
        decoder.buffer_updated(7)
    again = decoder.get_buffer()  # a second get_buffer() hands out the same unfilled bytes
    assert 6 == len(again)
    assert MissingBytes(6) == decoder.buffer_updated(0)
    decoder.get_buffer()[:2] = b"\x00\x00"
    assert MissingBytes(4) == decoder.buffer_updated(2)
    assert MissingBytes(4) == decoder.next_frame()  # no writable() view: nothing is counted
    tail = decoder.get_buffer()
    assert 4 == len(tail)
    assert 4 == len(decoder.get_buffer())  # replaces (releases) the previous tail view
    with pytest.raises(ValueError, match=r"released memoryview"):
        len(tail)
    decoder.writable()[:] = wire(0, 1, b"abc")[2:6]  # writable() picks up where get_buffer() was
    assert MissingBytes(3) == decoder.next_frame()
    decoder.feed(b"a")  # and feed() where writable() was
    decoder.get_buffer()[:2] = b"bc"
    frame = decoder.buffer_updated(2)
    assert isinstance(frame, Frame)
    assert b"abc" == bytes(frame.payload)
    frame.release()


def test_a_stalled_peer_pins_one_step_beyond_what_it_sent() -> None:
    """A header announcing 1 MiB once reserved the whole MiB at once."""
    for way in ("feed", "get_buffer", "writable"):
        buffer = SpyBuffer()
        decoder = Decoder(buffer)
        payload = bytes(range(256)) * 4096  # 1 MiB
        stream = memoryview(wire(0, 1, payload))
        pos = 0
        frames: list[Frame] = []
        while pos < len(stream):
            if way == "feed":
                n = min(50_000, len(stream) - pos)
                frames += decoder.feed(stream[pos : pos + n])
            else:
                view = decoder.writable() if way == "writable" else decoder.get_buffer()
                n = len(view) if way == "writable" else min(len(view), 50_000)
                view[:n] = stream[pos : pos + n]
                ev = decoder.next_frame() if way == "writable" else decoder.buffer_updated(n)
                if isinstance(ev, Frame):
                    frames.append(ev)
            pos += n
            if not frames:
                sent = decoder.pending
                assert sum(buffer.reserved) <= sent + FRAME_STEP, (way, sent, buffer.reserved)
        [frame] = frames
        assert payload == bytes(frame.payload), way
        assert len(frame) == sum(buffer.reserved), way
        frame.release()


@settings(max_examples=SCALE // 4, deadline=None)
@given(
    lengths=st.lists(st.sampled_from([0, 10, FRAME_STEP - 7, FRAME_STEP, 3 * FRAME_STEP + 5]), min_size=1, max_size=4),
    data=st.data(),
)
def test_memory_never_runs_more_than_a_step_ahead_of_the_bytes(lengths: list[int], data: st.DataObject) -> None:
    """After every feed(), whatever the splits: reserved <= received + FRAME_STEP."""
    buffer = SpyBuffer()
    decoder = Decoder(buffer)
    stream = memoryview(b"".join(wire(0, 1, bytes(n)) for n in lengths))
    frames: list[Frame] = []
    pos = 0
    try:
        while pos < len(stream):
            n = data.draw(st.integers(1, 2 * FRAME_STEP), label="chunk")
            frames += decoder.feed(stream[pos : pos + n])
            pos += n
            in_frame = sum(buffer.reserved) - sum(len(f) for f in frames)
            assert in_frame <= decoder.pending + FRAME_STEP, (in_frame, decoder.pending)
        assert [6 + n for n in lengths] == [len(f) for f in frames]
    finally:
        for f in frames:
            f.release()


def test_small_frames_are_reserved_whole() -> None:
    buffer = SpyBuffer()
    decoder = Decoder(buffer)
    for frame in decoder.feed(wire(0, 1, bytes(FRAME_STEP - 6)) + wire(0, 2, b"hi")):
        frame.release()
    assert [FRAME_STEP, 8] == buffer.reserved


def test_feed_reserves_what_it_was_given_in_one_step() -> None:
    buffer = SpyBuffer()
    decoder = Decoder(buffer)
    [frame] = decoder.feed(wire(0, 1, bytes(3 * FRAME_STEP)))
    frame.release()
    assert [6 + 3 * FRAME_STEP] == buffer.reserved


def test_decoder_and_encoder_need_a_buffer() -> None:
    message = r"^buffer must be an Sv2 Buffer \(get_writable, get_data_owned, get_data_by_ref, __len__\), got bytearray "
    with pytest.raises(TypeError, match=message):
        Decoder(bytearray(10))  # type: ignore[arg-type]  # the point of the test
    with pytest.raises(TypeError, match=message):
        Encoder(bytearray(10))  # type: ignore[arg-type]  # the point of the test


def test_feed_accepts_any_bytes_like() -> None:
    decoder = Decoder(BufferFromSystemMemory())
    data = bytearray(wire(0, 1, b"abcd"))
    [frame] = decoder.feed(memoryview(data).cast("B", (2, 5)))
    assert b"abcd" == bytes(frame.payload)
    frame.release()
    strided = memoryview(bytes(b for b in wire(0, 2, b"xy") for b in (b, 0)))[::2]
    [frame] = decoder.feed(strided)  # once a BufferError from struct
    assert (2, b"xy") == (frame.msg_type, bytes(frame.payload))
    frame.release()
    assert [] == decoder.feed(memoryview(bytes(12))[::2][:5])  # half a header, strided
    with pytest.raises(TypeError, match=r"^data must be a bytes-like object, got str 'text'$"):
        decoder.feed("text")  # type: ignore[arg-type]  # the point of the test
    assert 5 == decoder.pending, "a refused input changes nothing"


@pytest.mark.parametrize("make_buffer", BUFFERS.values(), ids=BUFFERS.keys())
def test_encoder_output_decodes(make_buffer: Callable[[], Buffer]) -> None:
    encoder = Encoder(make_buffer())
    decoder = Decoder(make_buffer())
    out: list[Frame] = []
    for size in (0, 4, 64, 1024, 16384):
        with encoder.encode(size % 256, bytes(size), extension_type=size % 0x7FFF, channel_msg=size >= 4) as data:
            out += decoder.feed(data.view)
    assert [(s % 0x7FFF, s % 256, s >= 4, bytes(s)) for s in (0, 4, 64, 1024, 16384)] == [summary(f) for f in out]
    assert HEADER_LEN + 16384 == len(out[-1])
    for f in out:
        f.release()
