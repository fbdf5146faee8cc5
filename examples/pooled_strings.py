"""Pooled string builders: Python's answer to pooling Rust's `String`.

In Rust, a pooled `String` pays off because `clear()` keeps its heap capacity, so the next
user appends without reallocating. Python's `str` is immutable, so what can be pooled is the
*builder*, and only if its reset keeps the memory. The obvious builders do not:
`list.clear()` (and `del parts[:]`) frees the list's item array, `bytearray.clear()` frees
its bytes, and `io.StringIO.truncate(0)` shrinks its buffer (all checked with
`sys.getsizeof` / `tracemalloc` on CPython 3.11).

`TextBuilder` is the faithful analogue of `String`: UTF-8 bytes in a `bytearray` that only
ever grows, plus a fill length. `reset()` sets the length to 0 and keeps the bytes, so it
implements objpool's `Reset` protocol: `Pool(TextBuilder, 4)` or `Pool.from_items(builders)`
needs no `reset=`. Each
builder grows a few times to fit the longest string it has built and then never again;
a fresh builder per string pays those growths on every string.

Honest caveat: `write()` still encodes each piece to a temporary `bytes`, and `build()`
makes the final `str`, so pooling saves the buffer's growth, not every allocation. For
small strings a plain `"".join(parts)` is faster (see README, "When not to use a pool").

Run `python examples/pooled_strings.py [--count N]`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from objpool import Pool, PoolStats


class TextBuilder:
    """A growable UTF-8 text buffer whose capacity survives `reset()`, like Rust's `String`."""

    __slots__ = ("_buf", "_len", "growths")

    def __init__(self, capacity: int = 16) -> None:
        """Start with `capacity` bytes; `write()` doubles it whenever a piece does not fit."""
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {type(capacity).__name__} {capacity!r}")
        self._buf = bytearray(capacity)
        self._len = 0
        self.growths = 0  # how many times the buffer grew: the reallocations pooling avoids

    @property
    def capacity(self) -> int:
        """Bytes of memory held, kept across `reset()`."""
        return len(self._buf)

    def __len__(self) -> int:
        """Bytes of UTF-8 written so far."""
        return self._len

    def write(self, text: str) -> None:
        """Append `text`."""
        data = text.encode()
        end = self._len + len(data)
        if end > len(self._buf):
            new_capacity = max(end, 2 * len(self._buf))
            self._buf.extend(bytes(new_capacity - len(self._buf)))
            self.growths += 1
        # A slice assignment of equal length overwrites in place: no resize, no allocation.
        self._buf[self._len : end] = data
        self._len = end

    def build(self) -> str:
        """The text written so far, as a new `str`."""
        # Decode straight from a view: slicing the bytearray would copy the bytes first.
        # The views are released at once, so a later write() may grow the bytearray.
        with memoryview(self._buf) as whole, whole[: self._len] as filled:
            return str(filled, "utf-8")

    def reset(self) -> None:
        """Forget the text and keep the memory, for the next user."""
        self._len = 0


def render_row(sb: TextBuilder, i: int) -> None:
    """Write one line of a report: the pooled builder is used like any other writer."""
    sb.write("row ")
    sb.write(str(i))
    sb.write(": ")
    for j in range(i % 7):  # rows of varied length, so builders must grow at first
        sb.write("·item")
        sb.write(str(j))
    sb.write(" ✓")


@dataclass(frozen=True)
class Summary:
    """What `main()` built and what it cost."""

    strings: list[str]
    identical: bool
    """Whether fresh builders built the very same strings (a reused builder leaks nothing)."""
    stats: PoolStats
    pooled_growths: int
    """Buffer growths across all pooled builders."""
    fresh_growths: int
    """Buffer growths had every string used a fresh builder."""
    capacities: list[int]
    """Each pooled builder's capacity at the end."""


def run(count: int) -> Summary:
    """Build `count` strings with pooled builders, and again with fresh ones to compare."""
    builders = [TextBuilder() for _ in range(4)]
    pool = Pool.from_items(builders, name="text builders")  # Pool[TextBuilder]: they are Reset
    strings: list[str] = []
    for i in range(count):
        with pool.allocate() as sb:  # sb: TextBuilder; reset() runs when the block ends
            render_row(sb, i)
            strings.append(sb.build())
    fresh_growths = 0
    identical = True
    for i in range(count):
        fresh = TextBuilder()
        render_row(fresh, i)
        identical = identical and fresh.build() == strings[i]
        fresh_growths += fresh.growths
    return Summary(
        strings=strings,
        identical=identical,
        stats=pool.stats(),
        pooled_growths=sum(b.growths for b in builders),
        fresh_growths=fresh_growths,
        capacities=[b.capacity for b in builders],
    )


def main(argv: Sequence[str] | None = None) -> Summary:
    """Parse arguments, build the strings, print what pooling saved."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=1000, help="strings to build (default 1000)")
    args = parser.parse_args(argv)
    summary = run(args.count)
    s = summary.stats
    same = "identical to" if summary.identical else "DIFFERENT from"
    example = f", e.g. {summary.strings[-1]!r}" if summary.strings else ""
    print(f"built {len(summary.strings)} strings, {same} fresh builders'{example}")
    print(f"pool: {s.allocations} allocations, {s.deallocations} deallocations, high water {s.high_water}")
    print(f"buffer growths: {summary.pooled_growths} pooled vs {summary.fresh_growths} with a fresh builder each time")
    print(f"builder capacities kept across reset(): {summary.capacities}")
    return summary


if __name__ == "__main__":
    main(sys.argv[1:])
