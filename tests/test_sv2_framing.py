"""Sv2 `Header` and `Frame`: the wire layout, the channel flag, ownership of the slice."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from objpool import FrameError, StaleRefError
from objpool.sv2 import (
    CHANNEL_MSG_FLAG,
    HEADER_LEN,
    MAX_MSG_LENGTH,
    BufferFromSystemMemory,
    BufferPool,
    Encoder,
    Frame,
    Header,
    Slice,
)


def test_known_vector() -> None:
    """codec_sv2's unit vector: 01 02 03 04 05 06."""
    header = Header.from_bytes(bytes([1, 2, 3, 4, 5, 6]))
    assert Header(0x0201, 0x03, 0x060504) == header
    assert header.channel_msg is False
    assert bytes([1, 2, 3, 4, 5, 6]) == header.to_bytes()


def test_channel_flag_is_bit_15_of_extension_type() -> None:
    header = Header.from_bytes(bytes([0x01, 0x80, 0x07, 0x04, 0x00, 0x00]))
    assert Header(0x0001, 0x07, 4, channel_msg=True) == header
    assert 0x8001 == header.raw_extension_type
    assert bytes([0x01, 0x80, 0x07, 0x04, 0x00, 0x00]) == header.to_bytes()


headers = st.builds(
    Header,
    st.integers(0, 0x7FFF),
    st.integers(0, 0xFF),
    st.integers(0, MAX_MSG_LENGTH),
    st.booleans(),
)


@settings(deadline=None)
@given(headers)
def test_header_round_trips(header: Header) -> None:
    wire = header.to_bytes()
    assert HEADER_LEN == len(wire)
    assert header == Header.from_bytes(wire)
    into = bytearray(10)
    header.pack_into(into, 2)
    assert wire == into[2:8]


@settings(deadline=None)
@given(st.binary(min_size=6, max_size=6))
def test_any_six_bytes_are_a_header(wire: bytes) -> None:
    assert wire == Header.from_bytes(wire).to_bytes()


def test_header_from_short_bytes() -> None:
    with pytest.raises(FrameError, match=r"^a header needs 6 bytes, got 5$") as info:
        Header.from_bytes(b"12345")
    assert 0 == info.value.offset


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"extension_type": 0x8000}, r"^extension_type must be in 0\.\.0x7fff, got int 32768$"),
        ({"msg_type": 256}, r"^msg_type must be in 0\.\.0xff, got int 256$"),
        ({"msg_length": -1}, r"^msg_length must be in 0\.\.0xffffff, got int -1$"),
        ({"msg_length": MAX_MSG_LENGTH + 1}, r"^msg_length must be in 0\.\.0xffffff, got int 16777216$"),
    ],
)
def test_header_rejects_out_of_range_fields(kwargs: dict[str, int], message: str) -> None:
    fields = {"extension_type": 0, "msg_type": 0, "msg_length": 0} | kwargs
    with pytest.raises(ValueError, match=message):
        Header(fields["extension_type"], fields["msg_type"], fields["msg_length"])


def test_header_rejects_non_ints() -> None:
    with pytest.raises(TypeError, match=r"^msg_type must be an int, got bool True$"):
        Header(0, True, 0)
    with pytest.raises(TypeError, match=r"^channel_msg must be a bool, got int 1$"):
        Header(0, 0, 0, 1)  # type: ignore[arg-type]  # testing the runtime check


def _wire(raw_ext: int, msg_type: int, payload: bytes) -> bytes:
    return raw_ext.to_bytes(2, "little") + bytes([msg_type]) + len(payload).to_bytes(3, "little") + payload


def test_frame_fields_and_views_share_one_slice() -> None:
    data = Slice(_wire(0x8000 | 0x0123, 0x42, b"\x01\x02\x03\x04rest"))
    frame = Frame(data)
    assert frame.data is data
    assert (0x0123, True, 0x42, 8) == (frame.extension_type, frame.channel_msg, frame.msg_type, frame.msg_length)
    assert 0x04030201 == frame.channel_id
    assert b"\x01\x02\x03\x04rest" == bytes(frame.payload)
    assert Header(0x0123, 0x42, 8, channel_msg=True) == frame.header
    assert 14 == len(frame)
    frame.payload[4] = ord("R")  # a view, not a copy
    assert bytes(data)[10:] == b"Rest" == bytes(frame)[10:]
    assert "<Frame ext=0x0123 type=0x42 len=8, channel_id=67305985>" == repr(frame)
    frame.release()


def test_frame_without_channel_flag_has_no_channel_id() -> None:
    with Frame(Slice(_wire(0x0001, 2, b"\x01\x02\x03\x04"))) as frame:
        assert frame.channel_msg is False
        assert frame.channel_id is None


def test_views_a_frame_handed_out_die_with_it() -> None:
    """A payload kept past release() raises instead of reading the next frame's bytes."""
    buffer = BufferPool(64)
    encoder = Encoder(buffer)
    first = encoder.encode_frame(1, b"first!")
    payload, whole, part = first.payload, first.view, first.data[6:9]
    assert (b"first!", b"fir") == (bytes(payload), bytes(part))
    first.release()
    second = encoder.encode_frame(2, b"second")  # reuses the same pool bytes
    assert 1 == first.data.index == second.data.index, "the next frame got the released memory"
    for stale in (payload, whole, part):
        with pytest.raises(ValueError, match=r"released memoryview"):
            bytes(stale)
    second.release()


def test_releasing_the_frame_releases_its_slice() -> None:
    data = Slice(_wire(0, 1, b"abc"))
    with Frame(data) as frame:
        assert frame.alive
    assert not data.alive
    assert not frame.alive
    frame.release()  # idempotent, like Slice.release()
    assert 1 == frame.msg_type  # header fields stay readable
    with pytest.raises(StaleRefError):
        frame.payload
    with pytest.raises(StaleRefError):
        bytes(frame)
    assert "<Frame ext=0x0000 type=0x01 len=3, released>" == repr(frame)


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        (b"\x00\x00\x01\x00\x00", r"^a frame needs at least 6 bytes, got 5$"),
        (_wire(0, 1, b"abc") + b"x", r"^header announces msg_length 3, but 4 bytes follow it$"),
        (_wire(0, 1, b"abc")[:-1], r"^header announces msg_length 3, but 2 bytes follow it$"),
        (_wire(CHANNEL_MSG_FLAG, 1, b"abc"), r"^channel message needs a 4-byte channel id, msg_length is 3$"),
    ],
)
def test_frame_rejects_a_slice_that_is_not_one_frame(wire: bytes, message: str) -> None:
    data = Slice(wire)
    with pytest.raises(FrameError, match=message) as info:
        Frame(data)
    assert 0 == info.value.offset
    assert data.alive, "a rejected slice stays with the caller"
    data.release()


def test_frame_takes_only_a_live_slice() -> None:
    with pytest.raises(TypeError, match=r"^data must be a Slice, got bytes b'"):
        Frame(_wire(0, 1, b"abc"))  # type: ignore[arg-type]  # the point of the test
    data = Slice(_wire(0, 1, b"abc"))
    data.release()
    with pytest.raises(StaleRefError):
        Frame(data)


def test_encoder_writes_header_and_payload_into_one_slice() -> None:
    encoder = Encoder(BufferFromSystemMemory())
    with encoder.encode(0x03, b"\x09\x00\x00\x00hi", extension_type=0x0201, channel_msg=True) as data:
        assert _wire(0x8201, 0x03, b"\x09\x00\x00\x00hi") == bytes(data)
    with encoder.encode_frame(0x05, memoryview(b"xyz")) as frame:
        assert (0, False, 5, b"xyz") == (frame.extension_type, frame.channel_msg, frame.msg_type, bytes(frame.payload))
    assert 0 == len(encoder.buffer)


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "message"),
    [
        ((256, b""), {}, ValueError, r"^msg_type must be in 0\.\.0xff, got int 256$"),
        ((0, b""), {"extension_type": 0x8000}, ValueError, r"^extension_type must be in 0\.\.0x7fff, got int 32768$"),
        (
            (0, b"abc"),
            {"channel_msg": True},
            ValueError,
            r"^a channel message payload must start with a 4-byte channel id, got 3 bytes$",
        ),
        ((0, "text"), {}, TypeError, r"^payload must be a bytes-like object, got str 'text'$"),
    ],
)
def test_encoder_rejects_bad_fields_and_writes_nothing(
    args: tuple[object, ...], kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    encoder = Encoder(BufferFromSystemMemory())
    with pytest.raises(error, match=message):
        encoder.encode(*args, **kwargs)  # type: ignore[arg-type]  # deliberately bad arguments
    assert 0 == len(encoder.buffer)


def test_encoder_rejects_oversize_payload_before_writing() -> None:
    encoder = Encoder(BufferFromSystemMemory())
    big = memoryview(bytearray(MAX_MSG_LENGTH + 1))
    with pytest.raises(ValueError, match=re.escape(f"payload length must be <= {MAX_MSG_LENGTH}, got {MAX_MSG_LENGTH + 1}")):
        encoder.encode(0, big)
    assert 0 == len(encoder.buffer)
