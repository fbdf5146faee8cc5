"""Lifetimes that compiled builds get wrong first: weak references, half-built objects, exit.

Every case here must end in a clean exception or a warning, never a crash; a compiled build
runs the same tests (a crash there fails the run instead of one test).
"""

from __future__ import annotations

import gc
import subprocess
import textwrap
import weakref
from collections.abc import Callable

import pytest

import child
from objpool import ByteBuffer, OwnedRef, Pool
from objpool.sv2 import BufferFromSystemMemory, BufferPool, Decoder, Encoder, PooledBuffer, Slice, Sv2Protocol


class Widget:
    def reset(self) -> None:
        pass


def test_a_weak_reference_outlives_the_pool_it_names() -> None:
    pool = Pool(Widget, 2)
    ref = weakref.ref(pool)
    callbacks: list[object] = []
    watcher = weakref.ref(pool, callbacks.append)
    del pool
    gc.collect()
    assert ref() is None and watcher() is None
    assert 1 == len(callbacks), "the weak reference's callback ran"


def test_a_live_handle_keeps_its_pool_alive() -> None:
    pool = Pool(Widget, 1)
    ref = weakref.ref(pool)
    handle = pool.allocate()
    del pool
    gc.collect()
    alive = ref()
    assert alive is not None
    handle.release()
    assert 1 == alive.free
    del alive, handle
    gc.collect()
    assert ref() is None


@pytest.mark.parametrize(
    "make",
    [lambda: BufferPool(64), lambda: PooledBuffer(Pool(lambda: ByteBuffer(64), 2))],
    ids=["BufferPool", "PooledBuffer"],
)
def test_weak_references_to_pooled_sv2_buffers(make: Callable[[], object]) -> None:
    buffer = make()
    ref = weakref.ref(buffer)
    del buffer
    gc.collect()
    assert ref() is None


def test_buffers_without_weak_reference_support_refuse_cleanly() -> None:
    with pytest.raises(TypeError, match=r"cannot create weak reference"):
        weakref.ref(BufferFromSystemMemory())


def test_half_built_objects_are_finalised_quietly() -> None:
    """Constructors that raise before every attribute is set; their objects are then collected."""

    def failing_factory() -> Widget:
        raise OSError("no widgets today")

    attempts: list[Callable[[], object]] = [
        lambda: Pool(failing_factory, 2),
        lambda: Pool(Widget, 0),
        lambda: Pool.from_items([]),
        lambda: ByteBuffer(-1),
        lambda: Slice(3.5),  # type: ignore[arg-type]  # half-built on purpose
        lambda: Slice.adopt(b"not a view"),  # type: ignore[arg-type]  # half-built on purpose
        lambda: PooledBuffer([]),  # type: ignore[arg-type]  # half-built on purpose
        lambda: Decoder(bytearray(4)),  # type: ignore[arg-type]  # half-built on purpose
        lambda: Encoder(None),  # type: ignore[arg-type]  # half-built on purpose
        lambda: Sv2Protocol(None, print),  # type: ignore[arg-type]  # half-built on purpose
        lambda: BufferPool(-1),
    ]
    for attempt in attempts:
        with pytest.raises((TypeError, ValueError, OSError)):
            attempt()
    gc.collect()  # finalisers of the half-built objects ran: nothing to report, nothing broke


def test_a_handle_made_outside_a_pool_is_inert_to_the_end() -> None:
    handle: OwnedRef[Widget] = OwnedRef()
    with pytest.raises(TypeError):
        handle.release()
    del handle
    gc.collect()


def test_interpreter_exit_with_live_handles_buffers_and_connections() -> None:
    script = textwrap.dedent(
        """
        import asyncio, weakref
        from objpool import ByteBuffer, Pool
        from objpool.sv2 import BufferPool, Decoder, PooledBuffer, Sv2Protocol

        pool = Pool(lambda: ByteBuffer(16), 4)
        handles = [pool.allocate(), pool.allocate()]
        watcher = weakref.ref(pool)
        bp = BufferPool(64)
        bp.write(b"abc")
        kept = bp.get_data_owned()
        pb = PooledBuffer(pool)
        pb.write(b"pending, never taken")
        proto = Sv2Protocol(Decoder(bp), lambda f: None)
        """
    )
    proc = subprocess.run(child.python("-c", script), env=child.environment(), capture_output=True, text=True, timeout=60)
    assert 0 == proc.returncode, proc.stderr
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr, proc.stderr


def test_objects_never_initialised_raise_and_never_crash() -> None:
    """`cls.__new__(cls)` skips `__init__`: every hot method then raises, in either build.

    Which exception differs between builds (the reference's slots are unset, the compiled
    fields are None or zero); that none of them crashes the interpreter is what is tested, in
    a child process so that a crash fails this test alone.
    """
    script = textwrap.dedent(
        """
        from objpool import BufAllocation, BufferFullError, BufPool, ByteBuffer, Pool, SizedPool, StaleRefError
        from objpool.sv2 import BufferPool, Slice

        try:
            repr(BufAllocation.__new__(BufAllocation))  # a text, or AttributeError: never a crash
        except AttributeError:
            pass

        calls = [
            lambda: BufferPool.__new__(BufferPool).get_writable(1),
            lambda: BufferPool.__new__(BufferPool).get_data_owned(),
            lambda: bytes(Slice.__new__(Slice)),
            lambda: Slice.__new__(Slice)[0:1],
            lambda: Pool.__new__(Pool).allocate(),
            lambda: Pool.__new__(Pool).stats(),
            lambda: ByteBuffer.__new__(ByteBuffer).write(b"x"),
            lambda: BufPool.__new__(BufPool).allocate(1),
            lambda: BufPool.__new__(BufPool).stats(),
            lambda: BufPool.__new__(BufPool)._give_back(1, bytearray(8)),
            lambda: SizedPool.__new__(SizedPool).allocate(0),
            lambda: SizedPool.__new__(SizedPool).allocate(1 << 30),
            lambda: SizedPool.__new__(SizedPool).deallocate(SizedPool().allocate(1)),
            lambda: SizedPool.__new__(SizedPool).stats(),
            lambda: SizedPool.__new__(SizedPool).trim(),
            lambda: BufAllocation.__new__(BufAllocation).release(),
            lambda: BufAllocation.__new__(BufAllocation).view,
            lambda: list(BufAllocation.__new__(BufAllocation)),
            lambda: BufAllocation.__new__(BufAllocation).__enter__(),
            lambda: BufAllocation.__new__(BufAllocation).__exit__(None, None, None),
        ]
        for call in calls:
            try:
                call()
            except (AttributeError, BufferFullError, TypeError, StaleRefError, ValueError):
                pass
            else:
                raise SystemExit(f"no error from {call}")
        """
    )
    proc = subprocess.run(child.python("-c", script), env=child.environment(), capture_output=True, text=True, timeout=60)
    assert 0 == proc.returncode, proc.stderr
