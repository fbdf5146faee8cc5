"""A Hypothesis state machine drives `BufPool` and checks it against a plain model each step.

The model predicts which block every allocation gets (its class's newest idle block, by
identity, or a new one), which idle blocks are given up to make room (idle memory counts
against the budget: the largest class first, the oldest first within it), what a release
keeps, and every counter in `stats()`. Held allocations live in a plain list (Hypothesis
keeps bundle values referenced, and an allocation must be truly dropped to test leaks).

Waiters are asyncio tasks on a loop the machine runs between steps, so the order is exact.
The model keeps the line: first come, first served, with head-of-line blocking; a release,
a leak found, or a waiter leaving grants the head while its request fits, charging the
budget (and giving up idle blocks to make room) at the grant; the task takes its class's
newest idle block when it next runs. The edge cases are rules: a close with waiters in line,
a cancellation before the grant, and a cancellation at the moment of the grant (the task
granted, its wake-up not yet run), whose budget must go on to the next in line.

The machine draws `thread_cache`. With it on, the model keeps this thread's cache (made by
its first `allocate()`; a thread that only releases keeps nothing): the blocks a release
kept (their budget still charged), which a request of the same size takes back newest first
(a request of another size in the class gives the class's newest kept block to the shared
idle blocks, then takes the shared path), and which every request that does not fit, every
task's acquire, `trim()` and `close()` give back to the shared budget, newest first.
"""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest
from hypothesis import event, note
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
        self.in_use = 0  # charged: lent, granted, and kept in this thread's cache
        self.kept: list[tuple[int, bytearray]] = []  # this thread's cache, newest last
        self.cached = False
        self.has_cache = False  # made by this thread's first allocate() on the fast path
        self.allocations = self.hits = self.leaks = self.exhausted = 0
        self.closed = False
        self.loop = asyncio.new_event_loop()
        self.line: list[tuple[int, asyncio.Task[Any]]] = []  # waiting, oldest first
        self.granted: list[tuple[int, asyncio.Task[Any]]] = []  # granted, not yet run: in wake order
        self.refused: list[tuple[asyncio.Task[Any], str]] = []  # closed: the message expected

    @initialize(budget=st.sampled_from([1, 5, 8, 13, 16, 40, 64]), cached=st.booleans())
    def make_pool(self, budget: int, cached: bool) -> None:
        self.pool = BufPool(SIZE, budget * SIZE + SIZE // 2, name="machine", thread_cache=cached)  # rounded down
        self.cached = cached
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

    def kept_buffers(self) -> int:
        return sum(n for n, _ in self.kept)

    def reclaim(self) -> None:
        """The cache's blocks back to the shared budget, newest first, each kept idle if it fits."""
        while self.kept:
            n, block = self.kept.pop()
            self.in_use -= n
            buffers = len(block) // SIZE
            if not self.closed and self.in_use + self.idle_buffers() + buffers <= self.budget:
                self.idle[size_class(buffers)].append(block)

    def run_loop(self) -> None:
        """Let every woken task run, and the grants their leaving makes, to the end."""

        async def settle() -> None:
            for _ in range(20):
                await asyncio.sleep(0)

        self.loop.run_until_complete(settle())

    def charge(self, n: int) -> None:
        """A grant (or a lend by the waiting path): charged now, idle blocks given up to make
        room; the block is taken, and the allocation counted, when the task runs
        (`take_block`): a grant cancelled before that is no allocation, as in `Pool`."""
        self.in_use += n
        self.evict()

    def take_block(self, n: int, allocation: BufAllocation) -> None:
        block = allocation.view.obj
        assert isinstance(block, bytearray) and len(allocation) == n
        self.allocations += 1
        k = size_class(n)
        if self.idle[k]:
            assert block is self.idle[k].pop(), "the newest idle block of the class"
            self.hits += 1
        else:
            assert all(block is not b for blocks in self.idle for b in blocks)
            assert len(block) == SIZE << k
        self.held.append((allocation, n, block))

    def serve(self) -> list[tuple[int, asyncio.Task[Any]]]:
        """Grant the head of the line while its request fits; the grants, in order."""
        granted = []
        while self.line and self.fits(self.line[0][0]):
            n, task = self.line.pop(0)
            self.charge(n)
            granted.append((n, task))
        self.granted.extend(granted)
        return granted

    def settle(self) -> None:
        """Run the loop; every granted task must now hold its allocation, in grant order."""
        self.run_loop()
        for n, task in self.granted:
            assert task.done() and not task.cancelled(), task
            self.take_block(n, task.result())
        self.granted = []
        for task, message in self.refused:
            assert task.done()
            with pytest.raises(PoolClosedError, match=message):
                task.result()
        self.refused = []
        assert all(not task.done() for _, task in self.line)

    @rule(data=st.data(), how=st.sampled_from(["allocate", "try_allocate"]))
    def allocate(self, data: st.DataObject, how: str) -> None:
        if bool(self.kept) and data.draw(st.booleans(), label="a class this thread's cache keeps"):
            k = size_class(data.draw(st.sampled_from([m for m, _ in self.kept]), label="kept"))
            n = data.draw(st.integers((1 << k >> 1) + 1, min(1 << k, self.budget)), label="n")  # its size, or another
        else:
            n = data.draw(st.integers(1, min(2, self.budget)) | st.integers(1, self.budget), label="n")  # small: kept
        if self.closed:
            with pytest.raises(PoolClosedError, match=r"^<BufPool 'machine' .*, closed> is closed and lends nothing more$"):
                self.pool.allocate(n) if how == "allocate" else self.pool.try_allocate(n)
            return
        if self.cached and not self.line:  # this thread's cache first: the newest block of size n
            self.has_cache = True
            same_class = [i for i, (m, _) in enumerate(self.kept) if m != n and size_class(m) == size_class(n)]
            for i in reversed(range(len(self.kept))):
                if self.kept[i][0] == n:
                    block = self.kept.pop(i)[1]
                    allocation = self.pool.allocate(n) if how == "allocate" else self.pool.try_allocate(n)
                    assert allocation is not None and allocation.view.obj is block, "the kept block"
                    event("allocate: from this thread's cache")
                    self.allocations += 1
                    self.hits += 1
                    self.held.append((allocation, n, block))
                    return
            if same_class:  # the newest block of its class, kept for another size: to the shared idle blocks
                m, block = self.kept.pop(same_class[-1])
                self.in_use -= m
                if self.in_use + self.idle_buffers() + (len(block) // SIZE) <= self.budget:
                    self.idle[size_class(m)].append(block)
                event("allocate: its class's kept block shared")
        if not self.line and self.fits(n):  # the fast path
            allocation = self.pool.allocate(n) if how == "allocate" else self.pool.try_allocate(n)
            assert allocation is not None
            assert len(allocation) == n
            self.lend(n, allocation)
            return
        self.reclaim()  # the slow path takes back what the cache keeps, then charges as a grant
        if self.line or not self.fits(n):
            self.exhausted += 1
            if how == "allocate":
                with pytest.raises(PoolExhaustedError, match=rf"^{n} buffers? of {SIZE} bytes do(es)? not fit: "):
                    self.pool.allocate(n)
            else:
                assert self.pool.try_allocate(n) is None
            return
        allocation = self.pool.allocate(n) if how == "allocate" else self.pool.try_allocate(n)
        assert allocation is not None
        self.charge(n)
        self.take_block(n, allocation)

    @precondition(lambda self: bool(self.held))
    @rule(data=st.data(), how=st.sampled_from(["release", "deallocate", "with"]), cancel_granted=st.booleans())
    def release(self, data: st.DataObject, how: str, cancel_granted: bool) -> None:
        allocation, n, block = self.held.pop(data.draw(st.integers(0, len(self.held) - 1), label="which"))
        if how == "release":
            allocation.release()
        elif how == "deallocate":
            self.pool.deallocate(allocation)
        else:
            with allocation:
                pass
        self.stale.append(allocation)
        if self.has_cache and not (self.closed or self.line) and len(self.kept) < 4 and self.budget - self.in_use >= 4 * n:
            self.kept.append((n, block))  # into this thread's cache, its budget still charged
            event("release: kept in this thread's cache")
            return
        self.in_use -= n
        buffers = len(block) // SIZE
        if not self.closed and self.in_use + self.idle_buffers() + buffers <= self.budget:
            self.idle[size_class(buffers)].append(block)
        granted = self.serve()
        event(f"release granted {len(granted)}, cancel {cancel_granted}")
        if cancel_granted and granted:
            # At the moment of the hand-off: granted, its wake-up not yet run. Its leave runs
            # before the other granted tasks take their blocks, and passes the budget on.
            n, task = granted[-1]
            task.cancel()
            self.granted.remove((n, task))
            self.in_use -= n
            self.serve()
            self.run_loop()
            assert task.cancelled()
        self.settle()

    @precondition(lambda self: bool(self.stale or self.held))
    @rule(data=st.data())
    def misuse(self, data: st.DataObject) -> None:
        """A second release of a released allocation, or one given to another pool."""
        if self.stale and (not self.held or data.draw(st.booleans(), label="stale")):
            allocation = data.draw(st.sampled_from(self.stale), label="stale")
            with pytest.raises(StaleRefError):
                allocation.release()
            with pytest.raises(StaleRefError):
                self.pool.deallocate(allocation)
            return
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
        self.pool.stats()  # drains it, and serves the line
        self.serve()
        self.settle()

    @rule(age=st.sampled_from([0.0, 3600.0]))
    def trim(self, age: float) -> None:
        freed = self.pool.trim(max_idle_seconds=age)
        self.reclaim()
        if age:
            assert freed == 0, "nothing here has been idle an hour"
            return
        assert freed == self.idle_buffers() * SIZE
        self.idle = [[] for _ in self.idle]

    @rule(now=st.integers(0, 3))
    def close(self, now: int) -> None:
        if now:  # a close ends every other rule's interest: one try in four closes
            return
        self.pool.close()
        self.closed = True
        self.reclaim()  # dropped: a closed pool keeps nothing
        self.idle = [[] for _ in self.idle]
        self.refused.extend((task, r"was closed while waiting for buffers$") for _, task in self.line)
        self.line = []
        self.settle()

    # -- waiting -------------------------------------------------------------------------

    @rule(data=st.data())
    def wait(self, data: st.DataObject) -> None:
        self.reclaim()  # the first thing the task's acquire does
        free = self.budget - self.in_use
        low, high = data.draw(
            st.sampled_from([(1, self.budget), (free + 1, self.budget), (1, free)]).filter(lambda r: 1 <= r[0] <= r[1]),
            label="any, more than is free (a line forms), or what fits (behind a line: it waits)",
        )
        n = data.draw(st.integers(low, high), label="n")

        async def acquire() -> BufAllocation:
            return await self.pool.acquire(n)

        task = self.loop.create_task(acquire())
        if self.closed:
            self.refused.append((task, r"is closed and lends nothing more$"))
        elif not self.line and self.fits(n):  # served at once, on the waiting path
            self.charge(n)
            self.granted.append((n, task))
        else:
            self.line.append((n, task))
        self.settle()

    @precondition(lambda self: bool(self.line))
    @rule(data=st.data())
    def cancel_waiter(self, data: st.DataObject) -> None:
        which = data.draw(st.sampled_from([0, len(self.line) - 1]), label="the head, or the last")
        n, task = self.line.pop(which)
        task.cancel()
        self.run_loop()
        assert task.cancelled()
        event(f"cancel served {len(self.serve())}")  # its leaving may unblock the line behind it
        self.settle()

    @invariant()
    def stats_match_the_model(self) -> None:
        stats = self.pool.stats()
        note(f"{stats}")
        lent = len(self.held)
        assert (stats.lent, stats.allocations, stats.leaks) == (lent, self.allocations, self.leaks)
        assert stats.deallocations == self.allocations - self.leaks - lent
        assert (stats.hits, stats.exhausted, stats.waiting, stats.closed) == (self.hits, self.exhausted, len(self.line), self.closed)
        assert (stats.lent_bytes, stats.idle_bytes, stats.budget_bytes) == (
            (self.in_use - self.kept_buffers()) * SIZE,
            (self.idle_buffers() + self.kept_buffers()) * SIZE,
            self.budget * SIZE,
        )
        kept = [(entry[2], entry[1]) for cache in self.pool._caches or () if cache is not None for entry in cache.kept]
        assert [n for n, _ in kept] == [n for n, _ in self.kept]
        assert all(real is block for (_, real), (_, block) in zip(kept, self.kept, strict=True))
        assert stats.lent_bytes + stats.idle_bytes <= stats.budget_bytes
        assert stats.lent_bytes <= stats.high_water_bytes <= stats.budget_bytes
        assert self.pool.closed == self.closed

    def teardown(self) -> None:
        for allocation, _, _ in self.held:
            allocation.release()
        for _, task in self.line:
            task.cancel()
        self.run_loop()
        self.loop.close()


TestBufPool = BufPoolMachine.TestCase
