"""Handed-out memoryviews that must die with their owner (`ByteBuffer.reset`, `Slice.release`).

A view handed to a user is released when the memory it shows goes back to a pool, so a stale
view raises `ValueError` instead of reading the next owner's bytes. Owners keep such views in
a plain list; `remember` keeps that list short when users release views themselves.
"""

from __future__ import annotations

from typing_extensions import Buffer

from ._validate import reject

__all__ = ["release_all", "remember", "writable_memory"]


def _is_released(view: memoryview) -> bool:
    try:
        view.nbytes  # any access to a released view raises ValueError
    except ValueError:
        return True
    return False


def remember(views: list[memoryview], view: memoryview) -> memoryview:
    """Append `view` to `views` and return it.

    At 32, 64, 128... entries the views their users already released are dropped first, so
    the list stays proportional to the live views at an amortised O(1) per call.
    """
    n = len(views)
    if n >= 32 and not n & (n - 1):
        views[:] = [v for v in views if not _is_released(v)]
    views.append(view)
    return view


def release_all(views: list[memoryview]) -> None:
    """Release every view in `views` and forget them.

    Raises:
        BufferError: someone holds an export of one of them (a `memoryview(view)`); the
            views before it are released, it and the rest stay in `views`.
    """
    for i, view in enumerate(views):
        try:
            view.release()
        except BufferError:
            del views[:i]
            raise
    views.clear()


def writable_memory(memory: Buffer, capacity: int) -> memoryview:
    """`memory` as a flat writable view of exactly `capacity` bytes: `ByteBuffer(memory=...)`'s check.

    Raises:
        TypeError: `memory` is not a buffer, or is read-only.
        ValueError: `memory` is not C-contiguous, or not `capacity` bytes long.
    """
    try:
        view = memoryview(memory)
    except TypeError:
        reject(TypeError, "memory", "a writable buffer (a bytearray, an mmap...)", memory)
    if view.readonly:
        view.release()
        reject(TypeError, "memory", "a writable buffer (a bytearray, an mmap...)", memory)
    if not view.c_contiguous:
        view.release()
        reject(ValueError, "memory", "C-contiguous", memory)
    if view.ndim != 1 or view.format != "B":
        view = view.cast("B")
    if view.nbytes != capacity:
        n = view.nbytes
        view.release()
        raise ValueError(f"memory must be {capacity} bytes (the capacity), got {n}")
    return view
