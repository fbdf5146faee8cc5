"""Argument checks: one message style, `<name> must be <rule>, got <type> <value>`."""

from __future__ import annotations

import array
import enum
import math

import pytest

from objpool._validate import as_byte_view, check_callable, check_int, check_optional_str, check_seconds


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


@pytest.mark.parametrize(
    ("options", "value", "error", "message"),
    [
        ({}, -1, ValueError, r"^t must be a number of seconds >= 0, got int -1$"),
        ({}, math.nan, ValueError, r"^t must be a number of seconds >= 0, got float nan$"),
        ({}, None, TypeError, r"^t must be a number of seconds >= 0, got NoneType None$"),
        ({"positive": True}, 0, ValueError, r"^t must be a number of seconds > 0, got int 0$"),
        ({"none_ok": True}, True, TypeError, r"^t must be a number of seconds >= 0 or None, got bool True$"),
        ({"none_ok": True}, "1", TypeError, r"^t must be a number of seconds >= 0 or None, got str '1'$"),
        ({"positive": True, "none_ok": True}, -0.5, ValueError, r"^t must be a number of seconds > 0 or None, got float -0\.5$"),
    ],
)
def test_every_duration_has_one_check_and_one_message(
    options: dict[str, bool], value: object, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        check_seconds("t", value, positive=options.get("positive", False), none_ok=options.get("none_ok", False))


def test_durations_come_back_as_floats() -> None:
    assert (0.0, 2.0, None) == (check_seconds("t", 0), check_seconds("t", 2, positive=True), check_seconds("t", None, none_ok=True))
    result = check_seconds("t", 1)
    assert float is type(result)


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
