"""Slices a test keeps to the end of its scope, released then: Rust's drop at a scope's end.

Upstream's traces hold slices "until the end" and let `Drop` free them; here the test says so
with `hold(s)`, and the `release_held` fixture (autouse, in conftest.py) releases them when the
test ends. A slice nobody holds or releases still leaks, and the leak still fails the test.
"""

from __future__ import annotations

from objpool.sv2 import Buffer, Slice

_held: list[Slice] = []


def hold(s: Slice) -> Slice:
    """Keep `s` alive until the test ends, then release it."""
    _held.append(s)
    return s


def release_all_held() -> None:
    """Release what `hold()` kept (idempotent per slice), newest first."""
    while _held:
        _held.pop().release()


def take_bytes(buffer: Buffer) -> bytes:
    """Take the buffer's pending bytes as a slice, copy them out, and release the slice."""
    with buffer.get_data_owned() as s:
        return bytes(s)
