"""A Hypothesis state machine drives `BufPool` and checks it against a plain model each step.

The model predicts which block every allocation gets (its class's newest idle block, by
identity, or a new one), which idle blocks are given up to make room (idle memory counts
against the budget: the largest class first, the oldest first within it), what a release
keeps, and every counter in `stats()`. Held allocations live in a plain list (Hypothesis
keeps bundle values referenced, and an allocation must be truly dropped to test leaks).
"""

from __future__ import annotations

import gc

import pytest
from hypothesis import note
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from objpool import BufAllocation, BufPool, ForeignRefError, PoolClosedError, PoolExhaustedError, StaleRefError

SIZE = 64  # bytes per buffer


def size_class(n: int) -> int:
    return (n - 1).bit_length()


class BufPoolMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.pool = BufPool(SIZE, SIZE)
        self.other = BufPool(SIZE, 4 * SIZE)
        self.budget = 1
        self.held: list[tuple[BufAllocation, int, bytearray]] = []
        self.stale: list[BufAllocation] = []
        self.idle: list[list[bytearray]] = []  # by class, oldest first
        self.in_use = 0
        self.allocations = self.hits = self.leaks = self.exhausted = 0
        self.closed = False

    @initialize(budget=st.sampled_from([1, 5, 8, 13, 16]))
    def make_pool(self, budget: int) -> None:
        self.pool = BufPool(SIZE, budget * SIZE + SIZE // 2, name="machine")  # rounded down
        self.budget = budget
        self.idle = [[] for _ in range(size_class(budget) + 1)]

    def idle_buffers(self) -> int:
        return sum(len(blocks) << k for k, blocks in enumerate(self.idle))

    def evict(self) -> None:
        for k in reversed(range(len(self.idle))):
            while self.idle[k] and self.in_use + self.idle_buffers() > self.budget:
                self.idle[k].pop(0)

    def lend(self, n: int, allocation: BufAllocation) -> None:
        block = allocation.view.obj
        assert isinstance(block, bytearray)
        k = size_class(n)
        self.in_use += n
        self.allocations += 1
        if self.idle[k]:
            assert block is self.idle[k].pop(), "the newest idle block of the class"
            self.hits += 1
        else:
            assert all(block is not b for blocks in self.idle for b in blocks)
            assert len(block) == SIZE << k
            self.evict()
        self.held.append((allocation, n, block))

    def fits(self, n: int) -> bool:
        return self.in_use + n <= self.budget

    @rule(data=st.data(), how=st.sampled_from(["allocate", "try_allocate"]))
    def allocate(self, data: st.DataObject, how: str) -> None:
        n = data.draw(st.integers(1, self.budget), label="n")
        if self.closed:
            with pytest.raises(PoolClosedError, match=r"^<BufPool 'machine' .*, closed> is closed and lends nothing more$"):
                self.pool.allocate(n) if how == "allocate" else self.pool.try_allocate(n)
            return
        if not self.fits(n):
            self.exhausted += 1
            if how == "allocate":
                with pytest.raises(PoolExhaustedError, match=rf"^{n} buffers? of {SIZE} bytes do(es)? not fit: "):
                    self.pool.allocate(n)
            else:
                assert self.pool.try_allocate(n) is None
            return
        allocation = self.pool.allocate(n) if how == "allocate" else self.pool.try_allocate(n)
        assert allocation is not None
        assert len(allocation) == n
        self.lend(n, allocation)

    @precondition(lambda self: bool(self.held))
    @rule(data=st.data(), how=st.sampled_from(["release", "deallocate", "with"]))
    def release(self, data: st.DataObject, how: str) -> None:
        allocation, n, block = self.held.pop(data.draw(st.integers(0, len(self.held) - 1), label="which"))
        if how == "release":
            allocation.release()
        elif how == "deallocate":
            self.pool.deallocate(allocation)
        else:
            with allocation:
                pass
        self.stale.append(allocation)
        self.in_use -= n
        buffers = len(block) // SIZE
        if not self.closed and self.in_use + self.idle_buffers() + buffers <= self.budget:
            self.idle[size_class(buffers)].append(block)

    @precondition(lambda self: bool(self.stale))
    @rule(data=st.data())
    def release_again(self, data: st.DataObject) -> None:
        allocation = data.draw(st.sampled_from(self.stale), label="stale")
        with pytest.raises(StaleRefError):
            allocation.release()
        with pytest.raises(StaleRefError):
            self.pool.deallocate(allocation)

    @precondition(lambda self: bool(self.held))
    @rule(data=st.data())
    def deallocate_into_other_pool(self, data: st.DataObject) -> None:
        allocation = data.draw(st.sampled_from(self.held), label="held")[0]
        with pytest.raises(ForeignRefError, match=r"was lent by another pool, not by <BufPool "):
            self.other.deallocate(allocation)
        assert allocation.alive

    @precondition(lambda self: bool(self.held))
    @rule(data=st.data())
    def leak(self, data: st.DataObject) -> None:
        allocation, n, _ = self.held.pop(data.draw(st.integers(0, len(self.held) - 1), label="which"))
        with pytest.warns(ResourceWarning, match=r"^a BufAllocation of \d+ buffers was garbage-collected") as caught:
            del allocation
            gc.collect(0)  # generation 0 proves it in most steps; a full one when an older cycle kept it
            if not caught:
                gc.collect()
        self.leaks += 1
        self.in_use -= n  # the budget comes back at the next call that drains leaks; the block is dropped

    @rule(age=st.sampled_from([0.0, 3600.0]))
    def trim(self, age: float) -> None:
        freed = self.pool.trim(max_idle_seconds=age)
        if age:
            assert freed == 0, "nothing here has been idle an hour"
            return
        assert freed == self.idle_buffers() * SIZE
        self.idle = [[] for _ in self.idle]

    @rule()
    def close(self) -> None:
        self.pool.close()
        self.closed = True
        self.idle = [[] for _ in self.idle]

    @invariant()
    def stats_match_the_model(self) -> None:
        stats = self.pool.stats()
        note(f"{stats}")
        lent = len(self.held)
        assert (stats.lent, stats.allocations, stats.leaks) == (lent, self.allocations, self.leaks)
        assert stats.deallocations == self.allocations - self.leaks - lent
        assert (stats.hits, stats.exhausted, stats.waiting, stats.closed) == (self.hits, self.exhausted, 0, self.closed)
        assert (stats.lent_bytes, stats.idle_bytes, stats.budget_bytes) == (
            self.in_use * SIZE,
            self.idle_buffers() * SIZE,
            self.budget * SIZE,
        )
        assert stats.lent_bytes + stats.idle_bytes <= stats.budget_bytes
        assert stats.lent_bytes <= stats.high_water_bytes <= stats.budget_bytes
        assert self.pool.closed == self.closed

    def teardown(self) -> None:
        for allocation, _, _ in self.held:
            allocation.release()


TestBufPool = BufPoolMachine.TestCase
