"""A small number per live thread, for the pools' per-thread caches.

`thread_number()` is 0, 1, 2, ... and unique among the threads alive now: a number comes back
when its thread ends, and the next new thread takes it. A pool keeps its per-thread caches in
a list indexed by it (see `Pool.thread_cache`), so the list grows only to the most threads
ever alive at once, and a thread's cache has one writer: its thread (a new thread given a dead
thread's number inherits that cache, whatever is in it).

The compiled twins remember their thread's number in a C thread-local after the first call.
"""

from __future__ import annotations

import threading
import weakref
from typing import Final, TypeVar, final

from . import _fork

__all__ = ["THIS_THREAD", "cache_for_this_thread", "thread_number"]

C = TypeVar("C")

THIS_THREAD: Final = threading.local()
"""`THIS_THREAD.number` is this thread's number once `thread_number()` gave it one (the hot
paths read it directly and call `thread_number()` on `AttributeError`)."""


@final
class _Numbers:
    """The numbers given out: `returned` (by ended threads, taken first) and the count made."""

    __slots__ = ("__weakref__", "lock", "made", "returned")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.made = 0
        self.returned: list[int] = []

    def take(self) -> int:
        locked = False
        try:
            locked = self.lock.acquire()
            if self.returned:
                return self.returned.pop()
            self.made += 1
            return self.made - 1
        finally:
            if locked:
                self.lock.release()

    def give_back(self, number: int) -> None:
        """At a thread's end (from its thread-local's finalizer): only an append, atomic."""
        self.returned.append(number)

    def fork_locks(self) -> list[threading.Lock]:
        return [self.lock]

    def forked_child(self) -> None:
        """The parent's other threads keep their numbers in the child: no thread there ends to
        give them back, so their caches stay as they are (other threads may take from them)."""


_NUMBERS: Final = _Numbers()
_fork.register(_NUMBERS)


@final
class _Token:
    """Lives in the thread's `THIS_THREAD` and dies with it, giving the number back."""

    __slots__ = ("__weakref__",)


def thread_number() -> int:
    """This thread's number: small, and unique among the threads alive now."""
    try:
        number: int = THIS_THREAD.number
        return number
    except AttributeError:
        pass
    number = _NUMBERS.take()
    token = _Token()
    weakref.finalize(token, _NUMBERS.give_back, number)
    THIS_THREAD.token = token
    THIS_THREAD.number = number
    return number


def cache_for_this_thread(caches: list[C | None], lock: threading.Lock, fresh: C) -> C:
    """This thread's cache in a pool's `caches` (indexed by thread number): `fresh` if it had
    none, else the one it inherited with its number from an ended thread. `lock` is the
    pool's, which guards its list; `fresh` is made by the caller, before the lock, since it is
    an object the collector tracks and the section makes none."""
    number = thread_number()
    locked = False
    try:
        locked = lock.acquire()
        while len(caches) <= number:
            caches.append(None)  # grows the list's memory: not an object the collector tracks
        cache = caches[number]
        if cache is None:
            cache = caches[number] = fresh
        return cache
    finally:
        if locked:
            lock.release()
