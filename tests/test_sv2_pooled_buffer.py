"""PooledBuffer: Sv2 buffers on a Pool[ByteBuffer]; units and a state machine with a model."""

from __future__ import annotations

import gc
import threading

import pytest
from hypothesis import note, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from objpool import ByteBuffer, Pool
from objpool.sv2 import MAX_SIZE, Buffer, PooledBuffer, Slice
from held import take_bytes


def make(buffers: int = 2, size: int = 16) -> tuple[Pool[ByteBuffer], PooledBuffer]:
    pool = Pool(lambda: ByteBuffer(size), buffers)
    return pool, PooledBuffer(pool)


def test_message_in_one_bytebuffer_goes_back_on_release() -> None:
    pool, buf = make()
    buf.get_writable(6)[:] = b"header"
    buf.get_writable(4)[:] = b"body"
    assert len(buf) == 10
    assert bytes(buf.get_data_by_ref(6)) == b"header"
    assert bytes(buf.get_data_by_ref(100)) == b"headerbody"
    assert pool.lent == 1
    s = buf.get_data_owned()
    assert (bytes(s), s.index, s.from_pool, len(buf)) == (b"headerbody", None, True, 0)
    assert (buf.pooled_slices, buf.system_slices) == (1, 0)
    s.release()
    assert pool.lent == 0


class CountingByteBuffer(ByteBuffer):
    """A ByteBuffer subclass: the compiled PooledBuffer must take its Python path for it."""

    commits = 0  # per instance once counted: tests may run in parallel threads

    def commit(self, n: int) -> None:
        self.commits += 1
        super().commit(n)


def test_pooled_objects_of_a_bytebuffer_subclass_work_through_their_own_methods() -> None:
    only = CountingByteBuffer(16)
    pool: Pool[ByteBuffer] = Pool.from_items([only])
    buf = PooledBuffer(pool)
    buf.get_writable(5)[:] = b"hello"
    with buf.get_data_owned() as s:
        assert (bytes(s), s.from_pool, pool.lent) == (b"hello", True, 1)
    assert (only.commits, pool.lent, pool.free) == (1, 0, 1)


def test_no_slot_limit_and_fallback_when_pool_is_exhausted() -> None:
    pool, buf = make(buffers=10)
    slices = []
    for i in range(12):
        buf.write(bytes([i]) * 3)
        slices.append(buf.get_data_owned())
    assert [s.from_pool for s in slices] == [True] * 10 + [False] * 2
    assert (buf.pooled_slices, buf.system_slices, pool.lent) == (10, 2, 10)
    assert [bytes(s) for s in slices] == [bytes([i]) * 3 for i in range(12)]
    slices[0].release()
    buf.write(b"again")
    with buf.get_data_owned() as s:
        assert s.from_pool and bytes(s) == b"again"
    for s in slices:
        s.release()
    assert pool.lent == 0


def test_message_outgrowing_a_bytebuffer_moves_to_system_memory() -> None:
    pool, buf = make(size=8)
    buf.get_writable(6)[:] = b"abcdef"
    assert pool.lent == 1
    buf.get_writable(5)[:] = b"ghijk"  # 11 > 8: copied out, ByteBuffer returned at once
    assert pool.lent == 0 and len(buf) == 11
    assert bytes(buf.get_data_by_ref(3)) == b"abc"
    with buf.get_data_owned() as s:
        assert (bytes(s), s.from_pool, buf.system_slices) == (b"abcdefghijk", False, 1)
    buf.write(b"small")
    with buf.get_data_owned() as s:
        assert s.from_pool  # the next message is pooled again


def test_closed_pool_falls_back_to_system_memory() -> None:
    pool, buf = make()
    pool.close()
    buf.write(b"abc")
    with buf.get_data_owned() as s:
        assert (bytes(s), s.from_pool) == (b"abc", False)


def test_empty_take_holds_no_bytebuffer() -> None:
    pool, buf = make()
    with buf.get_data_owned() as s:
        assert len(s) == 0
    buf.get_writable(0)
    assert pool.lent == 1
    with buf.get_data_owned() as s:
        assert (len(s), s.from_pool, pool.lent) == (0, False, 0)
    buf.write(b"x")
    assert take_bytes(buf) == b"x"
    assert (buf.pooled_slices, buf.system_slices) == (1, 0)


def test_views_are_released_by_the_next_call() -> None:
    _, buf = make()
    w = buf.get_writable(3)
    buf.get_writable(3)
    with pytest.raises(ValueError, match="released memoryview"):
        w[0] = 1


def test_garbage_collected_slice_and_buffer_give_bytebuffers_back() -> None:
    pool, buf = make()
    buf.write(b"abc")
    with pytest.warns(ResourceWarning, match=r"^<Slice index=None len=3 pool> was garbage-collected while still live"):
        buf.get_data_owned()  # dropped at once: a leak, reported
    assert pool.lent == 0
    buf.write(b"pending")
    assert pool.lent == 1
    del buf
    gc.collect()
    assert pool.lent == 0


def test_release_from_another_thread() -> None:
    pool, buf = make()
    buf.write(b"abc")
    s = buf.get_data_owned()
    t = threading.Thread(target=s.release)
    t.start()
    t.join(timeout=10)
    assert pool.lent == 0 and not s.alive


def test_bad_arguments_fail_clean() -> None:
    _, buf = make()
    buf.write(b"ab")
    with pytest.raises(ValueError, match=rf"^n must be in 0\.\.{MAX_SIZE}, got int -1$"):
        buf.get_writable(-1)
    with pytest.raises(TypeError, match=r"^n must be an int, got bool True$"):
        buf.get_data_by_ref(True)
    with pytest.raises(ValueError, match=rf"^n must be in 0\.\.{MAX_SIZE}, got int {MAX_SIZE + 1}$"):
        buf.get_writable(MAX_SIZE + 1)
    with pytest.raises(ValueError, match=rf"^i must be in 0\.\.{MAX_SIZE}, got int -1$"):
        buf.danger_set_start(-1)
    assert take_bytes(buf) == b"ab"


def test_start_reset_droppable_repr() -> None:
    pool, buf = make()
    b: Buffer = buf
    b.write(b"abc")
    b.danger_set_start(1)
    assert buf.start == 1
    assert b.is_droppable()
    assert repr(buf) == "<PooledBuffer pending=3 pooled_slices=0 system_slices=0 timeout=0.0>"
    b.get_data_owned().release()
    assert buf.start == 0 and buf.pool is pool


def test_pool_must_be_a_pool() -> None:
    with pytest.raises(TypeError, match=r"^pool must be a Pool of ByteBuffers, got list \[\]$"):
        PooledBuffer([])  # type: ignore[arg-type]  # the point of the test


# ---- state machine --------------------------------------------------------------------------


class PooledBufferMachine(RuleBasedStateMachine):
    """Model: the live slices with the bytes each must hold, and where each came from."""

    def __init__(self) -> None:
        super().__init__()
        self.size = 16
        self.pool, self.buf = make(2, self.size)
        self.live: list[tuple[Slice, bytes]] = []
        self.counter = 0
        self.pooled = 0
        self.system = 0

    @initialize(buffers=st.integers(1, 6), size=st.sampled_from([1, 8, 16, 64]))
    def make_buffer(self, buffers: int, size: int) -> None:
        self.size = size
        self.pool, self.buf = make(buffers, size)

    def _data(self, n: int) -> bytes:
        self.counter += 1
        return bytes((self.counter * 7 + i) % 256 for i in range(n))

    def _take(self, data: bytes, expect_pooled: bool) -> None:
        s = self.buf.get_data_owned()
        assert bytes(s) == data and len(s) == len(data)
        assert s.index is None
        if data:
            assert s.from_pool == expect_pooled
            if expect_pooled:
                self.pooled += 1
            else:
                self.system += 1
        self.live.append((s, data))

    @rule(n=st.integers(0, 80))
    def write(self, n: int) -> None:
        data = self._data(n)
        expect = self.pool.free > 0 and n <= self.size
        self.buf.get_writable(n)[:] = data
        self._take(data, expect)

    @rule(header=st.integers(1, 6), payload=st.integers(0, 70))
    def write_header_then_payload(self, header: int, payload: int) -> None:
        data = self._data(header + payload)
        expect = self.pool.free > 0 and header + payload <= self.size
        self.buf.get_writable(header)[:] = data[:header]
        assert bytes(self.buf.get_data_by_ref(header)) == data[:header]
        self.buf.get_writable(payload)[:] = data[header:]
        assert len(self.buf) == len(data)
        self._take(data, expect)

    @precondition(lambda self: self.live)
    @rule()
    def release_oldest(self) -> None:
        self.live.pop(0)[0].release()

    @precondition(lambda self: self.live)
    @rule()
    def release_newest(self) -> None:
        self.live.pop()[0].release()

    @precondition(lambda self: self.live)
    @rule(i=st.integers(0, 1000))
    def release_any(self, i: int) -> None:
        self.live.pop(i % len(self.live))[0].release()

    @precondition(lambda self: self.live)
    @rule(i=st.integers(0, 1000))
    def release_from_another_thread(self, i: int) -> None:
        s, _ = self.live.pop(i % len(self.live))
        t = threading.Thread(target=s.release)
        t.start()
        t.join(timeout=10)
        assert not s.alive

    @invariant()
    def model_holds(self) -> None:
        note(repr(self.buf))
        owners = set()
        for s, data in self.live:
            assert bytes(s) == data, "a live slice lost its bytes"
            if s.from_pool and len(s):
                owner = id(s.view.obj)
                assert owner not in owners, "two live slices share a ByteBuffer"
                owners.add(owner)
        assert self.pool.lent == len(owners)
        assert (self.buf.pooled_slices, self.buf.system_slices) == (self.pooled, self.system)

    def teardown(self) -> None:
        for s, _ in self.live:
            s.release()


# Example counts follow the Hypothesis profile from conftest.py (100 by default).
PooledBufferMachine.TestCase.settings = settings(
    max_examples=settings().max_examples * 3 // 5, stateful_step_count=50, deadline=None
)
TestPooledBuffer = PooledBufferMachine.TestCase
