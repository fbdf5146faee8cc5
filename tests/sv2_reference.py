"""A plain, line-by-line port of upstream buffer_sv2's `BufferPool` (3.0.1), for tests only.

Invariant: with `fixed=False` this follows upstream method by method, defects included (the
XOR toggle, B1, B2, B3, usize underflow and out-of-bounds panics raised as `UpstreamPanic`);
with `fixed=True` it applies exactly the minimal B1-B3 fixes that `objpool/sv2/_buffer_pool.py`
describes, and explicit set/clear ownership. `objpool.sv2.BufferPool` must agree with `fixed=True` on every observable
(slot index, pool or system memory, offset, mode, bitmap) after every operation.

Names mirror upstream (`pool_back`, `inner_memory`, `try_clear_tail_unchecked`, ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

POOL_CAPACITY: Final = 8
IGNORE_INDEX: Final = 59


class UpstreamPanic(Exception):
    """Where upstream panics (index out of bounds, usize underflow, unreachable!())."""


def _u(x: int) -> int:
    """usize arithmetic: a negative result is a panic in upstream debug builds."""
    if x < 0:
        raise UpstreamPanic(f"usize underflow ({x})")
    return x


def leading_zeros(ss: int) -> int:
    return 8 - ss.bit_length()


def trailing_zeros(ss: int) -> int:
    if ss == 0:
        return 8
    return (ss & -ss).bit_length() - 1


def bit(index: int) -> int:
    return 0x80 >> (index - 1)


@dataclass
class RefSlice:
    """What a `Slice` looks like from outside: where its bytes are and which slot it holds."""

    index: int  # 1..8, or IGNORE_INDEX
    from_pool: bool  # upstream: owned is None
    offset: int  # pool offset (meaningless for system memory)
    data: bytes  # a copy of the bytes as handed out
    alive: bool = True


@dataclass
class PoolFront:
    back_start: int
    byte_capacity: int
    len: int = 0


Mode = Literal["back", "alloc"] | PoolFront


class RefSystemMemory:
    def __init__(self) -> None:
        self.inner = bytearray()

    def get_writable(self, n: int) -> tuple[int, int]:
        pos = len(self.inner)
        self.inner += bytes(n)
        return pos, n

    def get_data_owned(self) -> bytes:
        data = bytes(self.inner)
        self.inner = bytearray()
        return data

    def __len__(self) -> int:
        return len(self.inner)


class RefPool:
    """Upstream `BufferPool<BufferFromSystemMemory>`; bytes are tracked so tests can check them."""

    def __init__(self, capacity: int, *, fixed: bool = True, fix_b2: bool | None = None) -> None:
        self.fixed = fixed
        self.fix_b2 = fixed if fix_b2 is None else fix_b2  # to show B2 alone
        self.capacity = capacity
        self.pool = bytearray(capacity)
        # InnerMemory
        self.raw_offset = 0
        self.raw_len = 0
        self.slots: list[tuple[int, int]] = [(0, 0)] * POOL_CAPACITY
        self.inner_len = 0
        # PoolBack
        self.back_start = 0
        self.back_len = 0
        self.mode: Mode = "back"
        self.shared_state = 0
        self.system_memory = RefSystemMemory()
        # where the last get_writable put its bytes: ("pool", offset) or ("sys", offset)
        self.last_writable: tuple[str, int] = ("pool", 0)

    # ---- SharedState ----
    def toggle_on(self, index: int) -> None:
        if self.fixed:
            if self.shared_state & bit(index):
                raise AssertionError(f"slot {index} handed out while live")
            self.shared_state |= bit(index)
        else:
            self.shared_state ^= bit(index)

    def drop(self, s: RefSlice) -> None:
        assert s.alive
        s.alive = False
        if s.index == IGNORE_INDEX:
            return
        if self.fixed:
            self.shared_state &= ~bit(s.index)
        else:
            self.shared_state ^= bit(s.index)

    # ---- InnerMemory ----
    def slot(self, i: int) -> tuple[int, int]:
        if not 0 <= i < POOL_CAPACITY:
            raise UpstreamPanic(f"slots[{i}] out of bounds")
        return self.slots[i]

    def im_raw_offset(self) -> int:
        return self.im_raw_offset_from_len(self.inner_len)

    def im_raw_offset_from_len(self, length: int) -> int:
        if length == 0:
            return 0
        off, ln = self.slot(length - 1)
        return off + ln

    def copy_within(self, src: int, length: int, dst: int) -> None:
        if dst + length > self.capacity:
            raise UpstreamPanic("copy_within out of bounds")
        self.pool[dst : dst + length] = self.pool[src : src + length]

    def move_raw_at_front(self) -> None:
        if self.raw_len:
            self.copy_within(self.raw_offset, self.raw_len, 0)
        self.raw_offset = 0

    def move_raw_at_offset_unchecked(self, offset: int) -> None:
        if self.raw_len:
            self.copy_within(self.raw_offset, self.raw_len, offset)
        self.raw_offset = offset

    def front_end(self, shared_state: int, back_start: int) -> int:
        """End of the highest live front slot (the B2 fix's lower bound)."""
        if back_start == 0:
            return 0
        front = shared_state >> (POOL_CAPACITY - back_start)
        if front == 0:
            return 0
        highest = back_start - 1 - trailing_zeros(front)
        off, ln = self.slot(highest)
        return off + ln

    def try_change_len(self, slot_len: int, raw_len: int, shared_state: int) -> bool:
        raw_offset = self.im_raw_offset_from_len(slot_len)
        if self.fix_b2:  # B2: never resume inside a live front slice
            raw_offset = max(raw_offset, self.front_end(shared_state, self.back_start))
        end = raw_offset + self.raw_len
        if end + raw_len <= self.capacity:
            self.inner_len = slot_len
            self.move_raw_at_offset_unchecked(raw_offset)
            return True
        return False

    def im_reset(self) -> None:
        self.raw_len = 0
        self.raw_offset = 0
        self.slots = [(0, 0)] * POOL_CAPACITY

    def reset_raw(self) -> None:
        self.raw_len = 0
        self.raw_offset = 0

    def copy_into_system_memory(self) -> None:
        data = bytes(self.pool[self.raw_offset : self.raw_offset + self.raw_len])
        pos, _ = self.system_memory.get_writable(self.raw_len)
        self.system_memory.inner[pos : pos + len(data)] = data

    def has_tail_capacity(self, n: int) -> bool:
        return self.raw_offset + self.raw_len + n <= self.capacity

    def has_capacity_until_offset(self, n: int, offset: int) -> bool:
        return self.raw_offset + self.raw_len + n <= offset

    def get_writable_raw_unchecked(self, n: int) -> int:
        off = self.raw_offset + self.raw_len
        self.raw_len += n
        if off + n > self.capacity:
            raise UpstreamPanic("writable out of bounds")
        return off

    def im_get_data_owned(self) -> RefSlice:
        off, ln = self.raw_offset, self.raw_len
        index = IGNORE_INDEX
        if ln > 0:
            if self.inner_len >= POOL_CAPACITY:
                raise UpstreamPanic(f"slots[{self.inner_len}] out of bounds")
            self.slots[self.inner_len] = (off, ln)
            self.inner_len += 1
            index = self.inner_len
            self.toggle_on(index)
        self.raw_offset += ln
        self.raw_len = 0
        return RefSlice(index, True, off, bytes(self.pool[off : off + ln]))

    # ---- PoolBack ----
    def tail_is_clearable(self, ss: int) -> bool:
        element_to_drop = min(POOL_CAPACITY - self.back_start, trailing_zeros(ss))
        return element_to_drop <= self.back_len and self.back_start + self.back_len >= POOL_CAPACITY

    def try_clear_tail_unchecked(self, ss: int, n: int) -> bool:
        leading_0, trailing_0 = leading_zeros(ss), trailing_zeros(ss)
        element_in_back = _u(POOL_CAPACITY - self.back_start)
        element_to_drop = min(element_in_back, trailing_0)
        already_dropped = _u(POOL_CAPACITY - (self.back_start + self.back_len))
        if leading_0 == 0 and trailing_0 == 0:
            return False
        if leading_0 == 0 and element_in_back == 0:
            return False
        if element_to_drop < already_dropped:
            return False
        if leading_0 == 0:
            element_to_drop -= already_dropped
            self.back_len = _u(self.back_len - element_to_drop)
            return self.try_change_len(self.back_len + self.back_start, n, ss)
        return False

    def try_clear_head(self, ss: int) -> Mode:
        self.back_start = leading_zeros(ss)
        if self.back_start >= 1 and self.raw_len < self.slot(self.back_start)[0]:
            if self.back_start >= self.back_len:
                self.back_len = 0
            else:
                self.back_len -= self.back_start
            return PoolFront(self.back_start, self.slot(self.back_start)[0])
        return "alloc"

    def clear_unchecked(self, ss: int, n: int) -> Mode | None:
        """None means Ok(())."""
        if self.try_clear_tail_unchecked(ss, n):
            return None
        return self.try_clear_head(ss)

    def back_get_writable(self, n: int, ss: int) -> int | Mode:
        """An int is Ok(offset)."""
        if self.has_tail_capacity(n) and self.back_len + self.back_start < POOL_CAPACITY:
            return self.get_writable_raw_unchecked(n)
        if not self.tail_is_clearable(ss):
            return "alloc"
        result = self.clear_unchecked(ss, n)
        if result is None:
            if self.has_tail_capacity(n) and self.back_len < POOL_CAPACITY:
                return self.get_writable_raw_unchecked(n)
            return "alloc"
        return result

    # ---- PoolFront ----
    def front_try_clear_tail(self, f: PoolFront, ss: int) -> bool:
        ss >>= POOL_CAPACITY - f.len
        element_to_drop = trailing_zeros(ss)
        if element_to_drop == 0:
            return False
        if element_to_drop == 8:
            f.len = 0
            if self.fixed:  # B1: the slot count goes with the front slices
                self.inner_len = 0
        else:
            f.len = _u(f.len - element_to_drop)
            self.inner_len = f.len
        self.move_raw_at_offset_unchecked(self.im_raw_offset())
        return True

    def front_clear(self, f: PoolFront, ss: int, n: int) -> bool:
        if f.len > 0 and self.front_try_clear_tail(f, ss):
            return self.has_capacity_until_offset(n, f.byte_capacity)
        return False

    def front_get_writable(self, f: PoolFront, n: int, ss: int) -> int | Mode:
        if f.len < f.back_start and self.has_capacity_until_offset(n, f.byte_capacity):
            return self.get_writable_raw_unchecked(n)
        if self.front_clear(f, ss, n):
            return self.get_writable_raw_unchecked(n)
        return "back"

    # ---- BufferPool ----
    def reset(self) -> None:
        self.inner_len = 0
        if self.mode == "back":
            self.move_raw_at_front()
            self.back_start = self.back_len = 0
        elif isinstance(self.mode, PoolFront):
            self.move_raw_at_front()
            self.mode = "back"
            self.back_start = self.back_len = 0
        elif len(self.system_memory) < self.capacity:
            raw_len = len(self.system_memory)
            if raw_len > 0:
                data = self.system_memory.get_data_owned()
                self.raw_offset = 0
                self.raw_len = raw_len
                self.pool[0:raw_len] = data
            else:
                self.im_reset()
            self.mode = "back"
            self.back_start = self.back_len = 0

    def sys_writable(self, n: int) -> None:
        pos, _ = self.system_memory.get_writable(n)
        self.last_writable = ("sys", pos)

    def get_writable_from_system_memory(self, n: int, ss: int, without_check: bool) -> None:
        if (
            len(self.system_memory) > 0
            or without_check
            or self.back_len == 0
            or not self.tail_is_clearable(ss)
        ):
            self.sys_writable(n)
            return
        result = self.clear_unchecked(ss, n)
        if result is None:
            self.change_mode("back", n, ss)
            self.get_writable_(n, ss, False)
        elif isinstance(result, PoolFront):
            self.change_mode(result, n, ss)
            self.get_writable_(n, ss, False)
        elif result == "alloc":
            self.reset_raw()
            self.sys_writable(n)
        else:
            raise UpstreamPanic("unreachable clear result")

    def change_mode(self, mode: Mode, n: int, ss: int) -> None:
        cur = self.mode
        if cur == "back" and mode == "alloc":
            self.copy_into_system_memory()
            self.reset_raw()
            self.mode = "alloc"
        elif cur == "back" and isinstance(mode, PoolFront):
            self.inner_len = 0
            self.move_raw_at_front()
            self.mode = mode
        elif isinstance(cur, PoolFront) and mode == "back":
            if not self.tail_is_clearable(ss):
                self.copy_into_system_memory()
                self.reset_raw()
                self.mode = "alloc"
            elif self.try_clear_tail_unchecked(ss, n):
                self.mode = "back"
            else:  # "ALLOC 2"
                self.copy_into_system_memory()
                self.reset_raw()
                self.mode = "alloc"
        elif cur == "alloc" and mode == "back":
            self.inner_len = self.back_len + self.back_start
            self.mode = "back"
        elif cur == "alloc" and isinstance(mode, PoolFront):
            self.reset_raw()
            self.inner_len = 0
            self.mode = mode
        else:
            raise UpstreamPanic(f"change_mode {cur} -> {mode}")

    def get_writable_(self, n: int, ss: int, without_check: bool) -> None:
        mode = self.mode
        if mode == "back":
            result = self.back_get_writable(n, ss)
        elif isinstance(mode, PoolFront):
            result = self.front_get_writable(mode, n, ss)
        else:
            self.get_writable_from_system_memory(n, ss, without_check)
            return
        if isinstance(result, int):
            self.last_writable = ("pool", result)
            return
        self.change_mode(result, n, ss)
        self.get_writable_(n, ss, self.mode == "alloc")

    def get_writable(self, n: int) -> tuple[str, int]:
        """Returns ("pool", offset) or ("sys", offset) of the n bytes to fill."""
        ss = self.shared_state
        if ss == 0 and (self.fixed or self.back_len != 0):  # B3: reset whenever nothing is live
            self.reset()
        self.get_writable_(n, ss, False)
        return self.last_writable

    def fill(self, where: tuple[str, int], data: bytes) -> None:
        kind, off = where
        target = self.pool if kind == "pool" else self.system_memory.inner
        target[off : off + len(data)] = data

    def get_data_owned(self) -> RefSlice:
        mode = self.mode
        if mode == "back":
            res = self.im_get_data_owned()
            self.back_len = _u(self.inner_len - self.back_start)
            return res
        if isinstance(mode, PoolFront):
            res = self.im_get_data_owned()
            mode.len = self.inner_len
            return res
        return RefSlice(IGNORE_INDEX, False, 0, self.system_memory.get_data_owned())

    def __len__(self) -> int:
        if self.mode == "alloc":
            return len(self.system_memory)
        return self.raw_len

    def pending(self) -> bytes:
        if self.mode == "alloc":
            return bytes(self.system_memory.inner)
        return bytes(self.pool[self.raw_offset : self.raw_offset + self.raw_len])

    def mode_name(self) -> str:
        return "front" if isinstance(self.mode, PoolFront) else self.mode

    def write(self, data: bytes) -> RefSlice:
        """`W n`: get_writable, fill, get_data_owned."""
        self.fill(self.get_writable(len(data)), data)
        return self.get_data_owned()

    def pool_bytes(self, s: RefSlice) -> bytes:
        return bytes(self.pool[s.offset : s.offset + len(s.data)])
