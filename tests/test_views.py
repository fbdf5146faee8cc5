"""Handed-out views: remembered in a list that stays short, released all at once."""

from __future__ import annotations

import pickle

import pytest

from objpool._views import release_all, remember


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
