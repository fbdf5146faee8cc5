"""The decoder's vocabulary: how far a frame reserves ahead, its phases, and `MissingBytes`,
its "not yet" answer. Shared with the compiled decoder, which imports them from here, never
from the half-loaded `_codec`."""

from __future__ import annotations

import enum
from typing import Final, final

__all__ = ["FRAME_STEP", "MissingBytes"]

FRAME_STEP: Final = 64 * 1024
"""The most buffer memory a frame being received holds beyond the bytes that arrived.

Frames up to this size are reserved whole, in one `get_writable`; larger ones grow by at most
this much at a time (by what `feed()` was given, when that is more).
"""


class _Phase(enum.Enum):
    HEADER = "waiting for a header"
    PAYLOAD = "receiving a payload"
    BROKEN = "broken"


@final
class MissingBytes:
    """`Decoder.next_frame()`'s "not yet" answer: `count` more bytes are needed.

    Narrow with `isinstance(ev, MissingBytes)`; anything else `next_frame()` returns is a `Frame`.
    """

    __slots__ = ("count",)

    def __init__(self, count: int) -> None:
        self.count: Final = count

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MissingBytes) and other.count == self.count

    def __hash__(self) -> int:
        return hash((MissingBytes, self.count))

    def __repr__(self) -> str:
        return f"MissingBytes({self.count})"
