"""`PooledBuffer`: the Sv2 `Buffer` interface fed by a `Pool[ByteBuffer]`.

Invariant: each message's pending bytes live in exactly one place, contiguous: the
`ByteBuffer` lent to this buffer (`_ref`), or the system-memory fallback (`_in_sys`), never
both; between messages the buffer holds no `ByteBuffer`. A pooled `Slice` owns its
`ByteBuffer`'s handle; releasing the slice releases the handle, which resets the
`ByteBuffer` and returns it to its pool.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._bytebuffer import ByteBuffer
from .._compiled import COMPILED
from .._errors import PoolClosedError, PoolExhaustedError
from .._ownedref import OwnedRef
from .._pool import Pool
from .._validate import check_seconds, reject
from .._waiting import NO_WAIT
from ._buffer import Buffer, BufferFromSystemMemory
from ._sizes import MAX_SIZE, check_size
from ._slice import Slice

__all__ = ["PooledBuffer"]

_adopt = Slice._adopt


class _PooledBufferCore:
    """`PooledBuffer`'s hot path: `get_writable`, `get_data_owned` and the state they touch.

    When the install compiled it, `objpool.sv2._cpooled_buffer.PooledBufferCore` replaces this
    class: the same methods and messages, checked by the same tests. The rare paths stay in
    `PooledBuffer`, which the core calls back into.
    """

    __slots__ = (
        "_borrow",
        "_free",
        "_in_sys",
        "_len",
        "_pool",
        "_pooled",
        "_ref",
        "_start",
        "_sys",
        "_system",
        "_timeout",
        "_wv",
    )
    _borrow: memoryview | None
    _free: int
    _in_sys: bool
    _len: int
    _pool: Pool[ByteBuffer]
    _pooled: int
    _ref: OwnedRef[ByteBuffer] | None
    _start: int
    _sys: BufferFromSystemMemory
    _system: int
    _timeout: float | None
    _wv: memoryview | None

    def get_writable(self, n: int) -> memoryview:
        if n.__class__ is not int or n < 0 or n > MAX_SIZE:
            n = check_size(n)
        borrow = self._borrow
        if borrow is not None:
            borrow.release()
        if not self._in_sys:
            wv = self._wv
            if wv is None:
                wv = self._take()
            pos = self._len
            end = pos + n
            if wv is not None and end <= self._free:
                self._len = end
                borrow = self._borrow = wv[pos:end]
                return borrow
            self._move_to_system_memory()
        borrow = self._borrow = self._sys.get_writable(n)
        return borrow

    def _take(self) -> memoryview | None:
        try:
            ref = self._pool.allocate(self._timeout)
        except (PoolExhaustedError, PoolClosedError):
            return None
        return self._hold(ref)

    def _hold(self, ref: OwnedRef[ByteBuffer]) -> memoryview:
        """Write the next message into `ref`'s `ByteBuffer` (the buffer holds none now)."""
        self._ref = ref
        wv = self._wv = ref.value.writable()
        self._free = len(wv)
        return wv

    def get_data_owned(self) -> Slice:
        borrow = self._borrow
        if borrow is not None:
            borrow.release()
            self._borrow = None
        self._start = 0
        if self._in_sys:
            self._in_sys = False
            s = self._sys.get_data_owned()
            if len(s):
                self._system += 1
            return s
        wv = self._wv
        ref = self._ref
        n = self._len
        if wv is None or ref is None or not n:
            self._give_back()  # hold no ByteBuffer between messages
            return _adopt(memoryview(bytearray()))
        ref.value.commit(n)
        view = wv[:n]
        wv.release()
        self._ref = None
        self._wv = None
        self._len = 0
        self._pooled += 1
        return _adopt(view, None, ref.release, True)

    def _give_back(self) -> None:
        raise NotImplementedError  # PooledBuffer's

    def _move_to_system_memory(self) -> None:
        raise NotImplementedError  # PooledBuffer's


if COMPILED and not TYPE_CHECKING:  # type checkers read the Python class above, the reference
    from ._cpooled_buffer import PooledBufferCore as _PooledBufferCore


class PooledBuffer(_PooledBufferCore, Buffer):
    """A `Buffer` whose slices are `ByteBuffer`s lent by a `Pool[ByteBuffer]`.

    Each message is written into one `ByteBuffer` taken with `pool.try_allocate()` at its
    first `get_writable`; `get_data_owned()` hands that buffer over as a `Slice` (index None,
    `from_pool` True) whose release gives it back to the pool. There is no slot limit: as
    many messages can be alive as the pool has buffers.

    When the pool is closed, or a message outgrows one `ByteBuffer`, the message continues
    in system memory: the bytes written so far are copied there, so they stay contiguous,
    and the `ByteBuffer` goes back at once. When the pool is exhausted, a message waits up
    to `timeout` seconds for a `ByteBuffer` (`pool.allocate(timeout)`, first come, first
    served), then continues in system memory too:

    - `timeout=0` (the default) never waits: the fallback, for when latency matters more
      than memory;
    - `timeout=None` waits for as long as it takes, so every message that fits in one
      `ByteBuffer` lives in the pool: memory stays within the pool's, whatever the load.

    A buffer that waits blocks its thread in `get_writable`; in asyncio, read through
    `Sv2Protocol`, which waits without blocking the loop (it pauses reading instead). On a
    thread, decode one frame at a time (`Decoder.writable`/`next_frame`): `feed()` hands its
    frames over only when it returns, so one call completing more frames than the pool holds
    would wait on itself.
    `pooled_slices` and `system_slices` count where the non-empty slices came from.

    Thread rules: one thread uses the buffer; its slices may be released from any thread.
    """

    __slots__ = ("__weakref__",)

    def __init__(self, pool: Pool[ByteBuffer], *, timeout: float | None = NO_WAIT) -> None:
        """Take messages' memory from `pool` (built with e.g. `lambda: ByteBuffer(4096)`).

        Raises:
            TypeError: `pool` is not a `Pool`, or `timeout` not a number or None.
            ValueError: `timeout` is negative.
        """
        if not isinstance(pool, Pool):
            reject(TypeError, "pool", "a Pool of ByteBuffers", pool)
        wait = check_seconds("timeout", timeout, none_ok=True)
        self._pool = pool
        self._timeout = NO_WAIT if wait == 0 else wait  # NO_WAIT: allocate()'s fast path
        # The message's ByteBuffer handle, its free space as one view (taken with
        # `writable()` once per message, then sliced like a bytearray), and bytes used.
        self._ref: OwnedRef[ByteBuffer] | None = None
        self._wv: memoryview | None = None
        self._free = 0
        self._len = 0
        self._sys = BufferFromSystemMemory()
        self._in_sys = False
        self._borrow: memoryview | None = None
        self._start = 0
        self._pooled = 0
        self._system = 0

    @property
    def pool(self) -> Pool[ByteBuffer]:
        """The pool the messages' memory comes from."""
        return self._pool

    @property
    def timeout(self) -> float | None:
        """How long a message waits for a `ByteBuffer` before going to system memory (None: for good)."""
        return self._timeout

    @property
    def pooled_slices(self) -> int:
        """Non-empty slices handed out in pooled `ByteBuffer`s so far."""
        return self._pooled

    @property
    def system_slices(self) -> int:
        """Non-empty slices handed out in system memory so far (pool empty or message too big)."""
        return self._system

    def _give_back(self) -> None:
        ref = self._ref
        wv = self._wv
        self._ref = None
        self._wv = None
        self._len = 0
        if wv is not None:
            wv.release()
        if ref is not None:
            ref.release()

    def _ready(self) -> bool:
        """Whether the next message can start without waiting; takes a free `ByteBuffer` if need be.

        `Sv2Protocol` asks before it reads the header that starts a message, so that the
        message never waits inside `get_writable` on the event loop's thread.
        """
        if self._wv is not None or self._in_sys:
            return True
        try:
            ref = self._pool.try_allocate()  # queues behind waiters: no barging
        except PoolClosedError:
            self._in_sys = True  # a closed pool lends nothing more: system memory it is
            return True
        if ref is None:
            return False
        self._hold(ref)
        return True

    def _move_to_system_memory(self) -> None:
        """Continue this message in system memory, pending bytes included."""
        self._in_sys = True
        wv = self._wv
        if wv is None:
            return
        n = self._len
        if n:
            self._sys.get_writable(n)[:] = wv[:n]
        self._give_back()

    def get_data_by_ref(self, n: int) -> memoryview:
        if n.__class__ is not int or n < 0 or n > MAX_SIZE:
            n = check_size(n)
        borrow = self._borrow
        if borrow is not None:
            borrow.release()
        wv = self._wv
        if self._in_sys or wv is None:
            borrow = self._sys.get_data_by_ref(n)
        else:
            borrow = wv[: min(n, self._len)]
        self._borrow = borrow
        return borrow

    def __len__(self) -> int:
        if self._in_sys:
            return len(self._sys)
        return self._len

    def is_droppable(self) -> bool:
        """Always True: every slice owns its `ByteBuffer` handle, so nothing points here."""
        return True

    def danger_set_start(self, i: int) -> None:
        self._start = check_size(i, "i")

    @property
    def start(self) -> int:
        """The offset last set by `danger_set_start` (0 after `get_data_owned`)."""
        return self._start

    def __del__(self) -> None:
        # Pending bytes never taken: give their ByteBuffer back rather than leak it.
        if getattr(self, "_ref", None) is not None:
            self._give_back()

    def __repr__(self) -> str:
        return (
            f"<PooledBuffer pending={len(self)} pooled_slices={self._pooled}"
            f" system_slices={self._system} timeout={self._timeout}>"
        )
