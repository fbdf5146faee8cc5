"""Unit tests for `ByteBuffer`: filling, reading, views that die with `reset()`, errors."""

from __future__ import annotations

import copy
import io
import pickle
import socket
from array import array

import pytest
from hypothesis import given
from hypothesis import strategies as st

from objpool import BufferFullError, ByteBuffer, Pool, PoolError


def test_new_buffer_is_empty_with_fixed_capacity() -> None:
    buf = ByteBuffer(8)
    assert (len(buf), buf.capacity, buf.free) == (0, 8, 8)
    assert bytes(buf) == b""
    assert repr(buf) == "<ByteBuffer 0/8 bytes>"


@pytest.mark.parametrize(
    ("capacity", "error", "message"),
    [
        (-1, ValueError, r"^capacity must be >= 0, got int -1$"),
        (1.5, TypeError, r"^capacity must be an int, got float 1\.5$"),
        (False, TypeError, r"^capacity must be an int, got bool False$"),
    ],
)
def test_bad_capacity_is_refused(capacity: object, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        ByteBuffer(capacity)  # type: ignore[arg-type]  # the point of the test


def test_write_appends_and_returns_length() -> None:
    buf = ByteBuffer(8)
    assert buf.write(b"abc") == 3
    assert buf.write(bytearray(b"de")) == 2
    assert buf.write(memoryview(b"xfy")[1:2]) == 1
    assert bytes(buf) == b"abcdef"
    assert buf.free == 2


def test_write_takes_any_buffer_as_bytes() -> None:
    buf = ByteBuffer(16)
    assert buf.write(array("H", [1, 2])) == 4
    assert bytes(buf) == array("H", [1, 2]).tobytes()


def test_write_too_much_writes_nothing() -> None:
    buf = ByteBuffer(4)
    buf.write(b"ab")
    with pytest.raises(BufferFullError, match=r"^cannot write 3 bytes: <ByteBuffer 2/4 bytes> has 2 free$"):
        buf.write(b"xyz")
    assert bytes(buf) == b"ab"
    assert issubclass(BufferFullError, PoolError) and issubclass(BufferFullError, ValueError)


def test_reserve_returns_exactly_the_new_bytes() -> None:
    buf = ByteBuffer(8)
    buf.write(b"ab")
    view = buf.reserve(3)
    assert (len(view), len(buf)) == (3, 5)
    view[:] = b"cde"
    assert bytes(buf) == b"abcde"
    with pytest.raises(BufferFullError, match=r"^cannot reserve 4 bytes"):
        buf.reserve(4)
    with pytest.raises(ValueError, match=r"^n must be >= 0, got int -1$"):
        buf.reserve(-1)
    with pytest.raises(TypeError, match=r"^n must be an int, got str '2'$"):
        buf.reserve("2")  # type: ignore[arg-type]  # the point of the test
    assert len(buf) == 5


def test_writable_then_commit() -> None:
    buf = ByteBuffer(6)
    free = buf.writable()
    assert len(free) == 6
    free[:4] = b"wxyz"
    buf.commit(4)
    assert bytes(buf) == b"wxyz"
    with pytest.raises(BufferFullError, match=r"^cannot commit 3 bytes"):
        buf.commit(3)
    assert len(buf) == 4


def test_view_reads_and_writes_the_filled_bytes() -> None:
    buf = ByteBuffer(8)
    buf.write(b"hello")
    view = buf.view()
    assert view.tobytes() == b"hello"
    view[0:1] = b"j"
    assert bytes(buf) == b"jello"


def test_reset_keeps_memory_and_empties() -> None:
    buf = ByteBuffer(8)
    buf.write(b"12345678")
    memory_before = buf.view().obj
    buf.reset()
    assert (len(buf), buf.free) == (0, 8)
    assert buf.view().obj is memory_before  # same memory, not reallocated
    assert (8, 8) == (buf.capacity, len(memory_before))  # type: ignore[arg-type]  # a bytearray


def test_reset_releases_every_view_it_handed_out() -> None:
    buf = ByteBuffer(8)
    buf.write(b"abc")
    views = [buf.view(), buf.reserve(2), buf.writable()]
    buf.reset()
    for view in views:
        with pytest.raises(ValueError, match="released memoryview"):
            view.tobytes()


def test_views_you_derive_yourself_survive_reset_as_documented() -> None:
    buf = ByteBuffer(8)
    buf.write(b"secret")
    derived = buf.view()[0:6]
    buf.reset()
    buf.write(b"public")
    assert derived.tobytes() == b"public"  # the documented hazard: drop derived views first
    derived.release()


def test_zero_on_reset_wipes_written_and_exposed_bytes() -> None:
    buf = ByteBuffer(8, zero_on_reset=True)
    assert buf.zero_on_reset
    buf.write(b"abc")
    scratch = buf.writable()
    scratch[:] = b"ZZZZZ"  # written but never committed: must be wiped too
    buf.reset()
    buf.commit(8)  # expose every byte again: what the next user could read
    assert bytes(buf) == bytes(8)
    plain = ByteBuffer(4)
    plain.write(b"abcd")
    plain.reset()
    plain.commit(4)
    assert bytes(plain) == b"abcd"  # without zeroing, the previous user's bytes stay


def test_zero_on_reset_wipes_bytes_written_through_a_committed_view() -> None:
    """D1: commit() then view() exposed bytes that reset() did not wipe."""
    buf = ByteBuffer(8, zero_on_reset=True)
    buf.commit(8)
    buf.view()[:] = b"SECRET!!"
    buf.reset()
    buf.commit(8)
    assert bytes(buf) == bytes(8)


def test_zero_on_reset_wipes_what_a_source_wrote_past_its_count() -> None:
    """D2: the source was handed all the free space; all of it is dirty."""

    class Oversharing:
        def readinto(self, buffer: memoryview, /) -> int:
            buffer[:] = b"S" * len(buffer)
            return 2

    buf = ByteBuffer(8, zero_on_reset=True)
    assert 2 == buf.readinto(Oversharing())
    buf.reset()
    buf.commit(8)
    assert bytes(buf) == bytes(8)


class Returns:
    """A source that writes nothing and returns whatever it was told to."""

    def __init__(self, result: object) -> None:
        self.result = result

    def readinto(self, buffer: memoryview, /) -> object:
        return self.result

    def __repr__(self) -> str:
        return "<source>"


@pytest.mark.parametrize(
    ("result", "error", "message"),
    [
        (100, OSError, r"^<source> returned 100 from readinto\(\), outside 0\.\.6 \(the space it was given\)$"),
        (-1, OSError, r"^<source> returned -1 from readinto\(\), outside 0\.\.6"),
        (2.0, TypeError, r"^<source> returned float 2\.0 from readinto\(\), not an int$"),
        (True, TypeError, r"^<source> returned bool True from readinto\(\), not an int$"),
        ("2", TypeError, r"^<source> returned str '2' from readinto\(\), not an int$"),
    ],
)
def test_readinto_refuses_a_count_outside_the_space_it_gave(result: object, error: type[Exception], message: str) -> None:
    """D3: a source returning 100 into 8 free bytes once left len 100 and free -92."""
    buf = ByteBuffer(8)
    buf.write(b"ab")
    with pytest.raises(error, match=message):
        buf.readinto(Returns(result))  # type: ignore[arg-type]  # a broken source on purpose
    assert (2, 6, b"ab") == (len(buf), buf.free, bytes(buf)), "the buffer is unchanged"
    buf.reset()  # and still resets
    assert 0 == len(buf)


def test_readinto_takes_int_subclasses_as_counts() -> None:
    import enum

    class Count(enum.IntEnum):
        THREE = 3

    buf = ByteBuffer(8)
    assert 3 == buf.readinto(Returns(Count.THREE))  # type: ignore[arg-type]  # returns an IntEnum
    assert 3 == len(buf)


def test_write_takes_any_bytes_like_object_even_an_empty_2d_one() -> None:
    """D8: an empty 2-D buffer once raised TypeError from memoryview.cast."""
    import array
    import ctypes

    buf = ByteBuffer(16)
    assert 0 == buf.write(memoryview((ctypes.c_uint8 * 4 * 0)()))  # shape (0, 4)
    assert 4 == buf.write(array.array("H", [0x4241, 0x4443]))
    assert 3 == buf.write(memoryview(b"x-y-z-")[::2])  # strided: copied
    assert 4 == buf.write(memoryview(bytearray(b"wxyz")).cast("B", (2, 2)))
    assert b"ABCDxyzwxyz" == bytes(buf)
    with pytest.raises(TypeError, match=r"^data must be a bytes-like object, got int 5$"):
        buf.write(5)  # type: ignore[arg-type]  # the point of the test
    assert 11 == len(buf)


def test_readinto_from_files() -> None:
    buf = ByteBuffer(4)
    source = io.BytesIO(b"abcdef")
    assert buf.readinto(source) == 4
    assert bytes(buf) == b"abcd"
    with pytest.raises(BufferFullError, match=r"^cannot read: <ByteBuffer 4/4 bytes> is full$"):
        buf.readinto(source)
    buf.reset()
    assert buf.readinto(source) == 2
    assert buf.readinto(source) == 0  # end of file
    assert bytes(buf) == b"ef"


def test_readinto_from_a_socket() -> None:
    left, right = socket.socketpair()
    with left, right:
        left.sendall(b"ping")
        buf = ByteBuffer(16)
        assert buf.readinto(right) == 4
        assert bytes(buf) == b"ping"


def test_readinto_nonblocking_without_data_raises() -> None:
    class NoData:
        def readinto(self, buffer: memoryview, /) -> int | None:
            return None

    buf = ByteBuffer(4)
    with pytest.raises(BlockingIOError):
        buf.readinto(NoData())
    assert len(buf) == 0


def test_readinto_refuses_non_sources() -> None:
    with pytest.raises(TypeError, match=r"^source must be a binary file or a socket \(readinto\(\) or recv_into\(\)\), got bytes b'data'$"):
        ByteBuffer(4).readinto(b"data")  # type: ignore[arg-type]  # the point of the test


def test_cannot_be_copied_or_pickled() -> None:
    buf = ByteBuffer(4)
    for attempt in (copy.copy, copy.deepcopy, pickle.dumps):
        with pytest.raises(TypeError, match=r"^ByteBuffer cannot be"):
            attempt(buf)


def test_pooled_byte_buffers_come_back_empty() -> None:
    pool = Pool(lambda: ByteBuffer(64), 2)
    with pool.allocate() as buf:
        buf.write(b"first user's data")
        first = buf
    with pool.allocate() as buf:
        assert buf is first
        assert len(buf) == 0


@given(st.lists(st.binary(max_size=20), max_size=20), st.integers(0, 64))
def test_writes_concatenate_until_full(chunks: list[bytes], capacity: int) -> None:
    buf = ByteBuffer(capacity)
    expected = b""
    for chunk in chunks:
        if len(expected) + len(chunk) <= capacity:
            assert buf.write(chunk) == len(chunk)
            expected += chunk
        else:
            with pytest.raises(BufferFullError):
                buf.write(chunk)
        assert bytes(buf) == expected
        assert len(buf) + buf.free == capacity


# -- ByteBuffer on memory of your own --------------------------------------------------------


def test_a_buffer_on_given_memory_writes_into_that_memory() -> None:
    memory = bytearray(8)
    buf = ByteBuffer(8, memory=memory)
    buf.write(b"abc")
    assert (b"abc", b"abc\0\0\0\0\0", 8) == (bytes(buf), bytes(memory), buf.capacity)
    buf.reset()
    assert (0, b"abc") == (len(buf), bytes(memory[:3])), "reset keeps the bytes, as on its own memory"


def test_a_buffer_on_an_mmap_keeps_every_guarantee() -> None:
    import mmap

    block = mmap.mmap(-1, 4096)
    buf = ByteBuffer(4096, zero_on_reset=True, memory=block)
    assert 4096 == buf.readinto(io.BytesIO(b"x" * 5000))
    view = buf.view()
    with pytest.raises(BufferError):
        block.close()  # exported while the buffer lives: it cannot go away under the buffer
    buf.reset()
    with pytest.raises(ValueError):
        bytes(view)  # released by reset(), as ever
    assert bytes(4096) == block[:], "zero_on_reset wiped the mmap"
    del buf, view
    block.close()


def test_memory_of_another_item_size_is_taken_as_bytes() -> None:
    import array

    memory = array.array("i", [0, 0])
    buf = ByteBuffer(memory.itemsize * 2, memory=memory)
    buf.write(b"\x01\x00\x00\x00")
    assert 1 == memory[0]


@pytest.mark.parametrize(
    ("memory", "error", "message"),
    [
        (b"12345678", TypeError, r"^memory must be a writable buffer \(a bytearray, an mmap\.\.\.\), got bytes b'12345678'$"),
        (5, TypeError, r"^memory must be a writable buffer \(a bytearray, an mmap\.\.\.\), got int 5$"),
        (bytearray(7), ValueError, r"^memory must be 8 bytes \(the capacity\), got 7$"),
        (memoryview(bytearray(16))[::2], ValueError, r"^memory must be C-contiguous, got memoryview"),
    ],
)
def test_memory_that_cannot_hold_the_buffer_is_refused(memory: object, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        ByteBuffer(8, memory=memory)  # type: ignore[arg-type]  # deliberately bad
