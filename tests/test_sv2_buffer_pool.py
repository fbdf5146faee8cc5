"""BufferPool: upstream's traces T1-T20, the defects T18/T19/T21/T22 gone, errors, lockstep fuzz.

Traces T1-T22 were recorded by building and running upstream buffer_sv2 3.0.1
(stratum-mining/stratum, sv2/buffer-sv2): `W n` is get_writable(n), fill, get_data_owned,
keeping the slice to the end of the test (Rust's drop at scope end); messages are 5 bytes
and the capacity 40 unless stated. A trace's `Front(back_start, capacity)` is upstream's
internal `PoolFront` state, which no public API shows: those checks read `_f_back_start` and
`_f_capacity`, the only private reads here besides a guard test that corrupts the map.
"""

from __future__ import annotations

import gc
import random
import weakref

import pytest

from objpool import StaleRefError
from objpool.sv2 import MAX_SIZE, POOL_CAPACITY, BufferPool, PoolMode, Slice
from held import hold
from sv2_reference import RefPool
from sv2_twin import Twin, bits_str, pool_offset

BACK, FRONT, ALLOC = PoolMode.BACK, PoolMode.FRONT, PoolMode.ALLOC
SYS = "SYS"


class Driver:
    """Writes tagged messages and checks each slice's bytes when asked."""

    def __init__(self, capacity: int = 40) -> None:
        self.pool = BufferPool(capacity)
        self.expected: dict[int, bytes] = {}
        self.tag = 0

    def w(self, n: int = 5) -> Slice:
        self.tag += 1
        data = bytes([self.tag % 256]) * n
        self.pool.get_writable(n)[:] = data
        s = hold(self.pool.get_data_owned())
        self.expected[id(s)] = data
        return s

    def ws(self, count: int, n: int = 5) -> list[Slice]:
        return [self.w(n) for _ in range(count)]

    @property
    def bits(self) -> str:
        return bits_str(self.pool.slot_bits)

    def intact(self, slices: list[Slice]) -> bool:
        return all(bytes(s) == self.expected[id(s)] for s in slices)


def where(s: Slice) -> int | str:
    if not s.from_pool:
        assert s.index is None
        return SYS
    assert s.index is not None
    return s.index


def offset(d: Driver, s: Slice) -> int | None:
    return pool_offset(d.pool, s.view)


def test_t1_exhaustion() -> None:
    d = Driver()
    held = d.ws(8)
    assert [where(s) for s in held] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert (d.pool.mode, d.bits) == (BACK, "11111111")
    extra = d.ws(2)
    assert [where(s) for s in extra] == [SYS, SYS]
    assert (d.pool.mode, d.bits) == (ALLOC, "11111111")
    assert d.intact(held + extra)


def test_t2_reset_after_all_dropped() -> None:
    d = Driver()
    for s in d.ws(8):
        s.release()
    assert (d.bits, d.pool.mode) == ("--------", BACK)
    s = d.w()
    assert (where(s), d.pool.mode, d.bits, offset(d, s)) == (1, BACK, "1-------", 0)
    assert where(d.w()) == 2


def test_t3_back_front_back() -> None:
    d = Driver()
    held = d.ws(8)
    held[0].release()
    held[1].release()
    assert d.bits == "--111111"
    a = d.w()
    assert (where(a), d.pool.mode, d.bits, offset(d, a)) == (1, FRONT, "1-111111", 0)
    assert d.pool._f_capacity == 10 and d.pool._f_back_start == 2  # Front(2, 10)
    b = d.w()
    assert (where(b), d.pool.mode, d.bits) == (2, FRONT, "11111111")
    held[6].release()
    held[7].release()
    assert d.bits == "111111--"
    c = d.w()
    assert (where(c), d.pool.mode) == (7, BACK)
    e = d.w()
    assert (where(e), d.pool.mode, d.bits) == (8, BACK, "11111111")
    f = d.w()
    assert (where(f), d.pool.mode) == (SYS, ALLOC)
    assert d.intact(held[2:6] + [a, b, c, e, f])


def test_t4_back_front_back_never_uses_system_memory() -> None:
    d = Driver()
    held = d.ws(8)
    for s in held[:3]:
        s.release()
    assert d.bits == "---11111"
    front = d.ws(3)
    assert [where(s) for s in front] == [1, 2, 3]
    assert d.pool.is_front_mode()
    assert (d.pool._f_back_start, d.pool._f_capacity) == (3, 15)
    for s in held[5:]:
        s.release()
    assert d.bits == "11111---"
    back = d.ws(3)
    assert [where(s) for s in back] == [6, 7, 8]
    assert d.pool.is_back_mode()
    assert d.intact(held[3:5] + front + back)


def test_t5_front_full_goes_to_system_memory() -> None:
    d = Driver()
    held = d.ws(8)
    for s in held[:3]:
        s.release()
    front = d.ws(3)
    assert d.bits == "11111111"
    s = d.w()
    assert (where(s), d.pool.mode) == (SYS, ALLOC)
    assert d.intact(held[3:] + front + [s])


def test_t6_back_alloc_back_via_tail_clear() -> None:
    d = Driver()
    held = d.ws(8)
    sys_slices = d.ws(3)
    assert [where(s) for s in sys_slices] == [SYS] * 3
    for s in held[5:]:
        s.release()
    assert d.bits == "11111---"
    again = [d.w() for _ in range(3)]
    assert [where(s) for s in again] == [6, 7, 8]
    assert d.pool.is_back_mode()
    assert d.intact(held[:5] + sys_slices + again)


def test_t7_back_alloc_front() -> None:
    d = Driver()
    held = d.ws(8)
    sys_slices = d.ws(3)
    for s in held[:3]:
        s.release()
    again = d.ws(3)
    assert [where(s) for s in again] == [1, 2, 3]
    assert d.pool.is_front_mode()
    assert (d.pool._f_back_start, d.pool._f_capacity) == (3, 15)
    assert d.intact(held[3:] + sys_slices + again)


def test_t8_exhaustion_example() -> None:
    d = Driver(8)
    a = d.ws(4, 1)
    assert [where(s) for s in a] == [1, 2, 3, 4]
    a[0].release()
    assert d.bits == "-111----"
    b = d.w(1)
    assert (where(b), d.pool.mode) == (5, BACK)
    c = d.ws(3, 1)
    assert [where(s) for s in c] == [6, 7, 8] and d.bits == "-1111111"
    c4 = d.w(1)
    assert (where(c4), d.pool.mode, d.bits) == (1, FRONT, "11111111")
    assert (d.pool._f_back_start, d.pool._f_capacity) == (1, 1)
    e = d.w(1)
    assert (where(e), d.pool.mode) == (SYS, ALLOC)
    assert d.intact(a[1:] + [b] + c + [c4, e])


def test_t9_variable_sizes() -> None:
    d = Driver(32)
    a, b = d.w(5), d.w(16)
    assert (where(a), offset(d, a), where(b), offset(d, b)) == (1, 0, 2, 5)
    c = d.w(63)
    assert (where(c), d.pool.mode) == (SYS, ALLOC)
    assert d.intact([a, b, c])
    for s in (a, b, c):
        s.release()
    e = d.w(2)
    assert (where(e), d.pool.mode, offset(d, e)) == (1, BACK, 0)
    assert where(d.w(2)) == 2


def test_t10_decode_and_drop_loop() -> None:
    d = Driver()
    for _ in range(50):
        s = d.w()
        assert (where(s), offset(d, s), d.pool.mode) == (1, 0, BACK)
        s.release()


def test_t11_sliding_window_of_two() -> None:
    d = Driver()
    prev: Slice | None = None
    seen = []
    for _ in range(40):
        s = d.w()
        seen.append((where(s), d.pool.mode))
        if prev is not None:
            prev.release()
        prev = s
    period: list[tuple[int | str, PoolMode]] = []
    period += [(i, BACK) for i in range(1, 9)]
    period += [(i, FRONT) for i in range(1, 8)]
    period.append((SYS, ALLOC))
    assert seen == (period * 3)[:40]


def test_t11_front_capacity() -> None:
    d = Driver()
    prev = None
    for _ in range(9):
        s = d.w()
        if prev is not None:
            prev.release()
        prev = s
    assert d.pool.is_front_mode()
    assert (d.pool._f_back_start, d.pool._f_capacity) == (7, 35)


def test_t12_bytes_exhausted_with_slots_free() -> None:
    d = Driver(10)
    a = d.w(6)
    b = d.w(6)
    assert (where(a), where(b), d.pool.mode) == (1, SYS, ALLOC)
    c = d.w(2)
    assert where(c) == SYS
    for s in (a, b, c):
        s.release()
    e = d.w(4)
    assert (where(e), d.pool.mode) == (1, BACK)


def test_t13_no_suffix_reuse_below_eight_slots() -> None:
    d = Driver(20)
    held = d.ws(3, 6)
    assert [where(s) for s in held] == [1, 2, 3]
    held[2].release()
    s = d.w(6)
    assert (where(s), d.pool.mode) == (SYS, ALLOC)
    held[0].release()
    s = d.w(6)
    assert (where(s), d.pool.mode) == (SYS, ALLOC)


def test_t14_holes_are_not_reused() -> None:
    d = Driver()
    held = d.ws(8)
    held[3].release()
    assert d.bits == "111-1111"
    s = d.w()
    assert (where(s), d.pool.mode) == (SYS, ALLOC)


def test_t15_empty_take() -> None:
    d = Driver()
    held = d.w()
    s = d.pool.get_data_owned()
    assert (s.index, s.from_pool, len(s), bytes(s)) == (None, True, 0, b"")
    assert d.bits == "1-------"
    second = d.w()
    assert where(second) == 2  # no slot was used
    s.release()
    assert d.bits == "11------"
    assert d.intact([held, second])


def test_t15_empty_take_in_alloc_mode_is_system_memory() -> None:
    d = Driver(0)
    s = hold(d.pool.get_data_owned())
    assert (s.index, s.from_pool, len(s)) == (None, True, 0)
    d.w(1)
    s = hold(d.pool.get_data_owned())
    assert (s.index, s.from_pool, len(s), d.pool.mode) == (None, False, 0, ALLOC)


def test_t16_header_then_payload() -> None:
    pool = BufferPool(40)
    pool.get_writable(6)[:] = b"H" * 6
    assert len(pool) == 6
    pool.get_writable(10)[:] = b"P" * 10
    assert len(pool) == 16
    with pool.get_data_owned() as s:
        assert (s.index, s.from_pool, bytes(s)) == (1, True, b"H" * 6 + b"P" * 10)


def test_t17_pending_data_survives_a_switch() -> None:
    d = Driver()
    held = d.ws(8)
    d.pool.get_writable(3)[:] = b"abc"
    assert d.pool.mode is ALLOC
    for s in held:
        s.release()
    d.pool.get_writable(4)[:] = b"defg"
    assert d.pool.mode is BACK
    s = hold(d.pool.get_data_owned())
    assert (where(s), offset(d, s), bytes(s)) == (1, 0, b"abcdefg")


def test_t20_capacity_zero() -> None:
    d = Driver(0)
    for _ in range(3):
        s = d.w(1)
        assert (where(s), d.pool.mode) == (SYS, ALLOC)


# ---- upstream defects: gone -----------------------------------------------------------------


def test_t18_oversize_first_message_does_not_wedge() -> None:
    d = Driver(16)
    s = d.w(20)
    assert (where(s), d.pool.mode) == (SYS, ALLOC)
    s.release()
    for _ in range(5):
        s = d.w(4)
        assert (where(s), d.pool.mode, offset(d, s)) == (1, BACK, 0)
        s.release()


def test_t18_upstream_wedges() -> None:
    """The reference port without fixes shows the wedge our pool avoids."""
    ref = RefPool(16, fixed=False)
    ref.drop(ref.write(b"x" * 20))
    for _ in range(3):
        s = ref.write(b"y" * 4)
        assert not s.from_pool
        ref.drop(s)


def test_t19_encoder_sized_pool_recovers_after_oversize_frame() -> None:
    d = Driver(512)
    d.w(100).release()
    big = d.w(600)
    assert (where(big), d.pool.mode) == (SYS, ALLOC)
    big.release()
    for _ in range(5):
        s = d.w(100)
        assert (where(s), d.pool.mode, offset(d, s)) == (1, BACK, 0)
        s.release()


def test_t21_no_overlap_after_front_tail_clear() -> None:
    d = Driver()
    first = d.w(10)
    rest = d.ws(7, 4)
    assert [where(s) for s in rest] == [2, 3, 4, 5, 6, 7, 8]
    first.release()
    f = d.w(2)
    assert (where(f), d.pool.mode, offset(d, f)) == (1, FRONT, 0)
    f.release()
    g = d.w(3)  # upstream: slot 2 at bytes 2..5, clearing live slot 2's bit
    assert (where(g), d.pool.mode, offset(d, g)) == (1, FRONT, 0)
    assert d.bits == "11111111"
    h = d.w(4)
    g.release()
    k = d.w(3)
    assert d.intact([*rest, h, k])
    assert d.pool.slot_bits == sum(0x80 >> (s.index - 1) for s in [*rest, h, k] if s.index)


def test_t21_upstream_overlaps() -> None:
    """The unfixed reference reproduces T21's corruption, so the test above means something."""
    ref = RefPool(40, fixed=False)
    first = ref.write(b"\x01" * 10)
    for i in range(2, 9):
        ref.write(bytes([i]) * 4)
    ref.drop(first)
    f = ref.write(b"\x14" * 2)
    assert (f.index, f.offset, ref.mode_name()) == (1, 0, "front")
    ref.drop(f)
    g = ref.write(b"\x1e" * 3)
    assert (g.index, g.offset, bits_str(ref.shared_state)) == (2, 2, "--111111")
    h = ref.write(b"\x17" * 4)
    assert (h.index, h.offset) == (3, 5)
    ref.drop(g)
    k = ref.write(b"\x1e" * 3)
    assert (k.index, k.offset) == (3, 5)
    assert ref.pool_bytes(h) == bytes([30, 30, 30, 23])


def test_b2_back_resumes_after_the_live_front_slices() -> None:
    """#2402: a stale slot entry made upstream resume the back inside a live front slice."""
    d = Driver()
    back = d.ws(8)
    for s in back[:3]:
        s.release()
    front = d.ws(3, 1)
    assert [(where(s), offset(d, s)) for s in front] == [(1, 0), (2, 1), (3, 2)]
    front[1].release()
    front[2].release()
    big = d.w(8)
    assert (where(big), offset(d, big), d.bits) == (2, 1, "11-11111")
    for s in back[3:]:
        s.release()
    x = d.w(7)  # upstream: slot 4 at offset 3, inside `big` (bytes 1..9)
    assert (where(x), offset(d, x), d.pool.mode, d.bits) == (4, 9, BACK, "11-1----")
    assert d.intact([front[0], big, x])


def test_b2_upstream_overlaps() -> None:
    ref = RefPool(40, fixed=True, fix_b2=False)  # B1 and B3 fixed, B2 not
    back = [ref.write(bytes([i]) * 5) for i in range(1, 9)]
    for r in back[:3]:
        ref.drop(r)
    front = [ref.write(bytes([20 + i])) for i in range(3)]
    ref.drop(front[1])
    ref.drop(front[2])
    big = ref.write(b"\x30" * 8)
    for r in back[3:]:
        ref.drop(r)
    x = ref.write(b"\x40" * 7)
    assert (x.index, x.offset) == (4, 3)
    assert ref.pool_bytes(big) != big.data


def test_t22_fifo_never_wedges() -> None:
    rng = random.Random(22)
    d = Driver(1000)
    live: list[Slice] = []
    for _ in range(2000):
        live.append(d.w(rng.randint(1, 24)))
        while len(live) > rng.randint(1, 9):
            live.pop(0).release()
        assert d.intact(live)
    for s in live:
        s.release()
    s = d.w(24)
    assert (where(s), d.pool.mode, offset(d, s)) == (1, BACK, 0)


# ---- lockstep with the reference port ------------------------------------------------------


@pytest.mark.parametrize("seed", range(40))
def test_lockstep_with_reference(seed: int) -> None:
    rng = random.Random(seed)
    cap = rng.choice([0, 1, 8, 16, 40, 64, 100, 512, 1000, rng.randrange(200)])
    twin = Twin(cap)
    policy = rng.choice(["random", "fifo", "lifo"])
    for _ in range(150):
        if twin.live and rng.random() < 0.45:
            i = {"random": rng.randrange(len(twin.live)), "fifo": 0, "lifo": -1}[policy]
            twin.release(i if i >= 0 else len(twin.live) - 1)
        elif rng.random() < 0.03:
            twin.take()
        else:
            n = rng.randint(1, 24) if rng.random() < 0.95 else rng.randint(0, 600)
            twin.write(n, rng.randint(1, n) if n > 1 and rng.random() < 0.3 else None)


# ---- API, errors, lifetime -----------------------------------------------------------------


def test_introspection() -> None:
    pool = BufferPool(40)
    assert (pool.capacity, pool.mode, pool.slot_bits, POOL_CAPACITY) == (40, BACK, 0, 8)
    assert pool.is_back_mode() and not pool.is_front_mode() and not pool.is_alloc_mode()
    assert pool.is_droppable()
    s = pool.get_data_owned()
    assert pool.is_droppable()
    pool.write(b"abc")
    t = pool.get_data_owned()
    assert not pool.is_droppable()
    assert repr(pool) == "<BufferPool capacity=40 BACK slots=1------- pending=0>"
    t.release()
    s.release()
    assert pool.is_droppable()


def test_get_data_by_ref_honours_n_in_every_mode() -> None:
    pool = BufferPool(16)
    pool.write(b"Ciao, mundo!")
    assert len(pool) == 12
    assert bytes(pool.get_data_by_ref(4)) == b"Ciao"
    assert bytes(pool.get_data_by_ref(12)) == b"Ciao, mundo!"
    assert len(pool) == 12
    big = BufferPool(4)
    big.write(b"Ciao, mundo!")
    assert big.is_alloc_mode()
    assert bytes(big.get_data_by_ref(4)) == b"Ciao"


def test_views_are_released_by_the_next_call() -> None:
    pool = BufferPool(40)
    w = pool.get_writable(4)
    r = pool.get_data_by_ref(4)
    with pytest.raises(ValueError, match="released memoryview"):
        w[0] = 1
    s = pool.get_data_owned()
    with pytest.raises(ValueError, match="released memoryview"):
        r[0]
    s.release()


def test_danger_set_start_reset_by_get_data_owned() -> None:
    pool = BufferPool(40)
    pool.write(b"abc")
    pool.danger_set_start(2)
    assert pool.start == 2
    pool.get_data_owned().release()
    assert pool.start == 0


@pytest.mark.parametrize(
    ("n", "error", "message"),
    [
        (-1, ValueError, rf"^n must be in 0\.\.{MAX_SIZE}, got int -1$"),
        (MAX_SIZE + 1, ValueError, rf"^n must be in 0\.\.{MAX_SIZE}, got int {MAX_SIZE + 1}$"),
        (False, TypeError, r"^n must be an int, got bool False$"),
        (2.0, TypeError, r"^n must be an int, got float 2\.0$"),
    ],
)
def test_bad_sizes_fail_clean(n: object, error: type[Exception], message: str) -> None:
    d = Driver()
    held = d.ws(8)
    d.pool.write(b"xyz")
    state = (d.pool.mode, d.pool.slot_bits, len(d.pool))
    with pytest.raises(error, match=message):
        d.pool.get_writable(n)  # type: ignore[arg-type]  # the point of the test
    with pytest.raises(error, match=message):
        d.pool.get_data_by_ref(n)  # type: ignore[arg-type]  # the point of the test
    assert (d.pool.mode, d.pool.slot_bits, len(d.pool)) == state
    assert bytes(hold(d.pool.get_data_owned())) == b"xyz"
    assert d.intact(held)


@pytest.mark.parametrize(
    ("capacity", "error", "message"),
    [
        (-1, ValueError, rf"^capacity must be in 0\.\.{MAX_SIZE}, got int -1$"),
        (1 << 40, ValueError, rf"^capacity must be in 0\.\.{MAX_SIZE}, got int {1 << 40}$"),
        ("40", TypeError, r"^capacity must be an int, got str '40'$"),
        (True, TypeError, r"^capacity must be an int, got bool True$"),
    ],
)
def test_bad_capacities(capacity: object, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        BufferPool(capacity)  # type: ignore[arg-type]  # the point of the test


def test_released_slice_is_stale() -> None:
    pool = BufferPool(40)
    pool.write(b"abc")
    s = pool.get_data_owned()
    s.release()
    with pytest.raises(StaleRefError):
        bytes(s)
    s.release()  # idempotent: the slot is not freed twice
    pool.write(b"def")
    t = hold(pool.get_data_owned())
    s.release()
    assert pool.slot_bits == 0x80 and bytes(t) == b"def"


def test_pool_collected_while_slices_alive_keeps_their_bytes() -> None:
    pool = BufferPool(40)
    slices = []
    for i in range(3):
        pool.write(bytes([i]) * 5)
        slices.append(pool.get_data_owned())
    ref = weakref.ref(pool)
    del pool
    gc.collect()
    assert ref() is None  # the slices do not keep the pool alive
    assert [bytes(s) for s in slices] == [bytes([i]) * 5 for i in range(3)]
    for s in slices:
        s.release()  # no hang, no error


def test_gc_of_a_forgotten_slice_warns_and_frees_its_slot() -> None:
    pool = BufferPool(40)
    pool.write(b"abc")
    with pytest.warns(ResourceWarning, match=r"^<Slice index=1 len=3 pool> was garbage-collected while still live"):
        pool.get_data_owned()  # dropped at once: a leak
        gc.collect()
    assert pool.slot_bits == 0
    pool.write(b"d")
    assert pool_offset(pool, hold(pool.get_data_owned()).view) == 0


def test_timing_script_runs(capsys: pytest.CaptureFixture[str]) -> None:
    import runpy
    from pathlib import Path

    script = Path(__file__).resolve().parent.parent / "examples" / "sv2_buffer_timing.py"
    namespace = runpy.run_path(str(script))
    result: object = namespace["main"](["--messages", "20", "--repeats", "1"])
    assert isinstance(result, dict)
    assert set(result) == {"BufferFromSystemMemory", "BufferPool", "PooledBuffer"}
    assert "x baseline" in capsys.readouterr().out


def test_static_types() -> None:
    """mypy pins these; at runtime they show every buffer satisfies the `Buffer` protocol."""
    from typing import assert_type

    from objpool import ByteBuffer, Pool
    from objpool.sv2 import Buffer, BufferFromSystemMemory, PooledBuffer

    buffers: list[Buffer] = [
        BufferPool(16),
        BufferFromSystemMemory(),
        PooledBuffer(Pool(lambda: ByteBuffer(16), 1)),
    ]
    for buf in buffers:
        assert_type(buf.get_writable(2), memoryview)[:] = b"ok"
        assert_type(buf.get_data_by_ref(2), memoryview)
        with assert_type(buf.get_data_owned(), Slice) as s:
            assert_type(s.index, int | None)
            assert_type(s.view, memoryview)
            assert bytes(s) == b"ok"
    pool = BufferPool(16)
    assert_type(pool.mode, PoolMode)
    assert_type(pool.slot_bits, int)


# ---- upstream's own unit tests (src/test.rs), as far as they are observable here ------------


def test_upstream_it_drop_never_uses_system_memory() -> None:
    d = Driver()
    for _ in range(100):
        s = d.w()
        assert s.from_pool
        s.release()


def test_upstream_alloc_more_than_pool_capacity() -> None:
    d = Driver()
    held = d.ws(18)
    assert [s.from_pool for s in held] == [True] * 8 + [False] * 10
    assert d.intact(held)


def test_upstream_alloc_more_than_byte_capacity() -> None:
    d = Driver(1)
    held = d.ws(18)
    assert not any(s.from_pool for s in held)
    assert d.intact(held)


def test_upstream_back_front_alloc() -> None:
    d = Driver()
    held = d.ws(8)
    for s in held[:3]:
        s.release()
    front = d.ws(3)
    assert d.pool.is_front_mode()
    for s in held[5:]:
        s.release()
    more = d.ws(3)
    more += d.ws(30)
    assert not d.pool.is_front_mode()
    assert d.intact(held[3:5] + front + more)


def test_upstream_basic_example() -> None:
    pool = BufferPool(32)
    pool.write(b"Ciao, mundo!")
    assert len(pool) == 12
    assert bytes(pool.get_data_by_ref(12)) == b"Ciao, mundo!"
    assert len(pool) == 12
    with pool.get_data_owned() as s:
        assert (len(pool), bytes(s)) == (0, b"Ciao, mundo!")


def test_release_between_fill_and_take_is_seen_by_take() -> None:
    d = Driver()
    old = d.w()
    d.pool.get_writable(3)[:] = b"new"
    old.release()  # after get_writable's snapshot, before get_data_owned
    s = hold(d.pool.get_data_owned())
    assert (where(s), d.pool.slot_bits) == (2, 0x40)


def test_slot_handed_out_while_alive_is_refused() -> None:
    """A guard that the fixed algorithm never trips: it refuses to share live memory."""
    pool = BufferPool(40)
    pool.write(b"abc")
    pool._bits = 0x80  # pretend slot 1 is alive (corrupt the private map on purpose)
    with pytest.raises(RuntimeError, match=r"^objpool bug: slot 1 handed out while alive$"):
        pool.get_data_owned()


def test_collected_slice_with_a_live_export_keeps_its_slot() -> None:
    """Bytes still exported elsewhere are never handed to a new owner."""
    import pickle

    pool = BufferPool(40)
    pool.write(b"keep")
    s = pool.get_data_owned()
    exported = pickle.PickleBuffer(s.view)  # holds a buffer export of the view itself
    with pytest.warns(ResourceWarning, match=r"garbage-collected while still live"):
        del s
        gc.collect()
    assert pool.slot_bits == 0x80
    pool.write(b"next")
    t = hold(pool.get_data_owned())
    assert (t.index, bytes(exported.raw())) == (2, b"keep")
    exported.release()
