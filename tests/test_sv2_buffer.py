"""BufferFromSystemMemory: the Sv2 Buffer contract on fresh memory, and argument errors."""

from __future__ import annotations

import pytest

from objpool.sv2 import MAX_SIZE, Buffer, BufferFromSystemMemory
from held import take_bytes


def fill(view: memoryview, byte: int) -> None:
    view[:] = bytes([byte]) * len(view)


def test_header_then_payload_is_one_contiguous_slice() -> None:
    buf = BufferFromSystemMemory()
    fill(buf.get_writable(6), 1)
    assert len(buf) == 6
    fill(buf.get_writable(10), 2)
    assert len(buf) == 16
    with buf.get_data_owned() as s:
        assert bytes(s) == b"\x01" * 6 + b"\x02" * 10
        assert (s.index, s.from_pool, len(s), len(buf)) == (None, False, 16, 0)


def test_a_message_s_memory_is_sized_by_the_message_alone() -> None:
    """A 7-byte frame after a 1 MiB one once pinned 1 MiB: the size of the previous message."""
    buf = BufferFromSystemMemory(1 << 20)
    buf.write(bytes(1 << 20))
    with buf.get_data_owned() as big:
        assert len(big.view.obj) == 1 << 20  # type: ignore[arg-type]  # obj is the bytearray
    buf.write(b"7 bytes")
    with buf.get_data_owned() as small:
        assert 7 <= len(small.view.obj) <= 64  # type: ignore[arg-type]  # obj is the bytearray
    for n in (1, 100, 4096, 100_000):  # grown chunk by chunk: under twice the message
        for _ in range(n // 10):
            buf.write(b"0123456789")
        buf.write(bytes(n % 10))
        with buf.get_data_owned() as s:
            assert len(s) == n
            assert len(s.view.obj) < 2 * n + 64  # type: ignore[arg-type]  # obj is the bytearray


def test_each_slice_is_fresh_memory() -> None:
    buf = BufferFromSystemMemory()
    slices = []
    for i in range(50):
        for _ in range(i % 7 + 1):
            fill(buf.get_writable(10), i)
        slices.append(buf.get_data_owned())
    for i, s in enumerate(slices):
        assert bytes(s) == bytes([i]) * (10 * (i % 7 + 1))
    for s in slices:
        s.release()
    assert buf.is_droppable()


def test_growth_keeps_pending_bytes() -> None:
    buf = BufferFromSystemMemory()
    expected = bytearray()
    for i in range(200):
        view = buf.get_writable(i % 13)
        fill(view, i % 256)
        expected += bytes([i % 256]) * (i % 13)
    assert bytes(buf.get_data_by_ref(MAX_SIZE)) == bytes(expected)
    with buf.get_data_owned() as s:
        assert bytes(s) == bytes(expected)


def test_previous_view_is_released_by_next_call() -> None:
    buf = BufferFromSystemMemory()
    first = buf.get_writable(4)
    buf.get_writable(4)
    with pytest.raises(ValueError, match="released memoryview"):
        first[0] = 1
    by_ref = buf.get_data_by_ref(8)
    buf.get_data_owned().release()
    with pytest.raises(ValueError, match="released memoryview"):
        by_ref[0]


def test_get_data_by_ref_honours_n() -> None:
    buf = BufferFromSystemMemory()
    buf.write(b"Ciao, mundo!")
    assert bytes(buf.get_data_by_ref(4)) == b"Ciao"
    assert bytes(buf.get_data_by_ref(100)) == b"Ciao, mundo!"
    assert len(buf) == 12


def test_empty_take() -> None:
    buf = BufferFromSystemMemory()
    with buf.get_data_owned() as s:
        assert (len(s), bytes(s), s.index, s.from_pool) == (0, b"", None, False)


def test_write_and_write_all() -> None:
    buf: Buffer = BufferFromSystemMemory()
    assert buf.write(b"ab") == 2
    buf.write_all(bytearray(b"cd"))
    buf.write(memoryview(b"efgh").cast("c"))
    with buf.get_data_owned() as s:
        assert bytes(s) == b"abcdefgh"


def test_write_takes_strided_bytes_and_refuses_text_without_change() -> None:
    buf = BufferFromSystemMemory()
    buf.write(b"ab")
    buf.write(memoryview(b"xyz!")[::2])
    with pytest.raises(TypeError, match=r"^data must be a bytes-like object, got str 'text'$"):
        buf.write("text")  # type: ignore[arg-type]  # the point of the test
    with buf.get_data_owned() as s:
        assert bytes(s) == b"abxz"


def test_danger_set_start_is_reset_by_get_data_owned() -> None:
    buf = BufferFromSystemMemory()
    buf.write(b"abc")
    buf.danger_set_start(2)
    assert buf.start == 2
    buf.get_data_owned().release()
    assert buf.start == 0


@pytest.mark.parametrize(
    ("n", "error", "message"),
    [
        (-1, ValueError, rf"^n must be in 0\.\.{MAX_SIZE}, got int -1$"),
        (MAX_SIZE + 1, ValueError, rf"^n must be in 0\.\.{MAX_SIZE}, got int {MAX_SIZE + 1}$"),
        (True, TypeError, r"^n must be an int, got bool True$"),
        (1.0, TypeError, r"^n must be an int, got float 1\.0$"),
        ("3", TypeError, r"^n must be an int, got str '3'$"),
    ],
)
def test_bad_sizes_fail_clean(n: object, error: type[Exception], message: str) -> None:
    buf = BufferFromSystemMemory()
    buf.write(b"xyz")
    with pytest.raises(error, match=message):
        buf.get_writable(n)  # type: ignore[arg-type]  # the point of the test
    with pytest.raises(error, match=message):
        buf.get_data_by_ref(n)  # type: ignore[arg-type]  # the point of the test
    assert take_bytes(buf) == b"xyz"


def test_bad_start_and_capacity() -> None:
    buf = BufferFromSystemMemory()
    with pytest.raises(ValueError, match=rf"^i must be in 0\.\.{MAX_SIZE}, got int -2$"):
        buf.danger_set_start(-2)
    with pytest.raises(ValueError, match=rf"^capacity must be in 0\.\.{MAX_SIZE}, got int -1$"):
        BufferFromSystemMemory(-1)
    with pytest.raises(ValueError, match=rf"^capacity must be in 0\.\.{MAX_SIZE}, got int {2**40}$"):
        BufferFromSystemMemory(2**40)
    with pytest.raises(TypeError, match=r"^capacity must be an int, got NoneType None$"):
        BufferFromSystemMemory(None)  # type: ignore[arg-type]  # the point of the test


def test_int_subclass_sizes_are_accepted() -> None:
    import enum

    class Size(enum.IntEnum):
        HEADER = 6

    buf = BufferFromSystemMemory(16)
    assert len(buf.get_writable(Size.HEADER)) == 6
    assert buf.is_droppable()
    assert repr(buf) == "<BufferFromSystemMemory pending=6>"
