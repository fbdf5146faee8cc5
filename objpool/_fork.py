"""Pools that survive `os.fork()`: no lock inherited held, no waiter that does not exist.

A child process has only the thread that forked. A lock another thread held at that moment
would stay held in the child for good, and a thread waiting in a pool's line would be a
ghost there, handed the child's first released object. So, around every fork:

- before: the forking thread takes every live pool's locks (`Forkable.fork_locks()`, in
  order), waiting for any section another thread is in to finish. No section waits for
  anything nor runs user code, so this always ends, and no pool is forked mid-update;
- after, in the parent: it lets them go;
- after, in the child: it lets them go, and each pool forgets its waiters and any other
  per-thread state of the parent's threads (`Forkable.forked_child()`).

What the parent's other threads held stays lent in the child (see the README): a handle,
an allocation, or an index handed to a waiter that had not yet taken it.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Sequence
from types import TracebackType
from typing import Protocol

__all__ = ["Forkable", "HeldLock", "register"]


class HeldLock(Protocol):
    """A lock the fork hook can take and give back (`threading.Lock`, the compiled `CLock`)."""

    def __enter__(self) -> object: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None, /
    ) -> object: ...


class Forkable(Protocol):
    """A pool the fork hook looks after."""

    def fork_locks(self) -> Sequence[HeldLock]:
        """Every lock of the pool, in the order its own code nests them (outer first)."""
        ...

    def forked_child(self) -> None:
        """In the child, with the locks free again: forget the parent's other threads."""
        ...


_live: weakref.WeakSet[Forkable] = weakref.WeakSet()
_held: list[HeldLock] = []  # taken by _before, in order; only the forking thread touches it
_forking = threading.Lock()  # one fork at a time through the hooks


def register(pool: Forkable) -> None:
    """Look after `pool` across forks for as long as it lives."""
    _live.add(pool)


def _before() -> None:
    _forking.acquire()
    for pool in list(_live):  # a copy: another thread may make a pool meanwhile
        for lock in pool.fork_locks():
            lock.__enter__()
            _held.append(lock)


def _give_back() -> None:
    while _held:
        _held.pop().__exit__(None, None, None)
    _forking.release()


def _after_in_child() -> None:
    _give_back()
    for pool in list(_live):
        pool.forked_child()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(before=_before, after_in_parent=_give_back, after_in_child=_after_in_child)
