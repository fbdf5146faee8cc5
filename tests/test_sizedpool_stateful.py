"""A Hypothesis state machine drives `SizedPool` and checks it against a plain model each step.

The model predicts which buffer every `get` returns (its class's newest idle one, by
identity), which idle buffers eviction and the pool's own sweeps free (the longest idle
first, smallest class first on a tie), and every counter in `stats()`. Time is a fake clock
the machine moves. Held handles live in a plain list (Hypothesis keeps bundle values
referenced, and a handle must be truly dropped to test leaks).

A second machine runs the same rules on a pool with a thread cache (on by default on
free-threaded builds, forced here), modelling that one thread's cache too: its credits, its
spills to the shared stacks, and the budget both share.
"""

from __future__ import annotations

import gc

import pytest
from hypothesis import note
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from objpool import ByteBuffer, OwnedRef, PoolClosedError, SizedPool

CLASSES = (4096, 8192, 16384)
SIZES = st.sampled_from([0, 1, 4095, 4096, 4097, 8192, 8193, 16384, 16385, 40000])


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class SizedPoolMachine(RuleBasedStateMachine):
    thread_cache = False

    def __init__(self) -> None:
        super().__init__()
        self.clock = Clock()
        self.pool = SizedPool(min_size=CLASSES[0], max_size=CLASSES[-1], clock=self.clock)
        self.held: list[OwnedRef[ByteBuffer]] = []
        # The model: per class, idle (returned at, buffer) oldest first, and counters.
        self.max_retained = 4 * CLASSES[-1]
        self.max_idle = 60.0
        self.next_sweep = 15.0
        self.idle: list[list[tuple[float, ByteBuffer]]] = [[] for _ in CLASSES]
        self.hits = [0] * len(CLASSES)
        self.misses = [0] * len(CLASSES)
        self.evictions = [0] * len(CLASSES)
        self.trimmed = [0] * len(CLASSES)
        self.lent = [0] * len(CLASSES)
        self.high_water = [0] * len(CLASSES)
        self.oversize = self.oversize_lent = self.leaks = 0
        self.allocations = self.deallocations = 0
        self.closed = False

    @initialize(max_retained=st.sampled_from([0, 4096, 12288, 24576, 65536]), max_idle=st.sampled_from([10.0, 60.0]))
    def make_pool(self, max_retained: int, max_idle: float) -> None:
        self.pool = SizedPool(
            min_size=CLASSES[0],
            max_size=CLASSES[-1],
            max_retained=max_retained,
            max_idle_seconds=max_idle,
            thread_cache=self.thread_cache,
            clock=self.clock,
        )
        assert self.thread_cache == self.pool.thread_cache
        self.max_retained, self.max_idle = max_retained, max_idle
        self.next_sweep = self.clock.now + max_idle / 4

    def retained(self) -> int:
        """Bytes idle, as stats() reports them."""
        return sum(len(idle) * size for idle, size in zip(self.idle, CLASSES))

    def accounted(self) -> int:
        """Bytes counted against max_retained."""
        return self.retained()

    def idle_count(self, k: int) -> int:
        return len(self.idle[k])

    def lend_shared(self, k: int, buf: ByteBuffer) -> None:
        if self.idle[k]:
            assert buf is self.idle[k].pop()[1], "the newest idle buffer of the class"
            self.hits[k] += 1
        else:
            assert all(buf is not b for idle in self.idle for _, b in idle)
            self.misses[k] += 1
        self.lent[k] += 1
        self.high_water[k] = max(self.high_water[k], self.lent[k])

    def lend(self, k: int, buf: ByteBuffer) -> None:
        self.lend_shared(k, buf)

    def keep_shared(self, k: int, buf: ByteBuffer, now: float) -> None:
        size = CLASSES[k]
        room = self.max_retained - self.accounted()
        if size > self.max_retained or (2 * size > self.max_retained and size > room):
            self.evictions[k] += 1  # dropped: too big, or worth over half the budget in evictions
        else:
            while self.accounted() + size > self.max_retained:
                oldest = min((i for i in range(len(CLASSES)) if self.idle[i]), key=lambda i: self.idle[i][0][0])
                self.idle[oldest].pop(0)
                self.evictions[oldest] += 1
            self.idle[k].append((now, buf))

    def keep(self, k: int, buf: ByteBuffer, now: float) -> None:
        self.keep_shared(k, buf, now)

    @rule(n=SIZES)
    def allocate(self, n: int) -> None:
        if self.closed:
            with pytest.raises(PoolClosedError, match=r"is closed and lends nothing more$"):
                self.pool.allocate(n)
            return
        ref = self.pool.allocate(n)
        self.allocations += 1
        buf = ref.value
        assert 0 == len(buf)
        if n > CLASSES[-1]:
            assert n == buf.capacity
            self.oversize += 1
            self.oversize_lent += n
        else:
            k = next(i for i, size in enumerate(CLASSES) if size >= n)
            assert CLASSES[k] == buf.capacity
            self.lend(k, buf)
        self.held.append(ref)

    @precondition(lambda self: self.held)
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        ref = self.held.pop(data.draw(st.integers(0, len(self.held) - 1), label="which"))
        buf = ref.value
        ref.release()
        self.deallocations += 1
        now = self.clock.now
        if buf.capacity not in CLASSES:  # oversize: never kept
            self.oversize_lent -= buf.capacity
            return
        k = CLASSES.index(buf.capacity)
        self.lent[k] -= 1
        self.keep(k, buf, now)
        if now >= self.next_sweep:
            self.next_sweep = now + self.max_idle / 4
            self.take_idle(now - self.max_idle)

    def take_idle(self, returned_before: float) -> int:
        freed = 0
        for k, idle in enumerate(self.idle):
            while idle and idle[0][0] <= returned_before:
                idle.pop(0)
                self.trimmed[k] += 1
                freed += CLASSES[k]
        return freed

    def revoke_credits(self) -> None:
        """Closing takes back what the thread caches may still keep (none without caches)."""

    @rule()
    def close(self) -> None:
        self.pool.close()
        if not self.closed:
            self.closed = True
            self.take_idle(float("inf"))
            self.revoke_credits()
            self.max_retained = 0  # nothing returned from now on is kept: evicted at once

    @rule(seconds=st.sampled_from([0.0, 1.0, 7.5, 16.0, 61.0]))
    def tick(self, seconds: float) -> None:
        self.clock.now += seconds

    @rule(age=st.sampled_from([0.0, 5.0, 30.0]))
    def trim(self, age: float) -> None:
        expected = self.take_idle(self.clock.now - age if age else float("inf"))
        assert expected == self.pool.trim(age)

    @precondition(lambda self: self.held)
    @rule()
    def leak(self) -> None:
        ref = self.held.pop()
        buf = ref.value
        with pytest.warns(ResourceWarning) as caught:
            del ref
            # A generation-0 collection proves it in most steps at a tenth of a full one's
            # cost; a handle an older cycle kept (a traceback that saw it) needs a full one.
            gc.collect(0)
            if not caught:
                gc.collect()
        self.leaks += 1
        if buf.capacity in CLASSES:
            self.lent[CLASSES.index(buf.capacity)] -= 1
        else:
            self.oversize_lent -= buf.capacity

    @invariant()
    def stats_match_the_model(self) -> None:
        stats = self.pool.stats()
        note(f"{stats}")
        assert self.retained() == stats.idle_bytes <= self.max_retained
        assert (self.oversize, self.leaks) == (stats.oversize, stats.leaks)
        assert (len(self.held), self.allocations, self.deallocations) == (stats.lent, stats.allocations, stats.deallocations)
        assert stats.allocations == stats.deallocations + stats.leaks + stats.lent
        assert (self.closed, self.closed) == (stats.closed, self.pool.closed)
        assert stats.lent_bytes <= stats.high_water_bytes
        assert sum(n * size for n, size in zip(self.lent, CLASSES)) + self.oversize_lent == stats.lent_bytes
        for k, c in enumerate(stats.classes):
            assert (CLASSES[k], self.hits[k], self.misses[k], self.evictions[k], self.trimmed[k]) == (
                c.size,
                c.hits,
                c.misses,
                c.evictions,
                c.trimmed,
            )
            assert (self.idle_count(k) * CLASSES[k], self.lent[k] * CLASSES[k]) == (c.idle_bytes, c.lent_bytes)
            assert self.high_water[k] * CLASSES[k] == c.high_water_bytes

    def teardown(self) -> None:
        for ref in self.held:
            ref.release()


TestSizedPoolMachine = SizedPoolMachine.TestCase


class CachedSizedPoolMachine(SizedPoolMachine):
    """The same rules with this thread's cache in front of the shared stacks."""

    thread_cache = True
    depth = 4

    def __init__(self) -> None:
        super().__init__()
        self.cache: list[list[tuple[float, ByteBuffer]]] = [[] for _ in CLASSES]
        self.credit = [0] * len(CLASSES)

    def retained(self) -> int:
        return super().retained() + sum(len(idle) * size for idle, size in zip(self.cache, CLASSES))

    def idle_count(self, k: int) -> int:
        return len(self.idle[k]) + len(self.cache[k])

    def accounted(self) -> int:
        shared = sum(len(idle) * size for idle, size in zip(self.idle, CLASSES))
        return shared + sum(credit * size for credit, size in zip(self.credit, CLASSES))

    def lend(self, k: int, buf: ByteBuffer) -> None:
        if self.cache[k]:
            assert buf is self.cache[k].pop()[1], "the thread's newest idle buffer of the class"
            self.hits[k] += 1
            self.lent[k] += 1  # the high water is sampled on the shared path only
        else:
            self.lend_shared(k, buf)

    def keep(self, k: int, buf: ByteBuffer, now: float) -> None:
        size, cache = CLASSES[k], self.cache[k]
        credits = sum(credit * size for credit, size in zip(self.credit, CLASSES))
        if len(cache) >= self.credit[k] < self.depth:  # full, may grow: within half the budget
            if credits + size <= self.max_retained // 2 and self.accounted() + size <= self.max_retained:
                self.credit[k] += 1
        if len(cache) < self.credit[k]:
            cache.append((now, buf))
            return
        if cache:  # full: the oldest spills to the shared stack
            cache.append((now, buf))
            buf = cache.pop(0)[1]
        self.keep_shared(k, buf, now)

    def take_idle(self, returned_before: float) -> int:
        freed = super().take_idle(returned_before)
        for k, cache in enumerate(self.cache):
            while cache and cache[0][0] <= returned_before:
                cache.pop(0)
                self.credit[k] -= 1
                self.trimmed[k] += 1
                freed += CLASSES[k]
        return freed

    def revoke_credits(self) -> None:
        self.credit = [0] * len(CLASSES)

    @invariant()
    def the_caches_share_the_budget(self) -> None:
        credits = sum(credit * size for credit, size in zip(self.credit, CLASSES))
        assert credits <= self.max_retained // 2
        assert self.accounted() <= self.max_retained
        assert all(len(cache) <= credit <= self.depth for cache, credit in zip(self.cache, self.credit))


TestCachedSizedPoolMachine = CachedSizedPoolMachine.TestCase
