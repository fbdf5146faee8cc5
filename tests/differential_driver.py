"""Run seeded random operation scripts against every class that has a compiled twin; print
what each operation gave, as JSON lines. `tests/test_differential.py` runs this once per
build, in two child processes, and compares the two traces operation by operation.

Usage: python differential_driver.py SEED [SEED ...] (the build comes from the
environment: `OBJPOOL_PURE_PYTHON=1` runs the Python reference).

Every record is [seed, step, operation, outcome], where the outcome is a result's repr or
["raised", exception type, message], and every few steps a pool's stats snapshot. Nothing
in a record depends on the machine: no ids, no clocks (SizedPool gets a fake one), and
`waited_seconds` is left out.
"""

from __future__ import annotations

import dataclasses
import gc
import io
import json
import random
import re
import sys
import warnings
from collections.abc import Callable, Iterator
from typing import Any

from objpool import BufAllocation, BufPool, ByteBuffer, OwnedRef, Pool, SizedPool
from objpool.sv2 import BufferFromSystemMemory, BufferPool, Decoder, Encoder, PooledBuffer, Slice

INTS = [0, 1, 2, 3, 7, 8, 63, 64, 65, 255, 4096, 2**63, -1, -2**63 - 1]  # 2**31 would be built: 2 GiB


class Widget:
    def __init__(self) -> None:
        self.n = 0

    def reset(self) -> None:
        if self.n < 0:
            raise RuntimeError("reset refused")
        self.n = 0


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def shown(value: object) -> object:
    """A record of a result that both builds can agree on (no ids, no addresses)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, bytes | bytearray):
        return ["bytes", value.hex()]
    if isinstance(value, memoryview):
        return ["view", len(value), value.readonly]
    if isinstance(value, list | tuple):
        return [shown(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = dataclasses.asdict(value)
        fields.pop("waited_seconds", None)  # a wall-clock measure
        return [type(value).__name__, fields]
    return ["object", type(value).__name__, re.sub(r" at 0x[0-9a-f]+", "", repr(value))]  # no addresses


def outcome(call: Callable[[], object]) -> object:
    try:
        return shown(call())
    except Exception as exc:  # compared, not handled
        return ["raised", type(exc).__name__, str(exc)]


class Script:
    """One seed's operations on one set of objects."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.seed = seed
        self.step = 0
        self.clock = Clock()
        self.pool: Pool[Widget] = Pool(Widget, 3, name="w", thread_cache=self.rng.choice([False, True]))
        self.other: Pool[Widget] = Pool(Widget, 1)
        self.refs: list[OwnedRef[Widget]] = []
        self.stale: list[Any] = []  # handles, allocations and slices released: used again on purpose
        self.buffer = ByteBuffer(self.rng.choice([0, 16, 100]))
        self.bufpool = BufPool(64, 64 * self.rng.choice([1, 5, 8, 40]), name="b", thread_cache=self.rng.choice([False, True]))
        self.allocations: list[Any] = []
        self.sized = SizedPool(
            min_size=64, max_size=1024, max_retained=2048, clock=self.clock, thread_cache=self.rng.choice([False, True])
        )
        self.sized_refs: list[OwnedRef[ByteBuffer]] = []
        self.sv2 = [BufferFromSystemMemory(16), BufferPool(256), PooledBuffer(Pool(lambda: ByteBuffer(128), 2))]
        self.slices: list[Slice] = []
        self.decoder = Decoder(BufferPool(4096))
        self.frames: list[Any] = []

    def operations(self) -> list[Callable[[], object]]:
        rng = self.rng

        def n() -> int:
            return rng.choice(INTS)

        def pick(items: list[Any]) -> Any:
            return items[rng.randrange(len(items))] if items else None

        def pool_allocate() -> object:
            ref = self.pool.allocate()
            ref.value.n = rng.randrange(-1, 5)  # a negative n makes its reset fail
            self.refs.append(ref)
            return ref

        def pool_release() -> object:
            ref = pick(self.refs)
            if ref is None:
                return None
            if rng.random() < 0.8 and ref in self.refs:
                self.refs.remove(ref)
                self.stale.append(ref)
            return rng.choice([ref.release, lambda: self.pool.deallocate(ref), lambda: self.other.deallocate(ref)])()

        def reuse_stale() -> object:
            stale = pick(self.stale)
            if stale is None:
                return None
            uses: list[Callable[[], object]] = [stale.release, lambda: stale.alive, lambda: repr(stale)]
            if isinstance(stale, OwnedRef):
                uses.append(lambda: stale.value)
            elif isinstance(stale, BufAllocation):
                uses += [lambda: len(stale.view), lambda: len(stale), lambda: len(list(stale)), stale.__enter__]
            return rng.choice(uses)()

        def pool_leak() -> object:
            if self.refs:
                self.refs.pop()
                gc.collect()
            return self.pool.stats()

        def buffer_op() -> object:
            buffer = self.buffer
            choices: list[Callable[[], object]] = [
                lambda: buffer.commit(n()),
                lambda: len(buffer.reserve(n())),
                lambda: buffer.write(bytes(range(rng.randrange(0, 40)))),
                lambda: buffer.commit(len(buffer.writable()) + rng.choice([-1, 0, 1])),  # the edge
                lambda: buffer.readinto(io.BytesIO(bytes(rng.randrange(0, 50)))),
                buffer.reset,
                lambda: (len(buffer), buffer.capacity, bytes(buffer)),
            ]
            return rng.choice(choices)()

        def bufpool_allocate() -> object:
            count = rng.choice([n(), 1, 2, 3, 5])
            got = self.bufpool.try_allocate(count) if rng.random() < 0.5 else self.bufpool.allocate(count)
            if got is not None:
                self.allocations.append(got)
            return got

        def bufpool_release() -> object:
            got = pick(self.allocations)
            if got is None:
                return self.bufpool.trim(rng.choice([0, 3600]))
            if got in self.allocations:
                self.allocations.remove(got)
                self.stale.append(got)
            return rng.choice([got.release, lambda: self.bufpool.deallocate(got), lambda: len(got.view)])()

        def sized_op() -> object:
            if self.sized_refs and rng.random() < 0.5:
                ref = self.sized_refs.pop(rng.randrange(len(self.sized_refs)))
                self.stale.append(ref)
                gives_back: list[Callable[[], object]] = [ref.release, lambda: self.sized.deallocate(ref)]
                return rng.choice(gives_back)()
            self.clock.now += rng.choice([0.0, 1.0, 30.0])
            ref = self.sized.allocate(rng.choice([n(), 1, 100, 1000, 5000]))
            self.sized_refs.append(ref)
            return (ref.value.capacity, len(ref.value))

        def sv2_op() -> object:
            buffer = pick(self.sv2)
            if rng.random() < 0.5:
                view = buffer.get_writable(rng.choice([n(), 0, 10, 100, 300]))
                view[: min(3, len(view))] = b"abc"[: min(3, len(view))]
                return len(view)
            owned = buffer.get_data_owned()
            self.slices.append(owned)
            return (len(owned), bytes(owned.view))

        def slice_op() -> object:
            owned = pick(self.slices)
            if owned is None:
                return None
            if rng.random() < 0.7 and owned in self.slices:
                self.slices.remove(owned)
                self.stale.append(owned)
            return rng.choice([owned.release, lambda: bytes(owned.view), lambda: owned.alive])()

        def decode() -> object:
            encoder = Encoder(BufferFromSystemMemory(64))
            channel = rng.random() < 0.3
            payload = bytes(rng.randrange(4 if channel else 0, 80))
            encoded = encoder.encode(rng.randrange(0, 256), payload, extension_type=rng.choice([0, 1, 0x7FFF]), channel_msg=channel)
            data = bytes(encoded.view)
            encoded.release()
            if rng.random() < 0.2:  # a corrupt header: a length past the limit, or garbage
                data = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 12)))
            cut = rng.randrange(len(data) + 1)
            if self.decoder.error is not None:  # a decoder stops at its first bad frame: a new one
                self.decoder = Decoder(BufferPool(4096))
            frames = self.decoder.feed(data[:cut]) + self.decoder.feed(data[cut:])
            self.frames.extend(frames)
            result = [(f.extension_type, f.msg_type, bytes(f.payload)) for f in frames]
            while len(self.frames) > 2:
                self.frames.pop(0).release()
            return result

        def close() -> object:
            which = rng.randrange(3)
            if which == 0:
                self.pool.close()
                return self.pool.stats()
            if which == 1:
                self.bufpool.close()
                return self.bufpool.stats()
            self.sized.close()
            return self.sized.stats()

        common = [pool_allocate, pool_release, pool_leak, reuse_stale, buffer_op, bufpool_allocate,
                  bufpool_release, sized_op, sv2_op, slice_op, decode]
        return common * 6 + [close]  # a close in about every 67 steps

    def run(self, steps: int) -> Iterator[list[object]]:
        operations = self.operations()
        for self.step in range(steps):
            operation = self.rng.choice(operations)
            yield [self.seed, self.step, operation.__name__, outcome(operation)]
            if self.step % 10 == 0:
                stats = [self.pool.stats(), self.bufpool.stats(), self.sized.stats()]
                yield [self.seed, self.step, "stats", [shown(s) for s in stats]]


def header_sweep() -> Iterator[list[object]]:
    """Every Sv2 header rule at and around its boundaries, the header fed whole and byte by byte.

    The compiled decoder tests a header against the reference's rules inline (calling the
    reference's `_check_header` on every frame would cost it about 10% per frame, measured
    with icount); this sweep is what proves both copies refuse the same headers, with the
    same messages."""
    step = 0
    for max_payload in (0, 3, 4, 5, 64, 65535):
        for length in sorted({0, 1, 3, 4, 5, 63, 64, 65, max_payload - 1, max_payload, max_payload + 1} - {-1}):
            for raw_ext in (0, 1, 0x7FFF, 0x8000, 0x8001, 0xFFFF):
                header = raw_ext.to_bytes(2, "little") + bytes([7]) + length.to_bytes(3, "little")
                data = header + bytes(range(256))[: min(length, 200)] * (1 + length // 200)
                data = data[: 6 + length]
                for chunks in ([data], [data[i : i + 1] for i in range(6)] + [data[6:]]):
                    decoder = Decoder(BufferPool(1 << 17), max_payload=max_payload)

                    def feed(decoder: Decoder = decoder, chunks: list[bytes] = chunks) -> object:
                        frames = [f for chunk in chunks for f in decoder.feed(chunk)]
                        return [[f.extension_type, f.channel_msg, f.msg_type, f.channel_id, len(f)] for f in frames]

                    yield [0, step, "header", [max_payload, length, raw_ext, len(chunks), outcome(feed)]]
                    step += 1


def main(seeds: list[int], steps: int = 150) -> None:
    warnings.simplefilter("ignore")  # leaks are the point; their warnings are not compared
    for record in header_sweep():
        sys.stdout.write(json.dumps(record) + "\n")
    for seed in seeds:
        for record in Script(seed).run(steps):
            sys.stdout.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main([int(arg) for arg in sys.argv[1:]])
