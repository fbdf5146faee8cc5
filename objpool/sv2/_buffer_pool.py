"""`BufferPool`: the Sv2 8-slot buffer pool (upstream buffer_sv2 3.0.1), without its defects.

Invariant: bit `0x80 >> (i-1)` of the slot map is set exactly while a pooled `Slice` with
index i is alive, and live pooled slices never share a byte. The map is owned by the pool's
thread: releasing threads only append their index to `_released` (one atomic `list.append`),
and the owner folds that list into the map (explicit clear, never a toggle) before it reads
the map, at the start of `get_writable`, `get_data_owned`, `slot_bits` and `is_droppable`.

The algorithm is upstream's (stratum-mining/stratum, `sv2/buffer-sv2`, release 3.0.1), ported
method by method (names kept: `_try_clear_tail_unchecked`, `_try_clear_head`, `_change_mode`,
...), quirks included: the tail clear shrinks `PoolBack.len` even when the move then fails, the
head clear overwrites `back_start` even on its way to system memory, `try_clear_head`
under-counts (upstream #2314). Three defects, observed by building and running upstream, are
fixed minimally, each where it arises:

- B1: a front tail clear that frees every front slice left the slot count stale, so the next
  front slice reused slot indexes live back slices held, and memory was handed out twice (no
  upstream issue covers this branch; #2402 and #2273 are neighbours). Fix: also reset the
  slot count there.
- B2: resuming at the back after the front could start inside a live front slice (upstream
  #2402). Fix: resume at the larger of upstream's offset and the end of the highest live front
  slot, so sequences where upstream's offset is already safe keep upstream's results.
- B3: a pool that fell back to system memory while its back run was empty stayed there for
  good (related wedges: #2384, #2273). Fix: reset whenever no slice is alive, whatever
  `PoolBack.len` says.

`tests/sv2_reference.py` keeps a plain port (with and without the fixes) that the tests compare
with this one on random operation sequences.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Final

from typing_extensions import Buffer as ReadableBuffer

from .._compiled import COMPILED
from .._views import handoff_exporter, handoff_view

from ._buffer import Buffer, BufferFromSystemMemory
from ._modes import POOL_CAPACITY, PoolMode
from ._sizes import MAX_SIZE, check_capacity, check_size
from ._slice import ReleaseCallback, Slice

__all__ = ["BufferPool"]

_BACK: Final = PoolMode.BACK
_FRONT: Final = PoolMode.FRONT
_ALLOC: Final = PoolMode.ALLOC

# Results of the per-mode writers: an offset >= 0 means "reserved there"; these ask for a
# mode change (upstream's `Err(PoolMode)`), and _OK is a clear's `Ok(())`.
_OK: Final = 0
_TO_BACK: Final = -1
_TO_FRONT: Final = -2
_TO_ALLOC: Final = -3

# u8 leading_zeros / trailing_zeros, as upstream reads the slot map.
_LZ: Final = tuple(8 - i.bit_length() for i in range(256))
_TZ: Final = tuple(8 if i == 0 else (i & -i).bit_length() - 1 for i in range(256))
_adopt: Final = Slice._adopt

_MASK: Final = (0,) + tuple(0x80 >> i for i in range(8))
_CLEAR: Final = (0xFF,) + tuple(0xFF ^ (0x80 >> i) for i in range(8))


class _BufferPoolCore:
    """`BufferPool`'s hot path: `get_writable` and `get_data_owned`, and the state they touch.

    When the install compiled it, `objpool.sv2._cbuffer_pool.BufferPoolCore` replaces this class:
    the same methods and messages, checked by the same tests. Everything else (the ported
    algorithm's slow paths) stays in `BufferPool`, which the core calls back into.
    """

    __slots__ = (
        "_back_len",
        "_back_start",
        "_bits",
        "_borrow",
        "_capacity",
        "_exporter",
        "_f_back_start",
        "_f_capacity",
        "_f_len",
        "_ilen",
        "_limit",
        "_mode",
        "_mv",
        "_next_front_capacity",
        "_on_release",
        "_pristine",
        "_raw_end",
        "_raw_offset",
        "_released",
        "_slot_len",
        "_slot_off",
        "_start",
        "_sys",
    )


    _back_len: int
    _back_start: int
    _bits: int
    _borrow: memoryview | None
    _capacity: int
    _exporter: ReadableBuffer | None  # see objpool._views.handoff_exporter
    _f_back_start: int
    _f_capacity: int
    _f_len: int
    _ilen: int
    _limit: int
    _mode: PoolMode
    _mv: memoryview
    _next_front_capacity: int
    _on_release: tuple[ReleaseCallback, ...]
    _pristine: bool
    _raw_end: int
    _raw_offset: int
    _released: list[int]
    _slot_len: list[int]
    _slot_off: list[int]
    _start: int
    _sys: BufferFromSystemMemory

    def get_writable(self, n: int) -> memoryview:
        if n.__class__ is not int or n < 0 or n > MAX_SIZE:
            n = check_size(n)
        borrow = self._borrow
        if borrow is not None:
            borrow.release()
        # Pristine: as just reset, nothing alive (so the map is 0 and a reset is a no-op).
        if not self._pristine:
            released = self._released
            if released:  # _drain(), inlined
                bits = self._bits
                while released:
                    bits &= _CLEAR[released.pop()]
                self._bits = bits
            # B3: reset whenever nothing is alive (upstream also wants PoolBack.len != 0).
            if not self._bits:
                if self._mode is _BACK and self._raw_end == self._raw_offset:
                    # _reset() + _sync(), inlined for the common case: nothing pending
                    self._ilen = self._raw_offset = self._raw_end = 0
                    self._back_start = self._back_len = 0
                    self._limit = self._capacity
                    self._pristine = True
                else:
                    self._reset()
                    self._sync()
        if self._mode is _ALLOC and self._sys._len:
            # Mid-message in system memory: upstream's get_writable_from_system_memory keeps
            # writing there, and _sync() would change nothing. 550 -> 320 ns per 10-byte chunk.
            borrow = self._borrow = self._sys.get_writable(n)
            return borrow
        off = self._raw_end
        end = off + n
        if end <= self._limit:  # fast path: PoolBack::get_writable's first branch
            self._raw_end = end
            borrow = self._borrow = self._mv[off:end]
            return borrow
        # The map is current: drained above, or pristine (nothing alive, nothing to drain).
        borrow = self._borrow = self._get_writable_(n, self._bits, False)
        self._sync()
        return borrow

    def get_data_owned(self) -> Slice:
        borrow = self._borrow
        if borrow is not None:
            borrow.release()
            self._borrow = None
        if self._released:
            self._drain()
        self._start = 0  # upstream keeps it (#2385)
        mode = self._mode
        if mode is _ALLOC:
            return self._sys.get_data_owned()
        off = self._raw_offset
        end = self._raw_end
        n = end - off
        exporter = self._exporter  # the slice's view, in pool memory (0 bytes: no slot, below)
        view = self._mv[off:end] if exporter is None else handoff_view(exporter, off, end)
        if n:
            ilen = self._ilen
            self._slot_off[ilen] = off  # IndexError past 8: upstream panics the same way
            self._slot_len[ilen] = n
            ilen += 1
            self._ilen = ilen
            mask = _MASK[ilen]
            bits = self._bits
            if bits & mask:
                raise RuntimeError(f"objpool bug: slot {ilen} handed out while alive")
            self._bits = bits | mask
            self._raw_offset = end
            self._pristine = False
            s = _adopt(view, ilen, self._on_release[ilen], True)
        else:  # upstream: index 59, pool-backed, no slot
            s = _adopt(view, None, None, True)
        if mode is _BACK:
            back_start = self._back_start
            self._back_len = self._ilen - back_start
            if self._ilen >= POOL_CAPACITY:  # == back_len + back_start
                self._limit = -1
        else:
            self._f_len = self._ilen
        return s

    def _drain(self) -> None:
        raise NotImplementedError  # BufferPool's

    def _reset(self) -> None:
        raise NotImplementedError  # BufferPool's

    def _sync(self) -> None:
        raise NotImplementedError  # BufferPool's

    def _get_writable_(self, n: int, ss: int, without_check: bool) -> memoryview:
        raise NotImplementedError  # BufferPool's


if COMPILED and not TYPE_CHECKING:  # type checkers read the Python class above, the reference
    from ._cbuffer_pool import BufferPoolCore as _BufferPoolCore


class BufferPool(_BufferPoolCore, Buffer):
    """The Sv2 `BufferPool`: one preallocated bytearray feeding up to 8 live slices.

    Messages are written in place and handed over as pooled `Slice`s (index 1..8). When the
    algorithm finds no free slot or bytes, the pool falls back to an internal
    `BufferFromSystemMemory` (mode ALLOC; slices with index None) until memory frees up; the
    pending bytes move along with every mode switch and stay contiguous.

    Observable results (slot index, pool or system memory, mode, slot map after every
    operation) are upstream's wherever upstream keeps its own invariants; upstream's defects
    B1-B3 are fixed (see the module docstring and README).

    Thread rules: one thread uses the pool; slices may be released from any thread, which
    costs one list append and never blocks the owner. Dropping the pool while slices are
    alive is fine: their memory stays valid until they are released.
    """

    __slots__ = ("__weakref__",)

    def __init__(self, capacity: int) -> None:
        """Allocate `capacity` bytes once.

        Raises:
            TypeError: `capacity` is not an int.
            ValueError: `capacity` is negative or larger than `MAX_SIZE`.
        """
        self._capacity = check_capacity(capacity)
        memory = bytearray(self._capacity)
        self._mv = memoryview(memory)
        self._exporter = handoff_exporter(memory)  # slices another thread releases are cut from it
        # InnerMemory: the pending region [_raw_offset, _raw_end) (upstream keeps raw_len;
        # the end is what the hot path needs) and where each slot's slice lives.
        self._raw_offset = 0
        self._raw_end = 0
        self._slot_off = [0] * POOL_CAPACITY
        self._slot_len = [0] * POOL_CAPACITY
        self._ilen = 0  # slot entries used in this run; the next index is _ilen + 1
        # PoolBack
        self._back_start = 0
        self._back_len = 0
        # PoolFront (meaningful in FRONT mode)
        self._f_back_start = 0
        self._f_capacity = 0
        self._f_len = 0
        self._next_front_capacity = 0
        self._mode = _BACK
        self._bits = 0
        # Shared with the slices' callbacks, which must not keep the pool alive.
        released: list[int] = []
        self._released = released
        self._on_release: tuple[ReleaseCallback, ...] = tuple(
            functools.partial(released.append, i) for i in range(POOL_CAPACITY + 1)
        )
        self._sys = BufferFromSystemMemory()
        self._start = 0
        self._borrow: memoryview | None = None
        # Hot-path summaries of the state above, recomputed by _sync() after every change
        # outside the fast paths: the fast path reserves when end <= _limit (BACK mode with
        # a free slot, else -1); _pristine means a reset would change nothing.
        self._limit = self._capacity
        self._pristine = True

    def _sync(self) -> None:
        back = self._back_len + self._back_start
        if self._mode is _BACK:
            self._limit = self._capacity if back < POOL_CAPACITY else -1
            self._pristine = not (self._raw_offset or self._ilen or back or self._bits)
        else:
            self._limit = -1
            self._pristine = False

    # ---- introspection -------------------------------------------------------------------

    @property
    def capacity(self) -> int:
        """The pool's size in bytes."""
        return self._capacity

    @property
    def mode(self) -> PoolMode:
        """Where the next bytes come from (after the last call)."""
        return self._mode

    def is_back_mode(self) -> bool:
        return self._mode is _BACK

    def is_front_mode(self) -> bool:
        return self._mode is _FRONT

    def is_alloc_mode(self) -> bool:
        return self._mode is _ALLOC

    @property
    def slot_bits(self) -> int:
        """The slot map, 0..255: slot i is bit `0x80 >> (i-1)` (slot 1 is the high bit)."""
        if self._released:
            self._drain()
        return self._bits

    def is_droppable(self) -> bool:
        """True when no pooled slice is alive (upstream's `droppable()`)."""
        if self._released:
            self._drain()
        return self._bits == 0

    @property
    def start(self) -> int:
        """The offset last set by `danger_set_start` (0 after `get_data_owned`)."""
        return self._start

    def danger_set_start(self, i: int) -> None:
        self._start = check_size(i, "i")

    def __len__(self) -> int:
        if self._mode is _ALLOC:
            return len(self._sys)
        return self._raw_end - self._raw_offset

    def __repr__(self) -> str:
        bits = self.slot_bits
        slots = "".join("1" if bits & (0x80 >> i) else "-" for i in range(POOL_CAPACITY))
        return (
            f"<BufferPool capacity={self._capacity} {self._mode.name} slots={slots}"
            f" pending={len(self)}>"
        )

    def _drain(self) -> None:
        released = self._released
        bits = self._bits
        while released:  # only the owner pops, so a non-empty list stays non-empty for pop()
            bits &= _CLEAR[released.pop()]
        self._bits = bits

    # ---- the Buffer interface ------------------------------------------------------------

    def get_data_by_ref(self, n: int) -> memoryview:
        """The first `min(n, len(self))` pending bytes (upstream ignores `n`, #2352)."""
        if n.__class__ is not int or n < 0 or n > MAX_SIZE:
            n = check_size(n)
        borrow = self._borrow
        if borrow is not None:
            borrow.release()
        if self._mode is _ALLOC:
            borrow = self._sys.get_data_by_ref(n)
        else:
            off = self._raw_offset
            borrow = self._mv[off : off + min(n, self._raw_end - off)]
        self._borrow = borrow
        return borrow

    # ---- InnerMemory ---------------------------------------------------------------------

    def _raw_offset_from_len(self, length: int) -> int:
        if length == 0:
            return 0
        return self._slot_off[length - 1] + self._slot_len[length - 1]

    def _move_raw_at_offset(self, offset: int) -> None:
        src = self._raw_offset
        n = self._raw_end - src
        if n:
            self._mv[offset : offset + n] = self._mv[src : src + n]
        self._raw_offset = offset
        self._raw_end = offset + n

    def _reset_raw(self) -> None:
        self._raw_offset = 0
        self._raw_end = 0

    def _reserve(self, n: int) -> int:
        off = self._raw_end
        self._raw_end = off + n
        return off

    def _copy_into_system_memory(self) -> None:
        off = self._raw_offset
        end = self._raw_end
        self._sys.get_writable(end - off)[:] = self._mv[off:end]

    def _front_end(self, ss: int, back_start: int) -> int:
        """End of the highest live front slot, or 0 (the B2 fix's lower bound)."""
        if back_start == 0:
            return 0
        front = ss >> (POOL_CAPACITY - back_start)
        if front == 0:
            return 0
        highest = back_start - 1 - _TZ[front]
        return self._slot_off[highest] + self._slot_len[highest]

    def _try_change_len(self, slot_len: int, n: int, ss: int) -> bool:
        raw_offset = self._raw_offset_from_len(slot_len)
        front_end = self._front_end(ss, self._back_start)
        if front_end > raw_offset:  # B2: upstream would resume inside a live front slice
            raw_offset = front_end
        if raw_offset + (self._raw_end - self._raw_offset) + n <= self._capacity:
            self._ilen = slot_len
            self._move_raw_at_offset(raw_offset)
            return True
        return False

    # ---- PoolBack ------------------------------------------------------------------------

    def _tail_is_clearable(self, ss: int) -> bool:
        element_to_drop = min(POOL_CAPACITY - self._back_start, _TZ[ss])
        return (
            element_to_drop <= self._back_len
            and self._back_start + self._back_len >= POOL_CAPACITY
        )

    def _try_clear_tail_unchecked(self, ss: int, n: int) -> bool:
        """Free the back run's freed suffix; needs slot 1 alive (upstream's match arms)."""
        if _LZ[ss] != 0 or _TZ[ss] == 0:
            return False
        back_start = self._back_start
        element_in_back = POOL_CAPACITY - back_start
        # This arm and the next are upstream's; every caller checks _tail_is_clearable
        # first, which (with the B3 fix) rules both out. Kept so the port stays literal.
        if element_in_back == 0:
            return False
        element_to_drop = min(element_in_back, _TZ[ss])
        already_dropped = POOL_CAPACITY - (back_start + self._back_len)
        if element_to_drop < already_dropped:
            return False
        # Upstream quirk kept: the back shrinks even when the move below then fails.
        self._back_len -= element_to_drop - already_dropped
        return self._try_change_len(self._back_len + back_start, n, ss)

    def _try_clear_head(self, ss: int) -> int:
        """Go FRONT if the head of the slot map was freed and the pending bytes fit there.

        Upstream quirks kept: `back_start` is overwritten even on the way to ALLOC, and the
        back length is shrunk by the whole new `back_start` (an under-count).
        """
        back_start = _LZ[ss]
        self._back_start = back_start
        if back_start >= 1 and self._raw_end - self._raw_offset < self._slot_off[back_start]:
            if back_start >= self._back_len:
                self._back_len = 0
            else:
                self._back_len -= back_start
            self._next_front_capacity = self._slot_off[back_start]
            return _TO_FRONT
        return _TO_ALLOC

    def _clear_unchecked(self, ss: int, n: int) -> int:
        if self._try_clear_tail_unchecked(ss, n):
            return _OK
        return self._try_clear_head(ss)

    def _back_get_writable(self, n: int, ss: int) -> int:
        if (
            self._raw_end + n <= self._capacity
            and self._back_len + self._back_start < POOL_CAPACITY
        ):
            return self._reserve(n)
        if not self._tail_is_clearable(ss):
            return _TO_ALLOC
        result = self._clear_unchecked(ss, n)
        if result != _OK:
            return result
        if (
            self._raw_end + n <= self._capacity
            and self._back_len < POOL_CAPACITY
        ):
            return self._reserve(n)
        return _TO_ALLOC

    # ---- PoolFront -----------------------------------------------------------------------

    def _front_try_clear_tail(self, ss: int) -> bool:
        element_to_drop = _TZ[ss >> (POOL_CAPACITY - self._f_len)]
        if element_to_drop == 0:
            return False
        if element_to_drop == 8:
            self._f_len = 0
            self._ilen = 0  # B1: upstream leaves the slot count stale here
        else:
            self._f_len -= element_to_drop
            self._ilen = self._f_len
        self._move_raw_at_offset(self._raw_offset_from_len(self._ilen))
        return True

    def _front_get_writable(self, n: int, ss: int) -> int:
        fits = self._raw_end + n <= self._f_capacity
        if self._f_len < self._f_back_start and fits:
            return self._reserve(n)
        if (
            self._f_len > 0
            and self._front_try_clear_tail(ss)
            and self._raw_end + n <= self._f_capacity
        ):
            return self._reserve(n)
        return _TO_BACK

    # ---- BufferPool ----------------------------------------------------------------------

    def _reset(self) -> None:
        self._ilen = 0
        mode = self._mode
        if mode is not _ALLOC:
            self._move_raw_at_offset(0)
            self._mode = _BACK
            self._back_start = 0
            self._back_len = 0
            return
        pending = len(self._sys)
        if pending >= self._capacity:
            return  # upstream: too big to move back; stay in ALLOC
        if pending:
            self._mv[0:pending] = self._sys.get_data_by_ref(pending)
            self._sys.get_data_owned().release()
            self._raw_offset = 0
            self._raw_end = pending
        else:
            self._reset_raw()
            self._slot_off = [0] * POOL_CAPACITY
            self._slot_len = [0] * POOL_CAPACITY
        self._mode = _BACK
        self._back_start = 0
        self._back_len = 0

    def _get_writable_from_system_memory(
        self, n: int, ss: int, without_check: bool
    ) -> memoryview:
        if (
            len(self._sys) > 0
            or without_check
            or self._back_len == 0
            or not self._tail_is_clearable(ss)
        ):
            return self._sys.get_writable(n)
        result = self._clear_unchecked(ss, n)
        if result == _OK:
            self._change_mode(_TO_BACK, n, ss)
            return self._get_writable_(n, ss, False)
        if result == _TO_FRONT:
            self._change_mode(_TO_FRONT, n, ss)
            return self._get_writable_(n, ss, False)
        self._reset_raw()
        return self._sys.get_writable(n)

    def _enter_front(self) -> None:
        self._mode = _FRONT
        self._f_back_start = self._back_start
        self._f_capacity = self._next_front_capacity
        self._f_len = 0

    def _to_system_memory(self) -> None:
        self._copy_into_system_memory()
        self._reset_raw()
        self._mode = _ALLOC

    def _change_mode(self, target: int, n: int, ss: int) -> None:
        mode = self._mode
        if mode is _BACK:
            if target == _TO_ALLOC:
                self._to_system_memory()
            else:  # _TO_FRONT
                self._ilen = 0
                self._move_raw_at_offset(0)
                self._enter_front()
        elif mode is _FRONT:  # target is _TO_BACK
            if self._tail_is_clearable(ss) and self._try_clear_tail_unchecked(ss, n):
                self._mode = _BACK
            else:  # upstream's "ALLOC 2"
                self._to_system_memory()
        elif target == _TO_BACK:
            self._ilen = self._back_len + self._back_start
            self._mode = _BACK
        else:  # ALLOC -> FRONT
            self._reset_raw()
            self._ilen = 0
            self._enter_front()

    def _get_writable_(self, n: int, ss: int, without_check: bool) -> memoryview:
        while True:
            mode = self._mode
            if mode is _BACK:
                result = self._back_get_writable(n, ss)
            elif mode is _FRONT:
                result = self._front_get_writable(n, ss)
            else:
                return self._get_writable_from_system_memory(n, ss, without_check)
            if result >= 0:
                return self._mv[result : result + n]
            self._change_mode(result, n, ss)
            without_check = self._mode is _ALLOC
