"""`Acquisition`: what `Pool.acquire()` and `BufPool.acquire()` return to asyncio code.

One class for every pool that can run out: awaited, it gives the handle (an `OwnedRef[T]`,
a `BufAllocation`); entered with `async with`, it gives what `with handle:` gives (the
object, the allocation) and releases the handle at the end of the block.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Generator
from contextlib import AbstractContextManager
from typing import Any, Generic, TypeVar, final

__all__ = ["Acquisition"]

H = TypeVar("H", bound=AbstractContextManager[Any])
V = TypeVar("V")

_USED = "this Acquisition was already used; call pool.acquire() again"


@final
class Acquisition(Generic[H, V]):
    """A wait for a handle `H` (whose `with` gives `V`), started when awaited or entered.

    `handle = await pool.acquire(...)` gives the handle, to release; `async with
    pool.acquire(...) as value:` gives what `with handle:` gives and releases the handle at
    the end of the block. Each `Acquisition` is used once: a second `await` or `async with`
    raises `RuntimeError`.
    """

    __slots__ = ("_enter", "_handle", "_start", "_used")

    def __init__(self, start: Callable[[], Coroutine[Any, Any, H]], enter: Callable[[H], V]) -> None:
        """Made by the pools' `acquire()`: `start()` waits for the handle, `enter(handle)` is
        what `with handle:` gives."""
        self._start = start
        self._enter = enter
        self._handle: H | None = None
        self._used = False

    def _begin(self) -> Coroutine[Any, Any, H]:
        if self._used:
            raise RuntimeError(_USED)
        self._used = True
        return self._start()

    def __await__(self) -> Generator[Any, None, H]:
        return self._begin().__await__()

    async def __aenter__(self) -> V:
        handle = await self._begin()
        self._handle = handle
        return self._enter(handle)

    async def __aexit__(self, exc_type: object, exc: object, traceback: object) -> None:
        handle = self._handle
        if handle is not None:
            self._handle = None
            handle.__exit__(None, None, None)

    def __repr__(self) -> str:
        state = "unused" if not self._used else "holding a handle" if self._handle is not None else "used"
        return f"<Acquisition {state}>"
