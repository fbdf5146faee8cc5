"""One thread's cache of idle buffers in front of a `SizedPool`'s shared stacks.

On a free-threaded build, threads sharing a pool run at once and contend on its lock and
counters; a cache per thread serves most gets and puts with only its own (uncontended)
lock. Under the GIL the shared lock is never contended for long, so the caches are off.

The pool owns the rules (`SizedPool._allocate_cached`, `_put_cached`); this class owns one
cache's state. `objpool._csizedpool.ThreadCache` replaces it in the compiled build (where
`_sizedpool` takes the compiled core), whose hot path calls its `pop` and `push` in C. Invariant: a cache holds at most `credit[k]` idle buffers of class `k`, and
the pool counts every credit as retained bytes (granted under the pool's lock, returned
when trimmed or when the thread ends), so idle bytes never pass `max_retained`. Each class's
list is ordered by return time, oldest first. Only the owning thread adds buffers or
counts hits; trims and `stats()` from other threads read and remove under `lock`.
"""

from __future__ import annotations

import threading
from typing import Final, final

from ._bytebuffer import ByteBuffer

__all__ = ["CACHE_DEPTH", "CACHE_MAX_SIZE", "ThreadCache"]

CACHE_DEPTH: Final = 4
"""Idle buffers a thread may keep per class: a burst of 4 puts before a get needs no lock."""

CACHE_MAX_SIZE: Final = 256 << 10
"""The largest class cached: bigger buffers are rarer, and their users' own work on them
(filling 1 MiB takes ~50 us) dwarfs the lock. At most ~2 MiB of credit per thread."""


@final
class ThreadCache:
    """One thread's idle buffers of the cached classes, its credits and its counters."""

    __slots__ = ("credit", "hits", "idle", "lent", "lock")

    def __init__(self, classes: int) -> None:
        self.lock = threading.Lock()
        self.idle: list[list[tuple[float, ByteBuffer]]] = [[] for _ in range(classes)]
        self.credit = [0] * classes  # buffers of each class this cache may hold
        self.hits = [0] * classes
        self.lent = [0] * classes  # lent from here minus returned here: may go negative

    def pop(self, k: int) -> ByteBuffer | None:
        """Class `k`'s newest idle buffer, counted as a hit and lent; None if there is none."""
        locked = False
        try:
            locked = self.lock.acquire()
            idle = self.idle[k]
            if not idle:
                return None
            self.hits[k] += 1
            self.lent[k] += 1
            return idle.pop()[1]
        finally:
            if locked:
                self.lock.release()

    def wants_credit(self, k: int) -> bool:
        """Whether class `k` is full and may still grow (read without the lock: only the
        owner adds, so a stale answer only asks for a credit that is then unused)."""
        return len(self.idle[k]) >= self.credit[k] < CACHE_DEPTH

    def grant(self, k: int) -> None:
        """One more buffer of class `k` may be kept (the pool has counted it)."""
        locked = False
        try:
            locked = self.lock.acquire()
            self.credit[k] += 1
        finally:
            if locked:
                self.lock.release()

    def push(self, k: int, entry: tuple[float, ByteBuffer]) -> ByteBuffer | None:
        """Keep `entry` (returned at, buffer) as class `k`'s newest; return the buffer left
        without room, if any.

        That is the entry's own buffer when the class has no credit, else the class's oldest,
        so that the cache always holds a thread's newest returns (get stays LIFO). The entry
        is built by the caller: a section makes no object the collector tracks.
        """
        locked = False
        try:
            locked = self.lock.acquire()
            self.lent[k] -= 1
            idle = self.idle[k]
            if len(idle) < self.credit[k]:
                idle.append(entry)
                return None
            if not idle:
                return entry[1]
            idle.append(entry)
            return idle.pop(0)[1]
        finally:
            if locked:
                self.lock.release()

    def take_idle(self, k: int, returned_before: float, freed: list[ByteBuffer]) -> int:
        """Move class `k`'s buffers returned at or before `returned_before` to `freed`,
        with their credits; return how many."""
        locked = False
        try:
            locked = self.lock.acquire()
            idle = self.idle[k]
            taken = 0
            while idle and idle[0][0] <= returned_before:
                freed.append(idle.pop(0)[1])
                taken += 1
            self.credit[k] -= taken
            return taken
        finally:
            if locked:
                self.lock.release()

    def revoke(self, k: int, freed: list[ByteBuffer]) -> int:
        """Take back class `k`'s credits, its idle buffers to `freed` (its pool closed);
        return how many credits."""
        locked = False
        try:
            locked = self.lock.acquire()
            idle = self.idle[k]
            while idle:
                freed.append(idle.pop()[1])
            credit = self.credit[k]
            self.credit[k] = 0
            return credit
        finally:
            if locked:
                self.lock.release()

    def add_counts(self, k: int, counts: list[int], at: int) -> None:
        """Add class `k`'s hits, idle buffers and lent buffers now to `counts[at]`,
        `counts[at + 4]` and `counts[at + 5]` (the layout of `SizedPool.stats()`'s reading)."""
        locked = False
        try:
            locked = self.lock.acquire()
            counts[at] += self.hits[k]
            counts[at + 4] += len(self.idle[k])
            counts[at + 5] += self.lent[k]
        finally:
            if locked:
                self.lock.release()

