"""`SizedPool`: size classes at their edges, handle rules, reuse, bounded retention, trimming."""

from __future__ import annotations

import gc
import random
import sys
import threading
from typing import assert_type

import pytest

from objpool import (
    ByteBuffer,
    ForeignRefError,
    OwnedRef,
    Pool,
    SizeClassStats,
    SizedPool,
    SizedPoolStats,
    StaleRefError,
)

KiB = 1024
MiB = 1024 * KiB


class FakeClock:
    """An injectable clock: time moves only when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def small_pool(**options: object) -> SizedPool:
    """Classes of 4, 8 and 16 KiB."""
    return SizedPool(min_size=4 * KiB, max_size=16 * KiB, **options)  # type: ignore[arg-type]


# -- size classes -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n", "capacity"),
    [
        (0, 4 * KiB),
        (1, 4 * KiB),
        (4 * KiB - 1, 4 * KiB),
        (4 * KiB, 4 * KiB),
        (4 * KiB + 1, 8 * KiB),
        (8 * KiB, 8 * KiB),
        (8 * KiB + 1, 16 * KiB),
        (16 * KiB, 16 * KiB),
    ],
)
def test_a_request_gets_its_power_of_two_class_empty(n: int, capacity: int) -> None:
    pool = small_pool()
    with pool.get(n) as buf:
        assert (capacity, 0) == (buf.capacity, len(buf))
        assert buf.free >= n


def test_a_request_past_max_size_gets_an_exact_buffer_that_is_never_kept() -> None:
    pool = small_pool()
    ref = pool.get(16 * KiB + 1)
    assert 16 * KiB + 1 == ref.value.capacity
    assert (1, 16 * KiB + 1) == (pool.stats().oversize, pool.stats().lent)
    ref.release()
    stats = pool.stats()
    assert (0, 0) == (stats.retained, stats.lent)
    with pytest.raises(StaleRefError):
        ref.release()


@pytest.mark.parametrize(
    ("n", "error", "message"),
    [
        (-1, ValueError, r"^n must be >= 0, got int -1$"),
        (1.0, TypeError, r"^n must be an int, got float 1.0$"),
        (True, TypeError, r"^n must be an int, got bool True$"),
    ],
)
def test_bad_sizes_are_refused(n: object, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        small_pool().get(n)  # type: ignore[arg-type]  # deliberately bad


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"min_size": 3000}, ValueError, r"^min_size must be a power of two, got int 3000$"),
        ({"min_size": 0}, ValueError, r"^min_size must be >= 1, got int 0$"),
        ({"max_size": 1000}, ValueError, r"^max_size must be a power of two, got int 1000$"),
        ({"min_size": 8192, "max_size": 4096}, ValueError, r"^max_size must be >= min_size \(8192\), got int 4096$"),
        ({"max_retained": -1}, ValueError, r"^max_retained must be >= 0, got int -1$"),
        ({"max_idle_s": 0}, ValueError, r"^max_idle_s must be > 0, got int 0$"),
        ({"max_idle_s": float("nan")}, ValueError, r"^max_idle_s must be > 0, got float nan$"),
        ({"max_idle_s": "1"}, TypeError, r"^max_idle_s must be a number of seconds, got str '1'$"),
        ({"clock": 5}, TypeError, r"^clock must be a callable returning seconds, got int 5$"),
    ],
)
def test_bad_options_are_refused(options: dict[str, object], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        SizedPool(**options)  # type: ignore[arg-type]  # deliberately bad


def test_defaults() -> None:
    pool = SizedPool()
    assert (4096, 64 * MiB, 256 * MiB) == (pool.min_size, pool.max_size, pool.max_retained)
    assert [4096 << k for k in range(15)] == [c.size for c in pool.stats().classes]


# -- the handle rules ------------------------------------------------------------------------


def test_handles_are_typed_and_linear() -> None:
    pool = small_pool()
    ref = pool.get(10)
    assert_type(ref, OwnedRef[ByteBuffer])
    assert ref.pool is pool and ref.alive
    ref.release()
    assert not ref.alive
    with pytest.raises(StaleRefError, match=r"was already released$"):
        ref.release()
    with pytest.raises(StaleRefError, match=r"was already released$"):
        pool.deallocate(ref)
    with pytest.raises(StaleRefError):
        ref.value


def test_foreign_handles_and_non_handles_are_refused() -> None:
    pool, other = small_pool(), small_pool()
    objects = Pool(lambda: ByteBuffer(8), 1)
    theirs, from_pool = other.get(1), objects.allocate()
    for ref in (theirs, from_pool):
        with pytest.raises(ForeignRefError, match=r"was lent by another pool, not by <SizedPool"):
            pool.deallocate(ref)
        assert ref.alive, "a refused handle is untouched"
    mine = pool.get(1)
    with pytest.raises(ForeignRefError, match=r"was lent by another pool, not by <Pool"):
        objects.deallocate(mine)
    with pytest.raises(TypeError, match=r"^ref must be an OwnedRef, got ByteBuffer"):
        pool.deallocate(ByteBuffer(1))  # type: ignore[arg-type]  # deliberately bad
    with pytest.raises(TypeError, match=r"not made by Pool.allocate\(\)"):
        pool.deallocate(OwnedRef())
    for ref in (theirs, from_pool, mine):
        ref.release()


def test_a_leaked_handle_warns_and_its_buffer_is_never_reused() -> None:
    pool = small_pool()
    ref = pool.get(10)
    leaked = ref.value
    with pytest.warns(ResourceWarning, match=r"^an OwnedRef of <SizedPool .* was garbage-collected while still live"):
        del ref
        gc.collect()
    stats = pool.stats()
    assert (1, 0, 0) == (stats.leaks, stats.lent, stats.retained)
    with pool.get(10) as buf:
        assert buf is not leaked, "it may still be referenced: a new one is made"
    assert 2 == pool.stats().classes[0].misses


def test_a_leaked_oversize_handle_is_settled_too() -> None:
    pool = small_pool()
    ref = pool.get(1 * MiB)
    with pytest.warns(ResourceWarning):
        del ref
        gc.collect()
    assert (1, 0) == (pool.stats().leaks, pool.stats().lent)


# -- reuse -----------------------------------------------------------------------------------


def test_the_most_recently_returned_buffer_of_a_class_is_lent_first() -> None:
    pool = small_pool()
    first, second = pool.get(5000), pool.get(5000)
    a, b = first.value, second.value
    first.release()
    second.release()
    with pool.get(6000) as buf:
        assert buf is b
    stats = pool.stats().classes[1]
    assert (8 * KiB, 1, 2, 8 * KiB * 2, 0, 16 * KiB) == (
        stats.size,
        stats.hits,
        stats.misses,
        stats.retained,
        stats.lent,
        stats.high_water,
    )
    assert a is not b


def test_a_reused_buffer_keeps_the_previous_user_s_bytes_unless_zeroed() -> None:
    for zero, expected in ((False, b"secret"), (True, bytes(6))):
        pool = small_pool(zero_on_reset=zero)
        with pool.get(10) as buf:
            buf.write(b"secret")
        with pool.get(10) as buf:
            assert 0 == len(buf)
            assert expected == bytes(buf.writable()[:6])


def test_views_of_a_returned_buffer_are_released() -> None:
    pool = small_pool()
    with pool.get(10) as buf:
        buf.write(b"abc")
        view = buf.view()
    with pytest.raises(ValueError):
        bytes(view)


# -- bounded retention -----------------------------------------------------------------------


def test_retention_stays_within_max_retained_evicting_the_longest_idle_first() -> None:
    clock = FakeClock()
    pool = small_pool(max_retained=32 * KiB, clock=clock)
    sizes = [4 * KiB, 8 * KiB, 16 * KiB, 8 * KiB, 16 * KiB]
    refs = [pool.get(n) for n in sizes]
    for ref in refs:  # returned at 1000, 1001, 1002, 1003, 1004
        ref.release()
        clock.now += 1
    # The second 8 KiB one (1003) pushed out the 4 KiB one (1000); the second 16 KiB one
    # (1004) the first 8 KiB (1001) and 16 KiB (1002) ones: the longest idle go first,
    # whatever their class.
    stats = pool.stats()
    assert [(4 * KiB, 1, 0), (8 * KiB, 1, 8 * KiB), (16 * KiB, 1, 16 * KiB)] == [
        (c.size, c.evictions, c.retained) for c in stats.classes
    ]
    assert 24 * KiB == stats.retained


def test_a_buffer_over_half_the_budget_is_dropped_rather_than_evict_others() -> None:
    pool = small_pool(max_retained=24 * KiB)
    refs = [pool.get(4 * KiB), pool.get(8 * KiB), pool.get(16 * KiB)]
    for ref in refs:
        ref.release()
    stats = pool.stats()
    assert [(0, 4 * KiB), (0, 8 * KiB), (1, 0)] == [(c.evictions, c.retained) for c in stats.classes]
    with pool.get(16 * KiB):
        pass  # still no room for it without evicting: dropped again
    with pool.get(4 * KiB), pool.get(8 * KiB):
        pass  # the small ones were kept, and are reused
    stats = pool.stats()
    assert (2, 2) == (stats.classes[2].evictions, stats.classes[0].hits + stats.classes[1].hits)


def test_a_buffer_larger_than_max_retained_is_dropped_on_return() -> None:
    pool = small_pool(max_retained=8 * KiB)
    with pool.get(4 * KiB):
        pass
    with pool.get(16 * KiB):
        pass
    stats = pool.stats()
    assert (4 * KiB, 1) == (stats.retained, stats.classes[2].evictions)
    assert 0 == stats.classes[0].evictions, "what was kept stays kept"


def test_max_retained_zero_keeps_nothing() -> None:
    pool = small_pool(max_retained=0)
    for _ in range(3):
        with pool.get(1):
            pass
    assert (0, 0, 3) == (pool.stats().retained, pool.stats().classes[0].hits, pool.stats().classes[0].misses)


def test_trim_frees_what_was_idle_longer_than_asked() -> None:
    clock = FakeClock()
    pool = small_pool(clock=clock, max_idle_s=1000)
    old, new = pool.get(1), pool.get(5000)
    old.release()
    clock.now += 30
    new.release()
    clock.now += 5
    assert 4 * KiB == pool.trim(20), "only the one idle for 35 s"
    assert (8 * KiB, 1) == (pool.stats().retained, pool.stats().classes[0].trimmed)
    assert 8 * KiB == pool.trim()
    assert 0 == pool.stats().retained
    assert 0 == pool.trim()


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        (-1, ValueError, r"^max_idle_s must be >= 0, got int -1$"),
        (float("nan"), ValueError, r"^max_idle_s must be >= 0, got float nan$"),
        (None, TypeError, r"^max_idle_s must be a number"),
    ],
)
def test_trim_refuses_bad_ages(value: object, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        small_pool().trim(value)  # type: ignore[arg-type]  # deliberately bad


def test_the_pool_frees_long_idle_buffers_itself_on_a_later_release() -> None:
    clock = FakeClock()
    pool = small_pool(clock=clock, max_idle_s=60)
    with pool.get(1):
        pass  # idle from 1000
    clock.now += 59
    with pool.get(5000):
        pass  # a sweep is due (every 15 s), but nothing is 60 s idle yet
    assert 12 * KiB == pool.stats().retained
    clock.now += 16
    with pool.get(10000):
        pass  # the next sweep is due, and the 4 KiB buffer has been idle 75 s: freed
    stats = pool.stats()
    assert [1, 0, 0] == [c.trimmed for c in stats.classes]
    assert 24 * KiB == stats.retained


# -- threads ---------------------------------------------------------------------------------


def test_threads_never_share_a_buffer_and_owner_marks_survive() -> None:
    """4 threads get random sizes, stamp the whole buffer with their mark, check it, release."""
    pool = SizedPool(min_size=64, max_size=64 * KiB, max_retained=256 * KiB)
    owners: dict[int, int] = {}  # id(buffer) -> the thread holding it
    owners_lock = threading.Lock()
    errors: list[str] = []

    def work(me: int) -> None:
        rng = random.Random(me)
        mark = bytes([me + 1])
        for _ in range(2000):
            n = rng.choice((1, 64, 100, 4096, 5000, 65536, 70000))
            with pool.get(n) as buf:
                with owners_lock:
                    if id(buf) in owners:
                        errors.append(f"buffer lent to {owners[id(buf)]} and {me}")
                    owners[id(buf)] = me
                buf.write(mark * n)
                if bytes(buf) != mark * n:
                    errors.append(f"thread {me}'s bytes changed while it owned them")
                with owners_lock:
                    del owners[id(buf)]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter can
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        sys.setswitchinterval(interval)
    assert [] == errors
    stats = pool.stats()
    assert (0, 0) == (stats.lent, stats.leaks)
    assert stats.retained <= 256 * KiB
    assert 4 * 2000 == sum(c.hits + c.misses for c in stats.classes) + stats.oversize


def test_stats_types() -> None:
    stats = small_pool().stats()
    assert_type(stats, SizedPoolStats)
    assert_type(stats.classes[0], SizeClassStats)
    assert "<SizedPool 4096..16384 bytes, 0 retained of 65536>" == repr(small_pool())


# -- pinned memory ---------------------------------------------------------------------------


def test_pinned_buffers_sit_on_locked_memory_and_are_counted_until_freed(monkeypatch: pytest.MonkeyPatch) -> None:
    import objpool._pinned as pinned

    locked: list[int] = []

    def lock(address: int, size: int) -> int:
        locked.append(size)
        return 0

    monkeypatch.setattr(pinned, "_mlock", lock)
    pool = small_pool(pinned=True)
    ref = pool.get(5000)
    buf = ref.value
    assert ([8 * KiB], 8 * KiB) == (locked, pool.stats().pinned)
    buf.write(b"pinned")
    assert b"pinned" == bytes(buf)
    ref.release()
    del ref, buf
    assert 8 * KiB == pool.stats().pinned, "idle in the pool: still locked, still counted"
    big = pool.get(20 * KiB)  # oversize buffers are pinned too
    assert 28 * KiB == pool.stats().pinned
    big.release()
    del big
    pool.trim()
    gc.collect()
    assert 0 == pool.stats().pinned


def test_a_failing_mlock_falls_back_to_ordinary_memory_and_warns_once(monkeypatch: pytest.MonkeyPatch) -> None:
    import ctypes
    import errno
    import warnings

    import objpool._pinned as pinned

    def refuse(address: int, size: int) -> int:
        ctypes.set_errno(errno.ENOMEM)
        return -1

    monkeypatch.setattr(pinned, "_mlock", refuse)
    pool = small_pool(pinned=True)
    with pytest.warns(RuntimeWarning, match=r"could not pin 4096 bytes \(mlock failed: Cannot allocate memory \(errno 12\); see RLIMIT_MEMLOCK"):
        first = pool.get(1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second warning would fail here
        second = pool.get(1)
    for ref in (first, second):
        ref.value.write(b"ordinary")
        assert b"ordinary" == bytes(ref.value)
        ref.release()
    assert 0 == pool.stats().pinned


def test_pinned_memory_is_really_locked_where_the_system_allows_it() -> None:
    """On Linux, /proc/self/status counts locked memory (VmLck): it grows by the buffer."""
    import warnings

    from objpool._pinned import pinned_block

    def locked_kib() -> int:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmLck:"))

    if not sys.platform.startswith("linux"):
        pytest.skip("VmLck is Linux's")
    probe = pinned_block(4096)
    can_pin = probe is not None
    if probe is not None:
        probe.close()  # unlocked again before the count starts
    pool = small_pool(pinned=True)
    before = locked_kib()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ref = pool.get(16 * KiB)
    if not can_pin:  # no permission, or a low RLIMIT_MEMLOCK: the documented fallback
        assert [RuntimeWarning] == [w.category for w in caught]
        assert 0 == pool.stats().pinned
    else:
        assert [] == caught
        assert locked_kib() - before == 16
        assert 16 * KiB == pool.stats().pinned
    ref.release()


def test_the_default_clock_stamps_returned_buffers_with_time_monotonic() -> None:
    """The compiled build reads the default clock in C: it must be time.monotonic's."""
    import time

    pool = SizedPool(min_size=4 * KiB, max_size=8 * KiB)
    before = time.monotonic()
    with pool.get(1):
        pass
    after = time.monotonic()
    [(stamp, _)] = pool._classes[0].idle
    assert before - 0.001 <= stamp <= after + 0.001
    assert 0 == pool.trim(3600), "idle for a moment, not an hour"
    assert 4 * KiB == pool.trim()


def test_a_handle_cannot_be_made_already_dead_in_either_build() -> None:
    from objpool._pool import handle_for

    with pytest.raises(ValueError, match=r"^index must be >= 0, got -1$"):
        handle_for(small_pool(), ByteBuffer(1), -1)
