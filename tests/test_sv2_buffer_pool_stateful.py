"""BufferPool as a Hypothesis state machine, in lockstep with the reference port.

After every step (checked by `Twin`): live slices never overlap, the slot map equals the set of
live pooled indexes, every live slice still holds its bytes, and the pool agrees with the
fixed reference port on mode, slot map, indexes and offsets. Once everything is released the
next write lands at offset 0 in BACK mode.
"""

from __future__ import annotations

import threading

from hypothesis import note, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from objpool.sv2 import PoolMode
from sv2_twin import Twin, bits_str, pool_offset

# Small messages in small pools reach the deep states (8 live, FRONT, tail clears) quickly.
sizes = st.integers(1, 5)


class BufferPoolMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.twin = Twin(40)

    @initialize(
        capacity=st.sampled_from([40, 40, 40, 64, 24, 16, 8, 0, 100, 512, 13, 57]),
        prefill=st.booleans(),
    )
    def make_pool(self, capacity: int, prefill: bool) -> None:
        self.twin = Twin(capacity)
        if prefill:  # start from a full back run, where FRONT and tail clears begin
            self.fill_every_slot()

    def has_live(self) -> bool:
        return bool(self.twin.live)

    @rule(n=sizes)
    def write(self, n: int) -> None:
        self.twin.write(n)

    @rule(n=st.integers(0, 120))
    def write_big(self, n: int) -> None:
        self.twin.write(n)

    @rule(ns=st.lists(sizes, min_size=1, max_size=9))
    def write_burst(self, ns: list[int]) -> None:
        for n in ns:
            self.twin.write(n)

    @rule()
    def fill_every_slot(self) -> None:
        """Equal messages until the back run is full: the gate to FRONT and tail clears."""
        n = max(1, self.twin.pool.capacity // 8)
        for _ in range(8):
            self.twin.write(n)

    @rule(header=st.integers(1, 6), payload=st.integers(1, 6) | st.integers(1, 40))
    def write_header_then_payload(self, header: int, payload: int) -> None:
        self.twin.write(header + payload, split=header)

    @rule()
    def empty_take(self) -> None:
        self.twin.take()

    @precondition(has_live)
    @rule()
    def release_oldest(self) -> None:
        self.twin.release(0)

    @precondition(has_live)
    @rule()
    def release_newest(self) -> None:
        self.twin.release(len(self.twin.live) - 1)

    @precondition(has_live)
    @rule(k=st.integers(1, 4))
    def release_oldest_few(self, k: int) -> None:
        for _ in range(min(k, len(self.twin.live))):
            self.twin.release(0)

    @precondition(has_live)
    @rule(slots=st.lists(st.integers(1, 8), min_size=1, max_size=4))
    def release_slots(self, slots: list[int]) -> None:
        """Free chosen slots: a head, a tail or a hole of the slot map."""
        for slot in slots:
            for i, (_, s) in enumerate(self.twin.live):
                if s.index == slot:
                    self.twin.release(i)
                    break

    @precondition(has_live)
    @rule(k=st.integers(1, 7), head=st.booleans())
    def release_head_or_tail_run(self, k: int, head: bool) -> None:
        """Free slots 1..k (opens FRONT) or the last k slots (a tail clear)."""
        self.release_slots(list(range(1, k + 1)) if head else list(range(9 - k, 9)))

    @precondition(has_live)
    @rule(i=st.integers(0, 1000))
    def release_any(self, i: int) -> None:
        self.twin.release(i % len(self.twin.live))

    @precondition(has_live)
    @rule(i=st.integers(0, 1000))
    def release_from_another_thread(self, i: int) -> None:
        r, s = self.twin.live.pop(i % len(self.twin.live))
        t = threading.Thread(target=s.release)
        t.start()
        t.join(timeout=10)
        assert not s.alive
        self.twin.ref.drop(r)
        self.twin.check()

    @precondition(lambda self: not self.twin.live and self.twin.pool.capacity > 0)
    @rule(n=st.integers(1, 24))
    def all_released_next_write_at_offset_zero(self, n: int) -> None:
        n = min(n, self.twin.pool.capacity)
        s = self.twin.write(n)
        assert (s.index, self.twin.pool.mode) == (1, PoolMode.BACK)
        assert pool_offset(self.twin.pool, s.view) == 0

    @invariant()
    def agrees_with_reference(self) -> None:
        note(f"{self.twin.pool!r} ref={bits_str(self.twin.ref.shared_state)}")
        self.twin.check()

    def teardown(self) -> None:
        for _, s in self.twin.live:
            s.release()


# Example counts follow the Hypothesis profile from conftest.py (100 by default).
BufferPoolMachine.TestCase.settings = settings(
    max_examples=settings().max_examples, stateful_step_count=60, deadline=None
)
TestBufferPool = BufferPoolMachine.TestCase
