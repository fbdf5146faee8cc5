"""A Hypothesis state machine drives `Pool` and checks it against a plain model each step.

Held handles live in plain lists rather than Hypothesis bundles: Hypothesis keeps bundle
values referenced for its reports, and a handle must be truly dropped to test leaks.
"""

from __future__ import annotations

import gc

import pytest
from hypothesis import note
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from objpool import ForeignRefError, OwnedRef, Pool, PoolClosedError, PoolExhaustedError, StaleRefError


class ResetFailed(Exception):
    pass


class Widget:
    __slots__ = ("dirty", "fail_next")

    def __init__(self) -> None:
        self.dirty = False
        self.fail_next = False

    def reset(self) -> None:
        if self.fail_next:
            raise ResetFailed
        self.dirty = False


class PoolMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.pool: Pool[Widget] = Pool(Widget, 1)
        self.other: Pool[Widget] = Pool(Widget, 1)
        self.held: list[OwnedRef[Widget]] = []
        self.stale: list[OwnedRef[Widget]] = []
        # The model.
        self.capacity = 1
        self.has_factory = True
        self.closed = False
        self.banned: list[Widget] = []  # kept alive, so their ids cannot be reused
        self.allocations = self.deallocations = self.exhausted = 0
        self.leaks = self.reset_failures = 0

    @initialize(capacity=st.integers(1, 6), has_factory=st.booleans(), thread_cache=st.booleans())
    def make_pool(self, capacity: int, has_factory: bool, thread_cache: bool) -> None:
        if has_factory:
            self.pool = Pool(Widget, capacity, thread_cache=thread_cache)
        else:
            self.pool = Pool.from_items([Widget() for _ in range(capacity)], thread_cache=thread_cache)
        self.capacity, self.has_factory = capacity, has_factory

    def has_room(self) -> bool:
        return len(self.held) < self.capacity

    def lose_slot(self, widget: Widget) -> None:
        """The model of a failed reset or a leak: the object leaves circulation."""
        self.banned.append(widget)
        if not self.has_factory:
            self.capacity -= 1

    def lent(self, ref: OwnedRef[Widget]) -> None:
        widget = ref.value
        assert all(widget is not h.value for h in self.held), "same object lent twice"
        assert all(widget is not b for b in self.banned), "a leaked or broken object was lent again"
        assert not widget.dirty, "object came back without reset()"
        widget.dirty = True
        self.held.append(ref)
        self.allocations += 1

    @precondition(lambda self: self.has_room() and not self.closed)
    @rule(use_try=st.booleans())
    def allocate(self, use_try: bool) -> None:
        ref = self.pool.try_allocate() if use_try else self.pool.allocate()
        assert ref is not None
        self.lent(ref)

    @precondition(lambda self: not self.has_room() and not self.closed)
    @rule()
    def allocate_when_full(self) -> None:
        with pytest.raises(PoolExhaustedError):
            self.pool.allocate()
        assert self.pool.try_allocate() is None
        self.exhausted += 2

    @precondition(lambda self: self.closed)
    @rule()
    def allocate_when_closed(self) -> None:
        with pytest.raises(PoolClosedError):
            self.pool.allocate()

    @precondition(lambda self: bool(self.held))
    @rule(data=st.data(), how=st.sampled_from(["release", "deallocate", "with"]))
    def release(self, data: st.DataObject, how: str) -> None:
        ref = self.held.pop(data.draw(st.integers(0, len(self.held) - 1)))
        if how == "release":
            ref.release()
        elif how == "deallocate":
            self.pool.deallocate(ref)
        else:
            with ref:
                pass
        self.stale.append(ref)
        self.deallocations += 1

    @precondition(lambda self: bool(self.held))
    @rule(data=st.data())
    def release_with_failing_reset(self, data: st.DataObject) -> None:
        ref = self.held.pop(data.draw(st.integers(0, len(self.held) - 1)))
        widget = ref.value
        widget.fail_next = True
        with pytest.raises(ResetFailed):
            ref.release()
        self.stale.append(ref)
        self.reset_failures += 1
        self.lose_slot(widget)

    @precondition(lambda self: bool(self.stale))
    @rule(data=st.data())
    def release_again(self, data: st.DataObject) -> None:
        ref = data.draw(st.sampled_from(self.stale))
        with pytest.raises(StaleRefError):
            ref.release()
        with pytest.raises(StaleRefError):
            ref.value  # noqa: B018 - the read is the test

    @precondition(lambda self: bool(self.held))
    @rule(data=st.data())
    def release_into_other_pool(self, data: st.DataObject) -> None:
        ref = data.draw(st.sampled_from(self.held))
        with pytest.raises(ForeignRefError):
            self.other.deallocate(ref)
        with self.other.allocate() as theirs:
            assert all(theirs is not h.value for h in self.held)

    @precondition(lambda self: bool(self.held))
    @rule(data=st.data())
    def leak(self, data: st.DataObject) -> None:
        ref = self.held.pop(data.draw(st.integers(0, len(self.held) - 1)))
        widget = ref.value
        with pytest.warns(ResourceWarning) as caught:
            del ref
            # A generation-0 collection proves it in most steps at a tenth of a full one's
            # cost; a handle an older cycle kept (a traceback that saw it) needs a full one.
            gc.collect(0)
            if not caught:
                gc.collect()
        self.leaks += 1
        self.lose_slot(widget)

    @rule()
    def close(self) -> None:
        self.pool.close()
        self.closed = True

    @invariant()
    def pool_agrees_with_model(self) -> None:
        s = self.pool.stats()
        note(f"{self.pool!r} {s}")
        assert s.lent == len(self.held) == self.pool.lent  # the O(1) properties agree
        assert s.free == self.pool.free
        assert s.capacity == self.capacity
        assert s.free == self.capacity - len(self.held)
        assert s.closed == self.closed
        assert (s.allocations, s.deallocations, s.exhausted) == (
            self.allocations,
            self.deallocations,
            self.exhausted,
        )
        assert (s.leaks, s.reset_failures) == (self.leaks, self.reset_failures)
        assert s.retired == (0 if self.has_factory else self.leaks + self.reset_failures)

    @invariant()
    def no_index_is_free_twice(self) -> None:
        # The one private read here: lending every free object to check them would change
        # the counters this machine models, and a duplicate index would only show later.
        free = self.pool._free
        assert len(free) == len(set(free))

    @invariant()
    def handles_know_they_are_live(self) -> None:
        assert all(ref.alive for ref in self.held)
        assert not any(ref.alive for ref in self.stale)

    def teardown(self) -> None:
        for ref in self.held:  # release what the run left lent, so nothing leaks
            ref.release()


TestPool = PoolMachine.TestCase
