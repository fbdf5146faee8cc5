"""Unit tests for `Pool`, `OwnedRef` and `Reset`: each documented behaviour and error."""

from __future__ import annotations

import contextvars
import copy
import dataclasses
import gc
import pickle
import re
import subprocess
import threading
import tracemalloc
import warnings
import weakref
from collections.abc import Callable

import pytest
from child import environment, python

import objpool

from objpool import (
    ByteBuffer,
    ForeignRefError,
    OwnedRef,
    Pool,
    PoolClosedError,
    PoolExhaustedError,
    Reset,
    StaleRefError,
)


class ResetFailed(Exception):
    pass


class Widget:
    """A pooled object that records its resets and can be told to fail one."""

    __slots__ = ("dirty", "fail_next", "resets")

    def __init__(self) -> None:
        self.dirty = False
        self.fail_next = False
        self.resets = 0

    def reset(self) -> None:
        self.resets += 1
        if self.fail_next:
            raise ResetFailed("reset failed on purpose")
        self.dirty = False


def counts(pool: Pool[Widget]) -> tuple[int, int, int]:
    s = pool.stats()
    return s.capacity, s.lent, s.free


# -- construction ------------------------------------------------------------------------


def test_new_pool_builds_every_object_up_front() -> None:
    built: list[Widget] = []

    def factory() -> Widget:
        built.append(Widget())
        return built[-1]

    pool = Pool(factory, 3)
    assert len(built) == 3
    assert pool.capacity == 3
    assert repr(pool) == "<Pool 0/3 lent, 3 free>"


def test_name_shows_in_repr() -> None:
    pool = Pool(Widget, 2, name="frames")
    assert pool.name == "frames"
    assert repr(pool) == "<Pool 'frames' 0/2 lent, 2 free>"


@pytest.mark.parametrize(
    ("capacity", "error", "message"),
    [
        (0, ValueError, r"^capacity must be >= 1, got int 0$"),
        (-5, ValueError, r"^capacity must be >= 1, got int -5$"),
        ("3", TypeError, r"^capacity must be an int, got str '3'$"),
        (2.0, TypeError, r"^capacity must be an int, got float 2\.0$"),
        (True, TypeError, r"^capacity must be an int, got bool True$"),
    ],
)
def test_bad_capacity_is_refused(capacity: object, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        Pool(Widget, capacity)  # type: ignore[call-overload]  # the point of the test


def test_factory_must_be_callable() -> None:
    with pytest.raises(TypeError, match=r"^factory must be callable, got int 3$"):
        Pool(3, 2)  # type: ignore[call-overload]  # the point of the test


def test_objects_without_reset_need_reset_argument() -> None:
    with pytest.raises(TypeError, match=r"^factory\(\) gave 'list', which has no reset\(\) method; pass reset="):
        Pool(list, 2)  # type: ignore[type-var]  # mypy rejects it too: the point of the test


def test_reset_argument_must_be_callable() -> None:
    with pytest.raises(TypeError, match=r"^reset must be callable, got str 'clear'$"):
        Pool(list, 2, reset="clear")  # type: ignore[call-overload]  # the point of the test


def test_factory_returning_one_object_twice_is_refused() -> None:
    shared = Widget()
    with pytest.raises(ValueError, match=r"^factory\(\) must give distinct objects; #1 is #0 again"):
        Pool(lambda: shared, 2)


def test_name_must_be_a_string() -> None:
    with pytest.raises(TypeError, match=r"^name must be a str or None, got int 7$"):
        Pool(Widget, 1, name=7)  # type: ignore[call-overload]  # the point of the test


def test_reset_argument_pools_any_type() -> None:
    pool: Pool[list[int]] = Pool(list, 2, reset=list.clear)
    with pool.allocate() as items:
        items.extend([1, 2, 3])
    with pool.allocate() as items:
        assert items == []


def test_from_items_lends_the_given_objects() -> None:
    widgets = [Widget(), Widget()]
    pool = Pool.from_items(widgets, name="mine")
    assert pool.capacity == 2
    refs = [pool.allocate(), pool.allocate()]
    assert {id(r.value) for r in refs} == {id(w) for w in widgets}
    for r in refs:
        r.release()


def test_from_items_refuses_empty_duplicate_and_resetless_items() -> None:
    w = Widget()
    with pytest.raises(ValueError, match=r"^items must hold at least one object, got none$"):
        Pool.from_items([])
    with pytest.raises(ValueError, match=r"^items must give distinct objects; #1 is #0 again"):
        Pool.from_items([w, w])
    with pytest.raises(TypeError, match=r"^items gave 'int', which has no reset\(\) method"):
        Pool.from_items([1, 2])  # type: ignore[type-var]  # mypy rejects it too
    assert Pool.from_items([[1], [2]], reset=list.clear).capacity == 2


def test_reset_protocol_is_runtime_checkable() -> None:
    assert isinstance(Widget(), Reset)
    assert isinstance(ByteBuffer(1), Reset)
    assert not isinstance([], Reset)


# -- lending and returning ---------------------------------------------------------------


def test_reuse_is_lifo() -> None:
    pool = Pool(Widget, 3)
    a, b = pool.allocate(), pool.allocate()
    wa, wb = a.value, b.value
    a.release()
    b.release()
    first, second = pool.allocate(), pool.allocate()
    assert first.value is wb  # most recently released first
    assert second.value is wa
    first.release()
    second.release()


def test_exhaustion_raises_and_changes_nothing() -> None:
    pool = Pool(Widget, 2)
    held = [pool.allocate(), pool.allocate()]
    with pytest.raises(PoolExhaustedError, match=r"^all 2 objects of <Pool 2/2 lent, 0 free> are lent out$"):
        pool.allocate()
    assert pool.try_allocate() is None
    assert counts(pool) == (2, 2, 0)
    assert pool.stats().exhausted == 2
    held[0].release()
    again = pool.try_allocate()
    assert again is not None
    for ref in (again, held[1]):
        ref.release()


def test_reset_runs_once_per_release_and_never_at_allocation() -> None:
    pool = Pool(Widget, 1)
    ref = pool.allocate()
    widget = ref.value
    assert widget.resets == 0
    widget.dirty = True
    ref.release()
    assert widget.resets == 1
    assert not widget.dirty
    pool.allocate().release()
    assert widget.resets == 2


def test_release_kills_the_handle_for_good() -> None:
    pool = Pool(Widget, 2)
    ref = pool.allocate()
    assert ref.alive
    pool.deallocate(ref)
    assert not ref.alive
    with pytest.raises(StaleRefError, match=r"^<OwnedRef released Widget from <Pool 0/2 lent, 2 free>> was released"):
        ref.value  # noqa: B018 - the read is the test
    with pytest.raises(StaleRefError, match=r"was already released$"):
        ref.release()
    with pytest.raises(StaleRefError, match=r"was already released$"):
        pool.deallocate(ref)
    assert counts(pool) == (2, 0, 2)  # free would be 3 had an index been pushed twice


# -- handle reuse: a released handle nobody holds comes back; one somebody holds never does


def test_a_released_handle_nobody_holds_is_reused() -> None:
    """Where reference counts are exact; elsewhere (free-threaded builds) reuse is off."""
    if not objpool._pool._COUNTS_ARE_EXACT:
        assert objpool._pool._SOLE_HOLDER == 0, "no count may be trusted here"
        return
    pool = Pool(Widget, 1)
    ref = pool.allocate()
    first = id(ref)
    ref.release()
    del ref  # the pool keeps the dead handle, so no other object can take its address
    again = pool.allocate()
    assert id(again) == first, "the parked handle was revived instead of building a new one"
    assert again.alive and again.value.resets == 1
    again.release()
    assert (pool.stats().allocations, pool.stats().deallocations) == (2, 2)


def test_the_calibration_trusts_no_count_where_counts_are_not_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    """It returns 0, which no reference count equals: every allocation builds a new handle."""
    monkeypatch.setattr(objpool._pool, "_COUNTS_ARE_EXACT", False)
    assert objpool._pool._sole_holder_count() == 0


def test_a_released_handle_someone_holds_stays_dead_for_good() -> None:
    pool = Pool(Widget, 1)
    stale = pool.allocate()
    stale.release()
    for _ in range(3):  # the slot is lent and released again; the stale holder never revives
        with pool.allocate() as widget:
            assert not stale.alive
            with pytest.raises(StaleRefError):
                stale.value  # noqa: B018 - the read is the test
            with pytest.raises(StaleRefError):
                stale.release()
            assert widget.resets == pool.stats().deallocations
    fresh = pool.allocate()
    assert fresh is not stale and fresh.alive and not stale.alive
    fresh.release()
    assert counts(pool) == (1, 0, 1)


def test_a_revived_handle_that_leaks_is_caught_like_any_other() -> None:
    pool = Pool(Widget, 1)
    with pool.allocate():
        pass  # the handle is parked now
    ref = pool.allocate()  # revived
    leaked = ref.value
    with pytest.warns(ResourceWarning, match=r"garbage-collected while still live"):
        del ref
        gc.collect()
    s = pool.stats()
    assert (s.leaks, s.lent, s.free) == (1, 0, 1)
    with pool.allocate() as fresh:
        assert fresh is not leaked


def test_a_handle_whose_reset_failed_is_never_revived() -> None:
    pool = Pool(Widget, 1)
    ref = pool.allocate()
    broken = ref.value
    broken.fail_next = True
    with pytest.raises(ResetFailed):
        ref.release()
    del ref
    with pool.allocate() as fresh:
        assert fresh is not broken  # the rebuilt slot's object, through a new handle
    assert pool.stats().reset_failures == 1


def test_a_dropped_pool_caching_handles_is_collected() -> None:
    """Parked handles refer to their pool: the cycle is the garbage collector's to free."""
    pool = Pool(Widget, 2)
    with pool.allocate():
        pass
    watcher = weakref.ref(pool)
    del pool
    gc.collect()
    assert watcher() is None


def test_foreign_handle_is_refused_and_neither_pool_changes() -> None:
    mine, theirs = Pool(Widget, 2, name="mine"), Pool(Widget, 2, name="theirs")
    ref = theirs.allocate()
    with pytest.raises(ForeignRefError, match=r"was lent by another pool, not by <Pool 'mine' 0/2 lent, 2 free>$"):
        mine.deallocate(ref)
    assert counts(mine) == (2, 0, 2)
    assert counts(theirs) == (2, 1, 1)
    assert ref.alive
    assert ref.pool is theirs
    ref.release()
    assert counts(theirs) == (2, 0, 2)


def test_deallocate_refuses_non_handles() -> None:
    pool = Pool(Widget, 1)
    with pytest.raises(TypeError, match=r"^ref must be an OwnedRef, got Widget <"):
        pool.deallocate(Widget())  # type: ignore[arg-type]  # the point of the test


def test_context_manager_releases_at_exit_even_on_error() -> None:
    pool = Pool(Widget, 1)
    with pool.allocate() as widget:
        widget.dirty = True
        assert pool.lent == 1
    assert pool.lent == 0
    assert not widget.dirty
    with pytest.raises(KeyError), pool.allocate() as widget:
        raise KeyError("boom")
    assert pool.lent == 0


def test_handles_cannot_be_forged_copied_or_pickled() -> None:
    pool = Pool(Widget, 1)
    forged: OwnedRef[Widget] = OwnedRef()
    with pytest.raises(TypeError, match=r"^this OwnedRef was not made by Pool.allocate\(\)"):
        forged.value  # noqa: B018 - the read is the test
    with pytest.raises(TypeError, match=r"^this OwnedRef was not made by Pool.allocate\(\)"):
        pool.deallocate(forged)
    assert repr(forged) == "<OwnedRef not made by a pool>"
    del forged  # its __del__ must stay quiet (filterwarnings=error would catch a warning)
    ref = pool.allocate()
    with pytest.raises(TypeError, match=r"^OwnedRef cannot be copied"):
        copy.copy(ref)
    with pytest.raises(TypeError, match=r"^OwnedRef cannot be copied"):
        copy.deepcopy(ref)
    with pytest.raises(TypeError, match=r"^OwnedRef cannot be pickled"):
        pickle.dumps(ref)
    with pytest.raises(TypeError, match=r"^Pool cannot be copied"):
        copy.copy(pool)
    with pytest.raises(TypeError, match=r"^Pool cannot be pickled"):
        pickle.dumps(pool)
    ref.release()


# -- failing resets ----------------------------------------------------------------------


def test_failed_reset_replaces_the_object_from_the_factory() -> None:
    pool = Pool(Widget, 2)
    ref = pool.allocate()
    broken = ref.value
    broken.fail_next = True
    with pytest.raises(ResetFailed):
        ref.release()
    assert not ref.alive
    s = pool.stats()
    assert (s.capacity, s.lent, s.free, s.reset_failures, s.retired) == (2, 0, 2, 1, 0)
    lent = [pool.allocate(), pool.allocate()]
    assert all(r.value is not broken for r in lent)  # the half-reset object never comes back
    for r in lent:
        r.release()


def test_failed_reset_retires_the_slot_without_a_factory() -> None:
    a, b = Widget(), Widget()
    pool = Pool.from_items([a, b])
    ref = pool.allocate()
    ref.value.fail_next = True
    with pytest.raises(ResetFailed):
        pool.deallocate(ref)
    s = pool.stats()
    assert (s.capacity, s.lent, s.free, s.retired) == (1, 0, 1, 1)
    assert repr(pool) == "<Pool 0/1 lent, 1 free>"
    with pool.allocate() as other:
        assert other is b
        with pytest.raises(PoolExhaustedError, match=r"^all 1 objects of"):
            pool.allocate()


def test_factory_failing_to_rebuild_retires_the_slot_with_a_warning() -> None:
    calls = 0

    def factory() -> Widget:
        nonlocal calls
        calls += 1
        if calls > 2:
            raise OSError("out of widgets")
        return Widget()

    pool = Pool(factory, 2)
    ref = pool.allocate()
    ref.value.fail_next = True
    with pytest.raises(ResetFailed), pytest.warns(RuntimeWarning, match=r"factory\(\) failed to rebuild a slot") as caught:
        ref.release()
    assert [__file__] == [w.filename for w in caught], "the warning points at the release, not at objpool"
    assert pool.stats().retired == 1
    assert pool.capacity == 1


# -- leaks -------------------------------------------------------------------------------


def test_leaked_handle_warns_and_its_slot_gets_a_fresh_object() -> None:
    pool = Pool(Widget, 1, name="conns")
    ref = pool.allocate()
    leaked = ref.value
    with pytest.warns(ResourceWarning, match=r"^an OwnedRef of <Pool 'conns' 0/1 lent, 1 free> was garbage-collected"):
        del ref
        gc.collect()
    s = pool.stats()
    assert (s.leaks, s.lent, s.free, s.capacity) == (1, 0, 1, 1)
    with pool.allocate() as fresh:
        assert fresh is not leaked  # it may still be referenced: never lend it again


def test_leaked_handle_without_factory_retires_its_slot() -> None:
    pool = Pool.from_items([Widget(), Widget()])
    with pytest.warns(ResourceWarning):
        pool.allocate()  # dropped at once: a leak
    s = pool.stats()
    assert (s.leaks, s.retired, s.capacity, s.free) == (1, 1, 1, 1)


def test_leak_warning_points_at_the_user_s_code() -> None:
    pool = Pool(Widget, 1)
    ref = pool.allocate()
    with pytest.warns(ResourceWarning) as caught:
        del ref  # this line, not objpool/_pool.py
    assert [__file__] == [w.filename for w in caught]


def test_factory_raising_a_base_exception_retires_the_slot() -> None:
    """D4: the slot was lost (lent=1 with no handle, deallocations=-1) and the pool stuck."""
    fail = False

    def factory() -> Widget:
        if fail:
            raise KeyboardInterrupt
        return Widget()

    pool = Pool(factory, 1)
    ref = pool.allocate()
    ref.value.fail_next = True
    fail = True
    with pytest.raises(KeyboardInterrupt):
        ref.release()  # the reset fails, then the rebuild
    s = pool.stats()
    assert (s.capacity, s.lent, s.free, s.retired, s.reset_failures) == (0, 0, 0, 1, 1)
    assert (s.allocations, s.deallocations) == (1, 0)

    fail = False
    pool = Pool(factory, 2)
    leaked = pool.allocate()
    fail = True
    with pytest.warns(ResourceWarning):
        del leaked
    with pytest.raises(KeyboardInterrupt):
        pool.stats()  # draining the leak calls the failing factory
    s = pool.stats()
    assert (s.capacity, s.lent, s.free, s.retired, s.leaks) == (1, 0, 1, 1, 1)
    assert (s.allocations, s.deallocations) == (1, 0)


def run_bounded(call: Callable[[], object]) -> None:
    """Run `call` on a thread; fail (not hang) if it does not return within 5 s."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            call()
        except BaseException as exc:  # reported below
            errors.append(exc)

    # In a copy of this thread's context: where warnings are context-aware (3.14's flag, on by
    # default on free-threaded builds) the caller's catch_warnings() reaches the thread only so.
    t = threading.Thread(target=contextvars.copy_context().run, args=(target,), daemon=True)
    t.start()
    t.join(5)
    assert not t.is_alive(), "a reentrant call into the pool hung"
    assert [] == errors


def test_a_factory_may_call_back_into_its_pool() -> None:
    """D5: factory() ran under the pool's lock, so stats() or try_allocate() in it hung."""
    seen: list[object] = []
    pool: Pool[Widget] | None = None

    def factory() -> Widget:
        if pool is not None:
            seen.append(pool.stats().lent)
            seen.append(pool.try_allocate())
        return Widget()

    pool = Pool(factory, 1)
    ref = pool.allocate()
    ref.value.fail_next = True

    def release() -> None:
        with pytest.raises(ResetFailed):
            ref.release()  # rebuilds the slot with factory()

    run_bounded(release)
    assert [1, None] == seen  # the slot being rebuilt counts as lent until it is free again
    assert 1 == pool.free


def test_a_dropped_object_s_finaliser_may_call_back_into_its_pool() -> None:
    """D5: a leaked object's __del__ ran inside the refill, under the lock."""
    seen: list[int] = []
    pool: Pool[Widget] | None = None

    class Finalising(Widget):
        def __del__(self) -> None:
            if pool is not None:
                seen.append(pool.lent)

    pool = Pool(Finalising, 1)
    ref = pool.allocate()
    with pytest.warns(ResourceWarning):
        del ref  # the object is referenced only by the pool's array now

    run_bounded(pool.stats)  # drains the leak: the old object is dropped, its __del__ runs
    assert [0] == seen


def test_a_warnings_handler_may_call_back_into_the_pool() -> None:
    """No lock is held while a leak warning is shown."""
    pool = Pool(Widget, 1)
    seen: list[int] = []

    def show(message: Warning | str, *args: object, **kwargs: object) -> None:
        seen.append(pool.stats().leaks)

    ref = pool.allocate()
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = show  # a handler that calls back in

        def leak() -> None:
            nonlocal ref
            del ref

        run_bounded(leak)
    assert [1] == seen, "the handler's own stats() call found and counted the leak"
    assert 1 == pool.stats().leaks


def test_leak_warning_says_where_the_handle_was_allocated() -> None:
    pool = Pool(Widget, 1)
    tracemalloc.start(5)
    try:
        ref = pool.allocate()
        with pytest.warns(ResourceWarning, match=r"allocated at .*test_pool\.py:\d+"):
            del ref
    finally:
        tracemalloc.stop()


def test_released_handles_are_not_leaks() -> None:
    pool = Pool(Widget, 1)
    pool.allocate().release()
    with pool.allocate():
        pass
    gc.collect()
    assert pool.stats().leaks == 0


# -- close and stats ---------------------------------------------------------------------


def test_close_stops_lending_but_takes_handles_back() -> None:
    pool = Pool(Widget, 2)
    ref = pool.allocate()
    pool.close()
    pool.close()  # idempotent
    assert pool.closed
    with pytest.raises(PoolClosedError, match=r"^<Pool 1/2 lent, 1 free, closed> is closed and lends nothing more$"):
        pool.allocate()
    with pytest.raises(PoolClosedError):
        pool.try_allocate()  # closed is not the same as full
    ref.release()
    assert counts(pool) == (2, 0, 2)
    assert pool.stats().closed


def test_stats_add_up() -> None:
    pool = Pool(Widget, 3)
    refs = [pool.allocate() for _ in range(3)]
    refs[0].release()
    refs[1].value.fail_next = True
    with pytest.raises(ResetFailed):
        refs[1].release()
    with pytest.warns(ResourceWarning):
        refs.pop(2)
        pool.try_allocate()  # leaked again at once
    s = pool.stats()
    assert (s.allocations, s.deallocations, s.reset_failures, s.leaks, s.lent) == (4, 1, 1, 2, 0)
    assert (s.high_water, s.free, s.capacity) == (3, 3, 3)


def test_stats_are_an_immutable_snapshot() -> None:
    pool = Pool(Widget, 1)
    before = pool.stats()
    ref = pool.allocate()
    assert before.lent == 0
    with pytest.raises(dataclasses.FrozenInstanceError):
        before.lent = 5  # type: ignore[misc]  # frozen: the point of the test
    ref.release()


def test_high_water_is_the_most_lent_at_once() -> None:
    pool = Pool(Widget, 5)
    for _ in range(3):
        refs = [pool.allocate() for _ in range(2)]
        for r in refs:
            r.release()
    assert pool.stats().high_water == 2
    refs = [pool.allocate() for _ in range(4)]
    assert pool.stats().high_water == 4
    for r in refs:
        r.release()


def test_handle_repr_names_object_and_pool() -> None:
    pool = Pool(Widget, 4)  # its own, not a fixture's: `--parallel-threads` shares fixtures
    ref = pool.allocate()
    assert re.fullmatch(r"<OwnedRef live Widget from <Pool 1/4 lent, 3 free>>", repr(ref))
    ref.release()
    assert re.fullmatch(r"<OwnedRef released Widget from <Pool 0/4 lent, 4 free>>", repr(ref))


def test_a_capacity_no_list_can_hold_is_refused_at_once() -> None:
    """It used to build objects until the machine ran out of memory."""
    built: list[object] = []

    def factory() -> Widget:
        built.append(None)
        return Widget()

    with pytest.raises(ValueError, match=r"^capacity must be <= \d+ \(the most slots a list can hold\), got int 1180591620717411303424$"):
        Pool(factory, 2**70)
    assert [] == built


def test_a_tracer_at_import_cannot_make_a_held_handle_revivable() -> None:
    """A tracer that reads `frame.f_locals` (debuggers, snoopers) adds a reference on CPython
    before 3.13. Imported under one, the pure build used to calibrate its sole-holder count
    one too high, and then revived a handle its user still held: `new is old`."""
    script = """
import sys
def tracer(frame, event, arg):
    if frame.f_code.co_name != "<module>":  # (3.12 breaks module code whose locals are read)
        frame.f_locals  # a snapshot that holds every local
    return tracer
sys.settrace(tracer)
import objpool
sys.settrace(None)
class Widget:
    def reset(self):
        pass
pool = objpool.Pool(Widget, 1)
old = pool.allocate()
old.release()
new = pool.allocate()  # `old` is still held here: it must stay dead
print(new is old, old.alive)
"""
    run = subprocess.run(python("-c", script), env=environment(), capture_output=True, text=True, timeout=60, check=True)
    assert "False False" == run.stdout.strip()
