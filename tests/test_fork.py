"""Pools survive `os.fork()`: a child never inherits a lock held by a thread it does not
have, nor a waiter no thread of its own will ever be.

What the parent's other threads held at the fork stays lent in the child (their threads are
not there to release it), so a child checks what it lends itself, not that all is free.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from objpool import BufPool, ByteBuffer, Pool, SizedPool

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork() is POSIX")

CHILD_DEADLINE_S = 10.0
FORKS = 10


class Widget:
    def reset(self) -> None:
        pass


def fork_and_check(check: Callable[[], None]) -> None:
    """Fork; the child runs `check` and exits 0 if it returned. Fail if it did not exit 0
    within the deadline (a child that hangs on an inherited lock is killed)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: "multi-threaded, fork()..."
        pid = os.fork()
    if pid == 0:  # the child: no pytest from here on, only os._exit
        code = 1
        try:
            check()
            code = 0
        except BaseException as exc:
            print(f"child failed: {exc!r}", file=sys.stderr)
        finally:
            os._exit(code)
    deadline = time.monotonic() + CHILD_DEADLINE_S
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.waitstatus_to_exitcode(status) == 0, "the child's pool failed"
            return
        time.sleep(0.005)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    pytest.fail("the child hung on its pool: a lock inherited held by a thread it does not have")


@contextmanager
def busy(work: Callable[[], object]) -> Iterator[None]:
    """Another thread runs `work` (locked sections of a pool) in a loop meanwhile."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            work()

    thread = threading.Thread(target=loop)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(CHILD_DEADLINE_S)


def pool_work(pool: Pool[Widget]) -> Callable[[], None]:
    def work() -> None:
        pool.stats()
        pool.allocate().release()
        ref = pool.try_allocate()
        if ref is not None:
            ref.release()

    return work


def test_a_child_forked_while_another_thread_is_inside_a_pool_can_use_it() -> None:
    pool = Pool(Widget, 2)
    with busy(pool_work(pool)):
        for _ in range(FORKS):
            fork_and_check(lambda: pool.allocate().release())


def test_a_child_forked_while_another_thread_is_inside_a_bufpool_can_use_it() -> None:
    pool = BufPool(64, 64 * 8)

    def work() -> None:
        pool.stats()
        pool.allocate(3).release()
        pool.trim()

    def check() -> None:
        before = pool.stats().lent_bytes  # the other thread's 3 buffers, if it held them
        pool.allocate(5).release()
        assert pool.stats().lent_bytes == before

    with busy(work):
        for _ in range(FORKS):
            fork_and_check(check)


@pytest.mark.parametrize("thread_cache", [False, True])
def test_a_child_forked_while_another_thread_is_inside_a_sizedpool_can_use_it(thread_cache: bool) -> None:
    pool = SizedPool(min_size=4096, max_size=65536, thread_cache=thread_cache)

    def work() -> None:
        pool.stats()
        pool.allocate(4096).release()
        pool.allocate(65536).release()
        pool.trim()

    def check() -> None:
        before = pool.stats().lent
        pool.allocate(4096).release()
        pool.allocate(65536).release()
        pool.trim()
        assert pool.stats().lent == before

    with busy(work):
        for _ in range(FORKS):
            fork_and_check(check)


def waiting(count: Callable[[], int]) -> None:
    deadline = time.monotonic() + CHILD_DEADLINE_S
    while not count() and time.monotonic() < deadline:
        time.sleep(0.001)
    assert count(), "the waiter never joined the line"


def test_a_child_does_not_hand_its_objects_to_the_parent_s_waiters() -> None:
    """A thread waiting in the parent's line is not in the child: the child's first release
    used to go to that ghost, and its pool was exhausted for good."""
    pool = Pool(lambda: ByteBuffer(8), 1)
    held = pool.allocate()
    got: list[object] = []
    waiter = threading.Thread(target=lambda: got.append(pool.allocate(timeout=CHILD_DEADLINE_S)))
    waiter.start()
    waiting(lambda: pool.waiting)

    def check() -> None:
        assert pool.waiting == 0
        held.release()
        pool.allocate(timeout=0).release()  # not handed to a ghost

    try:
        fork_and_check(check)
    finally:
        held.release()
        waiter.join(CHILD_DEADLINE_S)
    assert len(got) == 1
    got.pop().release()  # type: ignore[attr-defined]  # a handle


def test_a_child_does_not_grant_its_budget_to_the_parent_s_waiters() -> None:
    pool = BufPool(64, 64 * 2)
    held = pool.allocate(2)
    got: list[object] = []
    waiter = threading.Thread(target=lambda: got.append(pool.allocate(2, timeout=CHILD_DEADLINE_S)))
    waiter.start()
    waiting(lambda: pool.stats().waiting)

    def check() -> None:
        assert pool.stats().waiting == 0
        held.release()
        pool.allocate(2, timeout=0).release()
        assert pool.stats().lent_bytes == 0

    try:
        fork_and_check(check)
    finally:
        held.release()
        waiter.join(CHILD_DEADLINE_S)
    assert len(got) == 1
    got.pop().release()  # type: ignore[attr-defined]  # a handle
