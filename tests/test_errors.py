"""The exception family: one base class, built-ins refined where the meaning is theirs too."""

from __future__ import annotations

import pickle

import pytest

import objpool
from objpool import (
    BufferFullError,
    ForeignRefError,
    FrameError,
    PoolClosedError,
    PoolError,
    PoolExhaustedError,
    StaleRefError,
)

ALL = [PoolExhaustedError, PoolClosedError, StaleRefError, ForeignRefError, BufferFullError, FrameError]


@pytest.mark.parametrize("error", ALL, ids=lambda e: e.__name__)
def test_every_error_is_a_pool_error_shown_under_the_public_name(error: type[PoolError]) -> None:
    assert issubclass(error, PoolError)
    assert "objpool" == error.__module__
    assert getattr(objpool, error.__name__) is error


def test_value_errors_are_value_errors_too() -> None:
    assert issubclass(BufferFullError, ValueError)
    assert issubclass(FrameError, ValueError)
    assert not issubclass(StaleRefError, ValueError)


def test_frame_error_keeps_its_offset_through_pickling() -> None:
    err = FrameError("bad", 7)
    copy = pickle.loads(pickle.dumps(err))
    assert (FrameError, "bad", 7) == (type(copy), str(copy), copy.offset)
