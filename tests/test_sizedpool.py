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
    PoolClosedError,
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
    """Classes of 4, 8 and 16 KiB; no thread cache unless asked (these tests pin the shared
    stacks' rules, and caches are on by default on free-threaded builds)."""
    options.setdefault("thread_cache", False)
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
    with pool.allocate(n) as buf:
        assert (capacity, 0) == (buf.capacity, len(buf))
        assert buf.free >= n


def test_a_request_past_max_size_gets_an_exact_buffer_that_is_never_kept() -> None:
    pool = small_pool()
    ref = pool.allocate(16 * KiB + 1)
    assert 16 * KiB + 1 == ref.value.capacity
    assert (1, 16 * KiB + 1) == (pool.stats().oversize, pool.stats().lent_bytes)
    ref.release()
    stats = pool.stats()
    assert (0, 0) == (stats.idle_bytes, stats.lent_bytes)
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
        small_pool().allocate(n)  # type: ignore[arg-type]  # deliberately bad


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"min_size": 3000}, ValueError, r"^min_size must be a power of two, got int 3000$"),
        ({"min_size": 0}, ValueError, r"^min_size must be >= 1, got int 0$"),
        ({"max_size": 1000}, ValueError, r"^max_size must be a power of two, got int 1000$"),
        ({"min_size": 8192, "max_size": 4096}, ValueError, r"^max_size must be >= min_size \(8192\), got int 4096$"),
        ({"max_retained": -1}, ValueError, r"^max_retained must be >= 0, got int -1$"),
        ({"max_idle_seconds": 0}, ValueError, r"^max_idle_seconds must be a number of seconds > 0, got int 0$"),
        ({"max_idle_seconds": float("nan")}, ValueError, r"^max_idle_seconds must be a number of seconds > 0, got float nan$"),
        ({"max_idle_seconds": "1"}, TypeError, r"^max_idle_seconds must be a number of seconds > 0, got str '1'$"),
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
    ref = pool.allocate(10)
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
    theirs, from_pool = other.allocate(1), objects.allocate()
    for ref in (theirs, from_pool):
        with pytest.raises(ForeignRefError, match=r"was lent by another pool, not by <SizedPool"):
            pool.deallocate(ref)
        assert ref.alive, "a refused handle is untouched"
    mine = pool.allocate(1)
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
    ref = pool.allocate(10)
    leaked = ref.value
    with pytest.warns(ResourceWarning, match=r"^an OwnedRef of <SizedPool .* was garbage-collected while still live"):
        del ref
        gc.collect()
    stats = pool.stats()
    assert (1, 0, 0) == (stats.leaks, stats.lent_bytes, stats.idle_bytes)
    with pool.allocate(10) as buf:
        assert buf is not leaked, "it may still be referenced: a new one is made"
    assert 2 == pool.stats().classes[0].misses


def test_a_leaked_oversize_handle_is_settled_too() -> None:
    pool = small_pool()
    ref = pool.allocate(1 * MiB)
    with pytest.warns(ResourceWarning):
        del ref
        gc.collect()
    assert (1, 0) == (pool.stats().leaks, pool.stats().lent_bytes)


# -- reuse -----------------------------------------------------------------------------------


def test_the_most_recently_returned_buffer_of_a_class_is_lent_first() -> None:
    pool = small_pool()
    first, second = pool.allocate(5000), pool.allocate(5000)
    a, b = first.value, second.value
    first.release()
    second.release()
    with pool.allocate(6000) as buf:
        assert buf is b
    stats = pool.stats().classes[1]
    assert (8 * KiB, 1, 2, 8 * KiB * 2, 0, 16 * KiB) == (
        stats.size,
        stats.hits,
        stats.misses,
        stats.idle_bytes,
        stats.lent_bytes,
        stats.high_water_bytes,
    )
    assert a is not b


def test_a_reused_buffer_keeps_the_previous_user_s_bytes_unless_zeroed() -> None:
    for zero, expected in ((False, b"secret"), (True, bytes(6))):
        pool = small_pool(zero_on_reset=zero)
        with pool.allocate(10) as buf:
            buf.write(b"secret")
        with pool.allocate(10) as buf:
            assert 0 == len(buf)
            assert expected == bytes(buf.writable()[:6])


def test_views_of_a_returned_buffer_are_released() -> None:
    pool = small_pool()
    with pool.allocate(10) as buf:
        buf.write(b"abc")
        view = buf.view()
    with pytest.raises(ValueError):
        bytes(view)


# -- bounded retention -----------------------------------------------------------------------


def test_retention_stays_within_max_retained_evicting_the_longest_idle_first() -> None:
    clock = FakeClock()
    pool = small_pool(max_retained=32 * KiB, clock=clock)
    sizes = [4 * KiB, 8 * KiB, 16 * KiB, 8 * KiB, 16 * KiB]
    refs = [pool.allocate(n) for n in sizes]
    for ref in refs:  # returned at 1000, 1001, 1002, 1003, 1004
        ref.release()
        clock.now += 1
    # The second 8 KiB one (1003) pushed out the 4 KiB one (1000); the second 16 KiB one
    # (1004) the first 8 KiB (1001) and 16 KiB (1002) ones: the longest idle go first,
    # whatever their class.
    stats = pool.stats()
    assert [(4 * KiB, 1, 0), (8 * KiB, 1, 8 * KiB), (16 * KiB, 1, 16 * KiB)] == [
        (c.size, c.evictions, c.idle_bytes) for c in stats.classes
    ]
    assert 24 * KiB == stats.idle_bytes


def test_a_buffer_over_half_the_budget_is_dropped_rather_than_evict_others() -> None:
    pool = small_pool(max_retained=24 * KiB)
    refs = [pool.allocate(4 * KiB), pool.allocate(8 * KiB), pool.allocate(16 * KiB)]
    for ref in refs:
        ref.release()
    stats = pool.stats()
    assert [(0, 4 * KiB), (0, 8 * KiB), (1, 0)] == [(c.evictions, c.idle_bytes) for c in stats.classes]
    with pool.allocate(16 * KiB):
        pass  # still no room for it without evicting: dropped again
    with pool.allocate(4 * KiB), pool.allocate(8 * KiB):
        pass  # the small ones were kept, and are reused
    stats = pool.stats()
    assert (2, 2) == (stats.classes[2].evictions, stats.classes[0].hits + stats.classes[1].hits)


def test_a_buffer_larger_than_max_retained_is_dropped_on_return() -> None:
    pool = small_pool(max_retained=8 * KiB)
    with pool.allocate(4 * KiB):
        pass
    with pool.allocate(16 * KiB):
        pass
    stats = pool.stats()
    assert (4 * KiB, 1) == (stats.idle_bytes, stats.classes[2].evictions)
    assert 0 == stats.classes[0].evictions, "what was kept stays kept"


def test_max_retained_zero_keeps_nothing() -> None:
    pool = small_pool(max_retained=0)
    for _ in range(3):
        with pool.allocate(1):
            pass
    assert (0, 0, 3) == (pool.stats().idle_bytes, pool.stats().classes[0].hits, pool.stats().classes[0].misses)


def test_trim_frees_what_was_idle_longer_than_asked() -> None:
    clock = FakeClock()
    pool = small_pool(clock=clock, max_idle_seconds=1000)
    old, new = pool.allocate(1), pool.allocate(5000)
    old.release()
    clock.now += 30
    new.release()
    clock.now += 5
    assert 4 * KiB == pool.trim(20), "only the one idle for 35 s"
    assert (8 * KiB, 1) == (pool.stats().idle_bytes, pool.stats().classes[0].trimmed)
    assert 8 * KiB == pool.trim()
    assert 0 == pool.stats().idle_bytes
    assert 0 == pool.trim()


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        (-1, ValueError, r"^max_idle_seconds must be a number of seconds >= 0, got int -1$"),
        (float("nan"), ValueError, r"^max_idle_seconds must be a number of seconds >= 0, got float nan$"),
        (None, TypeError, r"^max_idle_seconds must be a number"),
    ],
)
def test_trim_refuses_bad_ages(value: object, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        small_pool().trim(value)  # type: ignore[arg-type]  # deliberately bad


def test_the_pool_frees_long_idle_buffers_itself_on_a_later_release() -> None:
    clock = FakeClock()
    pool = small_pool(clock=clock, max_idle_seconds=60)
    with pool.allocate(1):
        pass  # idle from 1000
    clock.now += 59
    with pool.allocate(5000):
        pass  # a sweep is due (every 15 s), but nothing is 60 s idle yet
    assert 12 * KiB == pool.stats().idle_bytes
    clock.now += 16
    with pool.allocate(10000):
        pass  # the next sweep is due, and the 4 KiB buffer has been idle 75 s: freed
    stats = pool.stats()
    assert [1, 0, 0] == [c.trimmed for c in stats.classes]
    assert 24 * KiB == stats.idle_bytes


# -- threads ---------------------------------------------------------------------------------


@pytest.mark.parametrize("thread_cache", [False, True], ids=["shared", "thread-caches"])
def test_threads_never_share_a_buffer_and_owner_marks_survive(thread_cache: bool) -> None:
    """4 threads get random sizes, stamp the whole buffer with their mark and check it before
    releasing; a quarter of the handles are handed to another thread, which re-stamps and
    releases them (so buffers drift between thread caches)."""
    pool = SizedPool(min_size=64, max_size=64 * KiB, max_retained=256 * KiB, thread_cache=thread_cache)
    owners: dict[int, int] = {}  # id(buffer) -> the thread holding it
    owners_lock = threading.Lock()
    handed: list[OwnedRef[ByteBuffer]] = []  # list.append/pop: atomic, a hand-off point
    errors: list[str] = []
    operations = [0] * 4

    def own(me: int, buf: ByteBuffer) -> None:
        with owners_lock:
            if owners.get(id(buf), me) != me:
                errors.append(f"buffer lent to {owners[id(buf)]} and {me}")
            owners[id(buf)] = me
        mark = bytes([me + 1]) * buf.capacity
        buf.reset()
        buf.write(mark)

    def give_up(me: int, buf: ByteBuffer) -> None:
        if bytes(buf) != bytes([me + 1]) * buf.capacity:
            errors.append(f"thread {me}'s bytes changed while it owned them")
        with owners_lock:
            del owners[id(buf)]

    def work(me: int) -> None:
        rng = random.Random(me)
        held: list[OwnedRef[ByteBuffer]] = []
        for _ in range(2000):
            action = rng.random()
            if len(held) < 3 and action < 0.5:
                ref = pool.allocate(rng.choice((1, 64, 100, 4096, 5000, 65536, 70000)))
                operations[me] += 1
                with owners_lock:
                    if id(ref.value) in owners:
                        errors.append(f"buffer lent to {owners[id(ref.value)]} and {me}")
                own(me, ref.value)
                held.append(ref)
            elif held and action < 0.75:
                ref = held.pop(rng.randrange(len(held)))
                give_up(me, ref.value)
                ref.release()
            elif held and action < 0.875:
                ref = held.pop()
                give_up(me, ref.value)
                handed.append(ref)
            else:
                try:
                    ref = handed.pop()
                except IndexError:
                    continue
                own(me, ref.value)
                held.append(ref)
        for ref in held:
            give_up(me, ref.value)
            ref.release()

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
    for ref in handed:
        ref.release()
    assert [] == errors
    stats = pool.stats()
    assert (0, 0) == (stats.lent_bytes, stats.leaks)
    assert stats.idle_bytes <= 256 * KiB
    assert sum(operations) == sum(c.hits + c.misses for c in stats.classes) + stats.oversize
    assert sum(operations) > 2000
    assert stats.idle_bytes == pool.trim(), "the budget's count agrees with the buffers idle"


# -- thread caches ---------------------------------------------------------------------------


@pytest.mark.parametrize(("gil", "cached"), [(True, False), (False, True)])
def test_thread_caches_are_on_by_default_only_without_a_gil(
    monkeypatch: pytest.MonkeyPatch, gil: bool, cached: bool
) -> None:
    monkeypatch.setattr(sys, "_is_gil_enabled", lambda: gil, raising=False)
    assert cached == SizedPool().thread_cache
    assert SizedPool(thread_cache=True).thread_cache
    assert not SizedPool(thread_cache=False).thread_cache
    assert not SizedPool(min_size=512 * KiB, thread_cache=True).thread_cache, "no class small enough"


def in_a_thread(action: object) -> None:
    thread = threading.Thread(target=action)  # type: ignore[arg-type]
    thread.start()
    thread.join()


def test_a_thread_s_cache_serves_its_own_gets_newest_first() -> None:
    pool = small_pool(thread_cache=True)
    refs = [pool.allocate(4 * KiB) for _ in range(6)]
    bufs = [ref.value for ref in refs]
    for ref in refs:
        ref.release()  # the 4 newest stay in this thread's cache, the 2 oldest spill
    others: list[ByteBuffer] = []

    def get_elsewhere() -> None:
        with pool.allocate(4 * KiB) as buf:
            others.append(buf)

    in_a_thread(get_elsewhere)
    assert [bufs[1]] == others, "another thread gets the shared stack's newest, not this cache's"
    got = [pool.allocate(4 * KiB) for _ in range(5)]
    assert [bufs[5], bufs[4], bufs[3], bufs[2], bufs[0]] == [ref.value for ref in got]
    for ref in got:
        ref.release()


def test_an_ended_thread_s_cache_is_freed_and_its_counts_kept() -> None:
    pool = small_pool(thread_cache=True)

    def use() -> None:
        refs = [pool.allocate(8 * KiB) for _ in range(3)]
        for ref in refs:
            ref.release()
        pool.allocate(8 * KiB).release()  # a hit in this thread's cache

    in_a_thread(use)
    gc.collect()
    eight = pool.stats().classes[1]
    assert (1, 3, 3, 0, 0) == (eight.hits, eight.misses, eight.trimmed, eight.idle_bytes, eight.lent_bytes)
    assert 0 == pool.stats().idle_bytes
    assert 0 == pool.trim(), "its credits went back too, not only its buffers"


def test_trim_frees_another_live_thread_s_cached_buffers() -> None:
    clock = FakeClock()
    pool = small_pool(thread_cache=True, clock=clock)
    cached = threading.Event()
    done = threading.Event()

    def park() -> None:
        with pool.allocate(16 * KiB):
            pass
        cached.set()
        done.wait(10)  # alive: its cache is not an orphan

    thread = threading.Thread(target=park)
    thread.start()
    cached.wait(10)
    try:
        assert 16 * KiB == pool.stats().idle_bytes
        clock.now += 30
        assert 0 == pool.trim(60.0)
        assert 16 * KiB == pool.trim(10.0)
        assert (0, 1) == (pool.stats().idle_bytes, pool.stats().classes[2].trimmed)
    finally:
        done.set()
        thread.join()


def test_thread_caches_share_the_budget_whatever_the_number_of_threads() -> None:
    # 8 threads each return 4 buffers of 16 KiB to a 64 KiB budget: the caches may hold at
    # most half of it (2 buffers in all), and the shared stacks the rest.
    pool = small_pool(thread_cache=True, max_retained=64 * KiB)
    released = threading.Barrier(9)
    done = threading.Event()

    def hoard() -> None:
        refs = [pool.allocate(16 * KiB) for _ in range(4)]
        for ref in refs:
            ref.release()
        released.wait(10)
        done.wait(10)  # alive, so that its cache stays

    threads = [threading.Thread(target=hoard) for _ in range(8)]
    for thread in threads:
        thread.start()
    released.wait(10)
    try:
        stats = pool.stats()
        assert (0, 64 * KiB) == (stats.lent_bytes, stats.idle_bytes)
        assert 32 * KiB == pool._credits  # the caches' half of the budget
    finally:
        done.set()
        for thread in threads:
            thread.join()


def test_the_hot_path_waits_while_a_python_section_holds_the_lock(monkeypatch: pytest.MonkeyPatch) -> None:
    """stats() is paused holding the pool's lock (in Python code, which the GIL can leave);
    a 1 MiB get+put (an uncached class: the hot path, compiled or not) must wait for it.
    The compiled hot path skips the lock unless such a section holds it: this is that case."""
    pool = SizedPool(min_size=4 * KiB, max_size=1 * MiB, thread_cache=True)
    inside, go, done = threading.Event(), threading.Event(), threading.Event()
    settle_leaks = SizedPool._settle_leaks  # Python code that stats() runs under the lock

    def paused(self: SizedPool) -> None:
        if not inside.is_set():
            inside.set()
            go.wait(10)
        settle_leaks(self)

    def get_and_put() -> None:
        pool.allocate(1 * MiB).release()
        done.set()

    monkeypatch.setattr(SizedPool, "_settle_leaks", paused)
    holder = threading.Thread(target=pool.stats)
    holder.start()
    inside.wait(10)
    other = threading.Thread(target=get_and_put)
    other.start()
    try:
        assert not done.wait(0.2), "a get+put ran while stats() held the pool's lock"
    finally:
        go.set()
        holder.join()
        other.join()
    assert done.is_set()


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
    ref = pool.allocate(5000)
    buf = ref.value
    assert ([8 * KiB], 8 * KiB) == (locked, pool.stats().pinned_bytes)
    buf.write(b"pinned")
    assert b"pinned" == bytes(buf)
    ref.release()
    del ref, buf
    assert 8 * KiB == pool.stats().pinned_bytes, "idle in the pool: still locked, still counted"
    big = pool.allocate(20 * KiB)  # oversize buffers are pinned too
    assert 28 * KiB == pool.stats().pinned_bytes
    big.release()
    del big
    pool.trim()
    gc.collect()
    assert 0 == pool.stats().pinned_bytes


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
        first = pool.allocate(1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second warning would fail here
        second = pool.allocate(1)
    for ref in (first, second):
        ref.value.write(b"ordinary")
        assert b"ordinary" == bytes(ref.value)
        ref.release()
    assert 0 == pool.stats().pinned_bytes


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
        ref = pool.allocate(16 * KiB)
    if not can_pin:  # no permission, or a low RLIMIT_MEMLOCK: the documented fallback
        assert [RuntimeWarning] == [w.category for w in caught]
        assert 0 == pool.stats().pinned_bytes
    else:
        assert [] == caught
        assert locked_kib() - before == 16
        assert 16 * KiB == pool.stats().pinned_bytes
    ref.release()


def test_the_default_clock_stamps_returned_buffers_with_time_monotonic() -> None:
    """The compiled build reads the default clock in C: it must be time.monotonic's."""
    import time

    pool = SizedPool(min_size=4 * KiB, max_size=8 * KiB, thread_cache=False)
    before = time.monotonic()
    with pool.allocate(1):
        pass
    after = time.monotonic()
    [(stamp, _)] = pool._classes[0].idle
    assert before - 0.001 <= stamp <= after + 0.001
    assert 0 == pool.trim(3600), "idle for a moment, not an hour"
    assert 4 * KiB == pool.trim()


def test_a_handle_cannot_be_made_already_dead_in_either_build() -> None:
    from objpool._ownedref import handle_for

    with pytest.raises(ValueError, match=r"^index must be >= 0, got -1$"):
        handle_for(small_pool(), ByteBuffer(1), -1)


def test_a_clock_that_raises_in_a_release_changes_nothing() -> None:
    """The clock is user code (an interrupt in a clock that sleeps; any bug). It used to be read
    after the handle died: the buffer was dropped and its bytes stayed counted as lent."""

    class ClockError(Exception):
        pass

    now = [0.0]
    failing = [False]

    def clock() -> float:
        if failing[0]:
            raise ClockError
        return now[0]

    for size in (4 * KiB, 64 * KiB, 1 * MiB):  # cached with thread caches, shared, oversize
        for thread_cache in (False, True):
            pool = SizedPool(min_size=4 * KiB, max_size=64 * KiB, clock=clock, thread_cache=thread_cache)
            ref = pool.allocate(size)
            failing[0] = True
            with pytest.raises(ClockError):
                ref.release()
            failing[0] = False
            assert ref.alive  # the release did not happen: the handle is the caller's still
            assert pool.stats().lent_bytes == size
            ref.release()
            stats = pool.stats()
            assert (stats.lent_bytes, stats.leaks) == (0, 0)


# -- close, name, and the counts of handles ---------------------------------------------------


@pytest.mark.parametrize("thread_cache", [False, True])
def test_close_frees_the_idle_refuses_new_lends_and_frees_what_comes_back(thread_cache: bool) -> None:
    pool = small_pool(thread_cache=thread_cache, name="frames")
    held = [pool.allocate(4 * KiB), pool.allocate(16 * KiB), pool.allocate(100 * KiB)]
    pool.allocate(4 * KiB).release()
    pool.allocate(8 * KiB).release()
    assert (12 * KiB, False, False) == (pool.stats().idle_bytes, pool.closed, pool.stats().closed)
    pool.close()
    pool.close()  # idempotent
    stats = pool.stats()
    assert (0, True, True) == (stats.idle_bytes, pool.closed, stats.closed)
    assert 0 == pool.max_retained
    assert (4 * KiB, 16 * KiB) == (pool.min_size, pool.max_size), "the classes stay as built"
    for n in (0, 4 * KiB, 16 * KiB, 100 * KiB):
        with pytest.raises(PoolClosedError, match=r"^<SizedPool 'frames' .*, closed> is closed and lends nothing more$"):
            pool.allocate(n)
    for ref in held:
        ref.release()  # still allowed; freed, never kept
    stats = pool.stats()
    assert (0, 0, 0) == (stats.lent, stats.lent_bytes, stats.idle_bytes)
    assert (5, 5, 0) == (stats.allocations, stats.deallocations, stats.leaks)
    assert 0 == pool.trim()


def test_name_is_shown_in_repr_and_in_leak_warnings() -> None:
    pool = small_pool(name="uploads")
    assert repr(pool).startswith("<SizedPool 'uploads' 4096..16384 bytes")
    assert "uploads" == pool.name and small_pool().name is None
    ref = pool.allocate(1)
    with pytest.warns(ResourceWarning, match=r"an OwnedRef of <SizedPool 'uploads' "):
        del ref
        gc.collect()
    with pytest.raises(TypeError, match=r"^name must be a str or None, got int 3$"):
        small_pool(name=3)


def test_stats_count_handles_and_bytes_apart() -> None:
    pool = small_pool()
    a, b, c = pool.allocate(1), pool.allocate(5 * KiB), pool.allocate(17 * KiB)
    stats = pool.stats()
    assert (3, 4 * KiB + 8 * KiB + 17 * KiB) == (stats.lent, stats.lent_bytes)
    assert stats.high_water_bytes == stats.lent_bytes
    assert [1, 1, 0] == [cls.lent for cls in stats.classes]
    a.release()
    b.release()
    stats = pool.stats()
    assert (1, 17 * KiB, 12 * KiB) == (stats.lent, stats.lent_bytes, stats.idle_bytes)
    assert (3, 2, 0) == (stats.allocations, stats.deallocations, stats.leaks)
    assert 29 * KiB == stats.high_water_bytes, "the most lent at once, not what is lent now"
    c.release()
    assert 29 * KiB == pool.stats().high_water_bytes


def test_trim_takes_its_age_as_max_idle_seconds() -> None:
    clock = FakeClock()
    pool = small_pool(clock=clock, max_idle_seconds=1000)
    pool.allocate(1).release()
    clock.now += 10
    assert 0 == pool.trim(max_idle_seconds=20.0)
    assert 4 * KiB == pool.trim(max_idle_seconds=5.0)


def test_an_oversize_request_no_buffer_can_hold_counts_nothing() -> None:
    """Found by the differential test: the oversize path counted 2**63 bytes as lent before
    building the buffer that then could not be built, in both builds."""
    pool = small_pool()
    with pytest.raises((OverflowError, MemoryError, ValueError)):
        pool.allocate(2**63)
    stats = pool.stats()
    assert (0, 0, 0, 0) == (stats.lent, stats.lent_bytes, stats.oversize, stats.high_water_bytes)
