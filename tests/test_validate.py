"""Argument checks: one message style, `<name> must be <rule>, got <type> <value>`."""

from __future__ import annotations

import array
import enum
import math

import pytest

from objpool._validate import as_byte_view, check_callable, check_int, check_optional_str, check_timeout


class Size(enum.IntEnum):
    SMALL = 3


@pytest.mark.parametrize(
    ("value", "low", "high", "error", "message"),
    [
        (True, 0, None, TypeError, r"^n must be an int, got bool True$"),
        (1.0, 0, None, TypeError, r"^n must be an int, got float 1\.0$"),
        (None, 0, None, TypeError, r"^n must be an int, got NoneType None$"),
        (-1, 0, None, ValueError, r"^n must be >= 0, got int -1$"),
        (0, 1, None, ValueError, r"^n must be >= 1, got int 0$"),
        (11, 0, 10, ValueError, r"^n must be in 0\.\.10, got int 11$"),
        (-1, 0, 10, ValueError, r"^n must be in 0\.\.10, got int -1$"),
    ],
)
def test_check_int_names_the_rule_and_the_value(
    value: object, low: int, high: int | None, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        check_int("n", value, low, high)


def test_check_int_returns_plain_ints_and_can_show_hex_bounds() -> None:
    result = check_int("n", Size.SMALL, 0, 10)
    assert (3, int) == (result, type(result))
    with pytest.raises(ValueError, match=r"^msg_type must be in 0\.\.0xff, got int 256$"):
        check_int("msg_type", 256, 0, 0xFF, hex_rule=True)


def test_long_values_are_cut_in_messages() -> None:
    with pytest.raises(TypeError) as info:
        check_int("n", bytes(1 << 20))
    assert len(str(info.value)) < 120
    assert str(info.value).endswith("...")


def test_other_checks() -> None:
    check_callable("f", print)
    with pytest.raises(TypeError, match=r"^f must be callable, got int 3$"):
        check_callable("f", 3)
    check_optional_str("name", None)
    with pytest.raises(TypeError, match=r"^name must be a str or None, got bytes b'x'$"):
        check_optional_str("name", b"x")
    assert (None, 0.5, 2.0) == (check_timeout("t", None), check_timeout("t", 0.5), check_timeout("t", 2))
    for bad in (0, -1.0, math.nan):
        with pytest.raises(ValueError, match=r"^t must be > 0, got "):
            check_timeout("t", bad)
    with pytest.raises(TypeError, match=r"^t must be a number or None, got bool True$"):
        check_timeout("t", True)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"abc", b"abc"),
        (bytearray(b"abc"), b"abc"),
        (memoryview(b"a-b-c")[::2], b"abc"),  # strided: copied
        (memoryview(bytearray(b"abcd")).cast("B", (2, 2)), b"abcd"),  # 2-D: cast
        (array.array("B", b"xy"), b"xy"),
        (memoryview(b""), b""),
    ],
)
def test_as_byte_view_flattens_any_bytes_like_object(data: bytes, expected: bytes) -> None:
    view = as_byte_view(data)
    assert ("B", 1, True) == (view.format, view.ndim, view.c_contiguous)
    assert expected == view.tobytes()


def test_as_byte_view_does_not_copy_contiguous_input() -> None:
    memory = bytearray(b"abc")
    as_byte_view(memory)[0] = ord("X")
    assert b"Xbc" == memory


@pytest.mark.parametrize("data", [5, [1, 2], "text", None])
def test_as_byte_view_refuses_what_has_no_buffer(data: object) -> None:
    with pytest.raises(TypeError, match=r"^payload must be a bytes-like object, got "):
        as_byte_view(data, "payload")  # type: ignore[arg-type]  # the point of the test
