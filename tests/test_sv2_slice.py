"""Slice: byte access, idempotent thread-safe release, views that die with it, leaks that warn."""

from __future__ import annotations

import copy
import gc
import pickle
import sys
import threading
from typing import assert_type

import pytest

from objpool import StaleRefError
from objpool.sv2 import Slice


def counting_slice(data: bytes, index: int | None = 3) -> tuple[Slice, list[int]]:
    calls: list[int] = []
    s = Slice.adopt(memoryview(bytearray(data)), lambda: calls.append(1), index=index, from_pool=True)
    return s, calls


def test_public_constructor_copies_into_system_memory() -> None:
    src = bytearray(b"abc")
    s = Slice(src)
    src[0] = 0
    assert bytes(s) == b"abc"
    assert (s.index, s.from_pool, len(s), s.alive) == (None, False, 3, True)
    assert not s.view.readonly
    s.release()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (5, r"^data must be a bytes-like object, got int 5$"),
        ([1, 2], r"^data must be a bytes-like object, got list \[1, 2\]$"),
        (10**10, r"^data must be a bytes-like object, got int 10000000000$"),
        ("text", r"^data must be a bytes-like object, got str 'text'$"),
    ],
)
def test_public_constructor_takes_only_bytes_like_objects(data: object, message: str) -> None:
    """Slice(5) once gave five zero bytes, and Slice(10**10) tried to allocate 10 GB."""
    with pytest.raises(TypeError, match=message):
        Slice(data)  # type: ignore[arg-type]  # the point of the test


def test_public_constructor_copies_any_shape() -> None:
    strided = memoryview(b"a-b-c-")[::2]
    grid = memoryview(bytearray(b"abcdef")).cast("B", (2, 3))
    with Slice(strided) as s, Slice(grid) as t:
        assert (b"abc", b"abcdef") == (bytes(s), bytes(t))

def test_adopted_slice_reports_index_and_pool() -> None:
    s, _ = counting_slice(b"hello", index=5)
    assert (s.index, s.from_pool, len(s)) == (5, True, 5)
    assert repr(s) == "<Slice index=5 len=5 pool>"
    s.release()


def test_adopt_takes_the_view_over_without_a_copy() -> None:
    memory = bytearray(b"0123456789")
    s = assert_type(Slice.adopt(memoryview(memory)[2:5]), Slice)
    assert_type(s[0], int)
    assert_type(s[0:1], memoryview)
    assert (None, False, b"234") == (s.index, s.from_pool, bytes(s))
    s.view[0] = ord("X")
    assert memory[2] == ord("X")
    s.release()


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "message"),
    [
        ((b"abc",), {}, TypeError, r"^view must be a writable, flat, C-contiguous memoryview of unsigned bytes, got bytes b'abc'$"),
        ((memoryview(b"abc"),), {}, TypeError, r"^view must be a writable, flat, C-contiguous memoryview"),
        ((memoryview(bytearray(4))[::2],), {}, TypeError, r"^view must be a writable, flat, C-contiguous memoryview"),
        ((memoryview(bytearray(4)).cast("H"),), {}, TypeError, r"^view must be a writable, flat, C-contiguous memoryview"),
        ((memoryview(bytearray(4)), "cb"), {}, TypeError, r"^on_release must be callable or None, got str 'cb'$"),
        ((memoryview(bytearray(4)),), {"index": -1}, ValueError, r"^index must be >= 0, got int -1$"),
        ((memoryview(bytearray(4)),), {"from_pool": 1}, TypeError, r"^from_pool must be a bool, got int 1$"),
    ],
)
def test_adopt_refuses_what_a_slice_cannot_own(
    args: tuple[object, ...], kwargs: dict[str, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        Slice.adopt(*args, **kwargs)  # type: ignore[arg-type]  # deliberately bad arguments


def test_view_is_the_same_read_write_object() -> None:
    s = Slice(b"hello")
    assert s.view is s.view
    s.view[0] = ord("j")
    assert bytes(s) == b"jello"
    assert s[1] == ord("e")
    assert bytes(s[1:3]) == b"el"
    s.release()


def test_views_the_slice_handed_out_are_released_with_it() -> None:
    s, calls = counting_slice(b"secret")
    whole, part, step = s.view, s[1:4], s[::2]
    kept = [s[0:1] for _ in range(100)]  # many views: the list of them stays bounded
    for view in kept[:90]:
        view.release()
    s.release()
    assert calls == [1]
    for stale in (whole, part, step, kept[-1]):
        with pytest.raises(ValueError, match=r"released memoryview"):
            bytes(stale)


def test_an_export_of_a_handed_out_view_blocks_release() -> None:
    s, calls = counting_slice(b"abc")
    part = s[0:2]
    export = pickle.PickleBuffer(part)  # a buffer export of the tracked view itself
    with pytest.raises(BufferError, match=r"^cannot release a Slice while a buffer export"):
        s.release()
    assert s.alive and calls == []
    export.release()
    s.release()
    assert calls == [1]


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


def test_garbage_collection_of_a_live_slice_warns_and_releases() -> None:
    s, calls = counting_slice(b"abc")
    with pytest.warns(ResourceWarning, match=r"^<Slice index=3 len=3 pool> was garbage-collected while still live") as caught:
        del s
        gc.collect()
    assert calls == [1]
    assert [__file__] == [w.filename for w in caught], "the warning points at the code that leaked"


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
    s.release()


def test_empty_slice() -> None:
    with Slice() as s:
        assert (len(s), bytes(s)) == (0, b"")


@pytest.mark.skipif(sys.version_info >= (3, 12), reason="3.11 only: PEP 688 is 3.12+")
def test_no_buffer_protocol_before_python_3_12() -> None:
    """Both builds refuse alike: the compiled Slice could export on 3.11, the reference cannot."""
    with Slice(b"abc") as s:
        with pytest.raises(TypeError, match=r"a bytes-like object is required, not 'Slice'"):
            memoryview(s)  # type: ignore[arg-type,unused-ignore]  # PEP 688 on 3.12+ only
        with pytest.raises(TypeError, match=r"^data must be a bytes-like object, got Slice "):
            Slice(s)  # type: ignore[arg-type,unused-ignore]  # PEP 688 on 3.12+ only


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


def test_a_slice_whose_handle_was_finalised_first_is_finalised_silently() -> None:
    """At interpreter exit finalisers run in any order: a pooled slice's handle may go first,
    and the slice's own release then finds it dead. It must not print a traceback."""

    def dead_handle() -> None:
        raise StaleRefError("<OwnedRef released> was already released")

    slice_ = Slice.adopt(memoryview(bytearray(8)), dead_handle)
    unraisable: list[object] = []
    hook, sys.unraisablehook = sys.unraisablehook, unraisable.append
    try:
        with pytest.warns(ResourceWarning, match="garbage-collected while still live"):
            del slice_
            gc.collect()
    finally:
        sys.unraisablehook = hook
    assert [] == unraisable
