"""Slice: byte access, idempotent thread-safe release, no copies."""

from __future__ import annotations

import copy
import gc
import pickle
import sys
import threading

import pytest

from objpool import StaleRefError
from objpool.sv2 import Slice


def counting_slice(data: bytes, index: int | None = 3) -> tuple[Slice, list[int]]:
    calls: list[int] = []
    s = Slice._adopt(memoryview(bytearray(data)), index, lambda: calls.append(1), True)
    return s, calls


def test_public_constructor_copies_into_system_memory() -> None:
    src = bytearray(b"abc")
    s = Slice(src)
    src[0] = 0
    assert bytes(s) == b"abc"
    assert (s.index, s.from_pool, len(s), s.alive) == (None, False, 3, True)
    assert not s.view.readonly


def test_adopted_slice_reports_index_and_pool() -> None:
    s, _ = counting_slice(b"hello", index=5)
    assert (s.index, s.from_pool, len(s)) == (5, True, 5)
    assert repr(s) == "<Slice index=5 len=5 pool>"


def test_view_is_the_same_read_write_object() -> None:
    s = Slice(b"hello")
    assert s.view is s.view
    s.view[0] = ord("j")
    assert bytes(s) == b"jello"
    assert s[1] == ord("e")
    assert bytes(s[1:3]) == b"el"


def test_release_is_idempotent_and_runs_callback_once() -> None:
    s, calls = counting_slice(b"abc")
    view = s.view
    s.release()
    s.release()
    assert calls == [1]
    assert not s.alive
    assert len(s) == 3  # metadata stays readable
    with pytest.raises(ValueError, match="released memoryview"):
        view[0]
    assert repr(s) == "<Slice index=3 len=3 pool released>"


@pytest.mark.parametrize(
    "read",
    [lambda s: s.view, lambda s: bytes(s), lambda s: s[0], lambda s: s[0:1]],
)
def test_bytes_of_released_slice_raise_stale(read: object) -> None:
    s = Slice(b"abc")
    s.release()
    assert callable(read)
    with pytest.raises(StaleRefError, match=r"^this Slice was released"):
        read(s)


def test_context_manager_releases() -> None:
    s, calls = counting_slice(b"abc")
    with s as inner:
        assert inner is s
    assert calls == [1] and not s.alive


def test_garbage_collection_releases() -> None:
    s, calls = counting_slice(b"abc")
    del s
    gc.collect()
    assert calls == [1]


def test_release_after_explicit_release_on_gc_does_nothing() -> None:
    s, calls = counting_slice(b"abc")
    s.release()
    del s
    gc.collect()
    assert calls == [1]


def test_concurrent_release_runs_callback_exactly_once() -> None:
    for _ in range(200):
        s, calls = counting_slice(b"x")
        barrier = threading.Barrier(4)

        def release(s: Slice = s) -> None:
            barrier.wait()
            s.release()

        threads = [threading.Thread(target=release) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=10)
        assert calls == [1]


def test_copy_deepcopy_and_pickle_are_refused() -> None:
    s = Slice(b"abc")
    with pytest.raises(TypeError, match=r"^a Slice cannot be copied"):
        copy.copy(s)
    with pytest.raises(TypeError, match=r"^a Slice cannot be copied"):
        copy.deepcopy(s)
    with pytest.raises(TypeError, match=r"^a Slice cannot be pickled"):
        pickle.dumps(s)


def test_non_bytes_input_is_refused() -> None:
    with pytest.raises(TypeError):
        Slice(3.5)  # type: ignore[arg-type]  # the point of the test


def test_empty_slice() -> None:
    s = Slice()
    assert (len(s), bytes(s)) == (0, b"")


@pytest.mark.skipif(sys.version_info < (3, 12), reason="PEP 688 __buffer__ is 3.12+")
def test_buffer_protocol_and_release_with_live_export() -> None:
    import hashlib

    s, calls = counting_slice(b"abc")
    assert hashlib.sha256(s).digest() == hashlib.sha256(b"abc").digest()  # type: ignore[arg-type,unused-ignore]  # PEP 688 on 3.12+ only
    assert bytes(s) == b"abc"
    mv = memoryview(s)  # type: ignore[arg-type,unused-ignore]  # PEP 688 on 3.12+ only
    with pytest.raises(BufferError, match=r"^cannot release a Slice while a buffer export"):
        s.release()
    assert s.alive and calls == []
    mv.release()
    s.release()
    assert calls == [1]
