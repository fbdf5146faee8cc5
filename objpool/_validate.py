"""Argument checks shared by every module, with one message style.

Every message reads `<name> must be <rule>, got <type> <value>`, e.g.
`capacity must be an int, got bool True` or `n must be in 0..4294967296, got int -1`:
the rule says what to pass, the type and the value say what was passed. Hot paths test
the common case inline (`n.__class__ is not int or n < 0`) and call these only to raise.
"""

from __future__ import annotations

import sys

from typing import Literal, NoReturn, overload

from typing_extensions import Buffer

__all__ = [
    "as_byte_view",
    "check_callable",
    "check_int",
    "check_optional_str",
    "check_seconds",
    "reject",
]


def reject(exc_type: type[Exception], name: str, rule: str, value: object) -> NoReturn:
    """Raise `exc_type("<name> must be <rule>, got <type> <value>")`."""
    shown = repr(value)
    if len(shown) > 80:  # a 1 MiB bytearray passed by mistake must not become the message
        shown = shown[:77] + "..."
    raise exc_type(f"{name} must be {rule}, got {type(value).__name__} {shown}")


def check_int(name: str, value: object, low: int = 0, high: int | None = None, *, hex_rule: bool = False) -> int:
    """Return `value` as a plain int in `low..high` (no upper bound when `high` is None).

    Raises:
        TypeError: `value` is not an int; a bool is refused too (a flag passed as a count is
            a bug, not 0 or 1).
        ValueError: `value` is out of range.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        reject(TypeError, name, "an int", value)
    if value < low or (high is not None and value > high):
        if high is None:
            rule = f">= {low}"
        elif hex_rule:
            rule = f"in {low}..{high:#x}"
        else:
            rule = f"in {low}..{high}"
        reject(ValueError, name, rule, value)
    return int(value)  # int subclasses (IntEnum) become plain ints


def check_size(name: str, value: object, low: int, most: int = sys.maxsize, why: str = "a C integer") -> int:
    """`check_int(name, value, low)`, and at most `most`: a size the compiled build keeps in
    `why` (so both builds refuse the same ints, with the same messages, however large)."""
    value = check_int(name, value, low)
    if value > most:
        reject(ValueError, name, f"<= {most} ({why})", value)
    return value


def check_callable(name: str, value: object) -> None:
    """Raise `TypeError` unless `value` is callable."""
    if not callable(value):
        reject(TypeError, name, "callable", value)


def check_optional_str(name: str, value: object) -> None:
    """Raise `TypeError` unless `value` is a str or None."""
    if value is not None and not isinstance(value, str):
        reject(TypeError, name, "a str or None", value)


@overload
def check_seconds(name: str, value: object, *, positive: bool = ..., none_ok: Literal[False] = ...) -> float: ...
@overload
def check_seconds(name: str, value: object, *, positive: bool = ..., none_ok: bool) -> float | None: ...
def check_seconds(name: str, value: object, *, positive: bool = False, none_ok: bool = False) -> float | None:
    """Return a duration in seconds as a float (>= 0, or > 0 with `positive`); None passes
    through with `none_ok` (a timeout that waits forever). The one check, and the one
    message, of every duration in the package.

    Raises:
        TypeError: `value` is not a number (a bool is refused), nor an allowed None.
        ValueError: `value` is below the bound, or NaN.
    """
    if value is None and none_ok:
        return None
    rule = f"a number of seconds {'> 0' if positive else '>= 0'}{' or None' if none_ok else ''}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        reject(TypeError, name, rule, value)
    if not (value > 0 if positive else value >= 0):  # NaN fails both
        reject(ValueError, name, rule, value)
    return float(value)


def as_byte_view(data: Buffer, name: str = "data") -> memoryview:
    """`data` as a flat, C-contiguous view of unsigned bytes, without a copy where possible.

    Any bytes-like object is accepted: an `array('H')` or a 2-D view is cast to bytes, and a
    non-contiguous one (`memoryview(b)[::2]`) is copied, so callers can rely on one shape.

    Raises:
        TypeError: `data` does not support the buffer protocol (an int, a list, a str).
    """
    try:
        view = memoryview(data)
    except TypeError:
        reject(TypeError, name, "a bytes-like object", data)
    kind = data.__class__
    if kind is bytes or kind is bytearray:  # flat already; skips 3 attribute reads (~300 Ir)
        return view
    if view.format == "B" and view.ndim == 1 and view.c_contiguous:
        return view
    if not view.nbytes:  # cast() refuses shapes with a 0 in them; nothing to view anyway
        return memoryview(b"")
    if not view.c_contiguous:
        return memoryview(view.tobytes())
    return view.cast("B")
