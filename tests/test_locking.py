"""`take_contended`: the pure build's hot paths take a held lock by yielding the GIL to its holder."""

from __future__ import annotations

import sys
import threading
import time

import pytest

from objpool._locking import take_contended


def _held_for_a_moment(lock: threading.Lock, started: threading.Event) -> threading.Thread:
    def hold() -> None:
        with lock:
            started.set()
            time.sleep(0.05)

    thread = threading.Thread(target=hold)
    thread.start()
    started.wait()
    return thread


@pytest.mark.parametrize("gil", [True, False], ids=["gil", "free-threaded"])
def test_it_returns_holding_the_lock_once_the_holder_lets_go(monkeypatch: pytest.MonkeyPatch, gil: bool) -> None:
    # Both branches: yield the GIL until the lock is free (a GIL build), or block on it.
    monkeypatch.setattr(sys, "_is_gil_enabled", lambda: gil, raising=False)
    lock = threading.Lock()
    holder = _held_for_a_moment(lock, threading.Event())
    take_contended(lock)
    try:
        assert lock.locked()
        assert not lock.acquire(False), "taken by this thread, not left free"
        holder.join()  # the holder is done: it let go before this thread took it
    finally:
        lock.release()


def test_it_spins_only_on_acquire_and_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    # Under the GIL the wait is non-blocking acquires, each followed by a time.sleep(0) that
    # hands over the GIL; never a blocking acquire (the convoy).
    monkeypatch.setattr(sys, "_is_gil_enabled", lambda: True, raising=False)
    lock = threading.Lock()
    lock.acquire()
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 3:
            lock.release()  # the holder lets go after three yields

    monkeypatch.setattr(time, "sleep", sleep)
    take_contended(lock)
    assert [0, 0, 0] == sleeps
    assert lock.locked()
    lock.release()
