"""Handed-out views: remembered in a list that stays short, released all at once; views
handed to other threads cut, without the GIL, from an exporter of their own."""

from __future__ import annotations

import ctypes
import pickle
import sys

import pytest

from objpool._views import handoff_exporter, handoff_view, release_all, remember


def test_remember_forgets_views_their_users_released() -> None:
    base = memoryview(bytearray(8))
    views: list[memoryview] = []
    for _ in range(1000):
        remember(views, base[0:1]).release()  # every user releases its own view
    assert len(views) <= 32
    live = [remember(views, base[0:1]) for _ in range(100)]
    assert all(v in views for v in live), "live views are never forgotten"


def test_release_all_releases_every_view() -> None:
    base = memoryview(bytearray(8))
    views: list[memoryview] = []
    handed = [remember(views, base[i : i + 1]) for i in range(3)]
    release_all(views)
    assert [] == views
    for view in handed:
        with pytest.raises(ValueError, match="released memoryview"):
            view[0]


def test_release_all_stops_at_an_exported_view_and_keeps_the_rest() -> None:
    base = memoryview(bytearray(8))
    views: list[memoryview] = []
    first, second, third = (remember(views, base[i : i + 1]) for i in range(3))
    export = pickle.PickleBuffer(second)
    with pytest.raises(BufferError):
        release_all(views)
    assert [second, third] == views
    export.release()
    release_all(views)
    assert [] == views


def test_a_handoff_exporter_is_used_only_without_the_gil() -> None:
    memory = bytearray(8)
    gil = getattr(sys, "_is_gil_enabled", lambda: True)()
    assert (handoff_exporter(memory) is None) == gil


def test_a_handoff_view_shows_the_same_bytes_with_an_export_count_of_its_own() -> None:
    memory = bytearray(b"0123456789")
    exporter = (ctypes.c_ubyte * len(memory)).from_buffer(memory)  # what handoff_exporter makes without the GIL
    first, second = handoff_view(exporter, 2, 5), handoff_view(exporter, 4, 8)
    assert (first.format, first.readonly, bytes(first), bytes(second)) == ("B", False, b"234", b"4567")
    first[:] = b"abc"
    assert memory == bytearray(b"01abc56789") and bytes(second) == b"c567"  # the very same memory
    first.release()  # its own count: the other view lives on
    assert bytes(second) == b"c567"
    assert handoff_view(exporter, 3, 3).nbytes == 0
    second.release()
    del exporter
    memory.extend(b"!")  # every export released: the bytearray may resize again
