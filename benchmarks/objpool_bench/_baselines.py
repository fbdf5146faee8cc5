"""What objpool is measured against, each written the way a competent user would write it.

Invariant: no baseline is handicapped. Every object here is as fast as we could make it in
plain Python while doing the same work as the contestant it is compared with (resetting on
release, touching the memory it hands out, reusing views), because a slow baseline makes a
dishonest ratio. `MaxEfficiency` is the one exception in the other direction: it is broken
on purpose (every slice aliases the same memory) and only marks the floor no correct buffer
can beat.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, Generic, TypeVar

from objpool.sv2 import Buffer, Slice
from objpool.sv2 import MAX_SIZE

__all__ = ["Cheap", "DictHolder", "MaxEfficiency", "PPool", "PPoolBuffer", "TABLE_SIZE"]


def check_size(n: object, name: str = "n") -> int:
    """`n` as a size in bytes, 0..MAX_SIZE, as objpool's buffers take it (same errors)."""
    if not isinstance(n, int) or isinstance(n, bool):
        raise TypeError(f"{name} must be an int, got {type(n).__name__} {n!r}")
    if not 0 <= n <= MAX_SIZE:
        raise ValueError(f"{name} must be in 0..{MAX_SIZE}, got {n}")
    return n


def check_capacity(capacity: object) -> int:
    return check_size(capacity, "capacity")

T = TypeVar("T")  # invariant: a PPool both hands out and takes back T

TABLE_SIZE: Final = 100


class Cheap:
    """A small object that is cheap to build: two slots."""

    __slots__ = ("count", "owner")

    def __init__(self) -> None:
        self.count = 0
        self.owner: object = None

    def reset(self) -> None:
        self.count = 0
        self.owner = None


class DictHolder:
    """An object that is expensive to build: it computes a 100-entry lookup table.

    The table is what makes it worth pooling: `reset()` clears the per-use state and keeps
    the table, as a parser or codec keeps its tables.
    """

    __slots__ = ("count", "table")

    def __init__(self) -> None:
        # Int keys: their hashes do not depend on PYTHONHASHSEED, so neither does the timing.
        self.table = {i: f"entry {i}" for i in range(TABLE_SIZE)}
        self.count = 0

    def reset(self) -> None:
        self.count = 0


class PPool(Generic[T]):
    """The seeds' naive pool: free objects in a dict keyed by `id`, `acquire` / `release`.

    Written as a competent user would: `dict.popitem()` (LIFO, atomic in CPython, so safe from
    any thread without a lock), a reset on release, a fresh object when empty. Keyed by id, a
    double release is harmless; unlike `Pool` it has no handles, so it cannot tell a use after
    release, a foreign object, or a leak.
    """

    __slots__ = ("_factory", "_free", "_reset")

    def __init__(self, factory: Callable[[], T], capacity: int, reset: Callable[[T], object]) -> None:
        self._factory = factory
        self._reset = reset
        self._free: dict[int, T] = {}
        for _ in range(capacity):
            obj = factory()
            self._free[id(obj)] = obj

    def acquire(self) -> T:
        """An idle object, or a fresh one when none is idle."""
        try:
            return self._free.popitem()[1]
        except KeyError:
            return self._factory()

    def release(self, obj: T) -> None:
        """Reset `obj` and make it idle again."""
        self._reset(obj)
        self._free[id(obj)] = obj


_NO_BYTES: Final = memoryview(bytearray())


class PPoolBuffer(Buffer):
    """An Sv2 `Buffer` fed by a `PPool` of fixed-size bytearrays (the seeds' naive pooled buffer).

    Each message is written into a bytearray acquired from the `PPool`; the `Slice` it becomes
    gives the bytearray back on release. A message larger than one bytearray goes to fresh
    memory (grown geometrically, as `BufferFromSystemMemory` does).
    """

    __slots__ = ("_ba", "_borrow", "_cap", "_len", "_mv", "_pool", "_size")

    def __init__(self, size: int = 1 << 16, capacity: int = 8) -> None:
        self._size = check_capacity(size)
        self._pool: PPool[bytearray] = PPool(lambda: bytearray(self._size), capacity, _no_reset)
        self._ba: bytearray | None = None  # the pooled bytearray being filled, if any
        self._mv = _NO_BYTES
        self._cap = 0
        self._len = 0
        self._borrow: memoryview | None = None

    def get_writable(self, n: int) -> memoryview:
        if n.__class__ is not int or n < 0 or n > MAX_SIZE:
            n = check_size(n)
        borrow = self._borrow
        if borrow is not None:
            borrow.release()
        pos = self._len
        end = pos + n
        if end > self._cap:
            self._grow(pos, end)
        self._len = end
        borrow = self._borrow = self._mv[pos:end]
        return borrow

    def _grow(self, pos: int, end: int) -> None:
        if self._cap == 0 and end <= self._size:
            ba = self._pool.acquire()
            self._ba = ba
            self._mv = memoryview(ba)
            self._cap = self._size
            return
        cap = max(end, 2 * self._cap)
        new = memoryview(bytearray(cap))
        if pos:
            new[:pos] = self._mv[:pos]
        self._give_back()
        self._mv = new
        self._cap = cap

    def _give_back(self) -> None:
        ba = self._ba
        if ba is not None:
            self._mv.release()
            self._ba = None
            self._pool.release(ba)

    def get_data_owned(self) -> Slice:
        borrow = self._borrow
        if borrow is not None:
            borrow.release()
            self._borrow = None
        n = self._len
        view = self._mv[:n]
        ba = self._ba
        self._mv.release()
        self._mv = _NO_BYTES
        self._ba = None
        self._cap = 0
        self._len = 0
        if ba is None:
            return Slice._adopt(view)
        pool = self._pool
        return Slice._adopt(view, None, lambda: pool.release(ba), True)

    def get_data_by_ref(self, n: int) -> memoryview:
        n = check_size(n)
        borrow = self._borrow
        if borrow is not None:
            borrow.release()
        borrow = self._borrow = self._mv[: min(n, self._len)]
        return borrow

    def __len__(self) -> int:
        return self._len

    def is_droppable(self) -> bool:
        return True

    def danger_set_start(self, i: int) -> None:
        check_size(i, "i")


def _no_reset(ba: bytearray) -> None:
    """Bytearrays need no reset: the next user overwrites what it reads."""


class MaxEfficiency(Buffer):
    """Broken on purpose: every slice is the same memory (a reference, never a contestant).

    It never allocates and never tracks anything, so two live slices alias each other: the
    upper bound on speed that no correct buffer can reach. Upstream's benchmarks use it the
    same way.
    """

    __slots__ = ("_borrow", "_len", "_mv")

    def __init__(self, capacity: int = 1 << 20) -> None:
        self._mv = memoryview(bytearray(check_capacity(capacity)))
        self._len = 0
        self._borrow: memoryview | None = None

    def get_writable(self, n: int) -> memoryview:
        borrow = self._borrow
        if borrow is not None:
            borrow.release()
        pos = self._len
        end = pos + n
        self._len = end
        borrow = self._borrow = self._mv[pos:end]
        return borrow

    def get_data_owned(self) -> Slice:
        borrow = self._borrow
        if borrow is not None:
            borrow.release()
            self._borrow = None
        n = self._len
        self._len = 0
        return Slice._adopt(self._mv[:n], None, None, True)

    def get_data_by_ref(self, n: int) -> memoryview:
        borrow = self._borrow
        if borrow is not None:
            borrow.release()
        borrow = self._borrow = self._mv[: min(n, self._len)]
        return borrow

    def __len__(self) -> int:
        return self._len

    def is_droppable(self) -> bool:
        return True

    def danger_set_start(self, i: int) -> None:
        pass
