"""One way to read numbers from outside: ASCII digits, int64, finite, bounded."""

from __future__ import annotations

import pytest

from bot.callbacks import CallbackInt
from bot.views.market import AlertCB
from domain.parsing import INT64_MAX, looks_numeric, parse_count, parse_decimal, parse_duration, parse_id, parse_int


@pytest.mark.parametrize("raw", ["²", "²³", "٣", "１２", "1_000", "0x10", "", " ", "-", "+", "1.0", "1e3", "9" * 33])
def test_integers_are_ascii_digits_only(raw: str) -> None:
    assert parse_int(raw, low=-INT64_MAX, high=INT64_MAX) is None
    assert parse_id(raw) is None


def test_ids_are_positive_int64() -> None:
    assert parse_id("42") == 42 and parse_id("#42") == 42 and parse_id(" 7 ") == 7
    assert parse_id(str(INT64_MAX)) == INT64_MAX
    assert parse_id(str(INT64_MAX + 1)) is None and parse_id("0") is None and parse_id("-5") is None
    assert parse_id("99999999999999999999") is None


def test_what_looks_like_a_number() -> None:
    assert looks_numeric("²³") and looks_numeric("#12") and looks_numeric("99999999999999999999")
    assert not looks_numeric("EURUSD") and not looks_numeric("#") and not looks_numeric("all")


def test_counts_clamp_into_range() -> None:
    assert parse_count("100000", low=1, high=365) == 365 and parse_count("0", low=1, high=365) == 1
    assert parse_count("30", low=1, high=365) == 30
    assert parse_count("²", low=1, high=365) is None and parse_count("EURUSD", low=1, high=365) is None


@pytest.mark.parametrize("raw", ["1e308", "inf", "nan", "-inf", "Infinity", "1e3", "0x1p3", "1.2.3", "", ".", "١", "1 000"])
def test_decimals_are_plain_and_finite(raw: str) -> None:
    assert parse_decimal(raw) is None


def test_decimals() -> None:
    assert parse_decimal("0.1") == 0.1 and parse_decimal("1,5") == 1.5 and parse_decimal(".5") == 0.5
    assert parse_decimal("-2") == -2.0 and parse_decimal("2.") == 2.0
    assert parse_decimal("5", low=0, high=1) is None
    assert parse_decimal("9" * 13) is None  # beyond any price or volume


def test_durations_are_bounded() -> None:
    assert parse_duration("60m", max_seconds=86400) == 3600 and parse_duration("2 d", max_seconds=3 * 86400) == 172800
    assert parse_duration("99999999999999999999999d", max_seconds=86400) is None
    assert parse_duration("0m", max_seconds=86400) is None and parse_duration("²m", max_seconds=86400) is None
    assert parse_duration("2d", max_seconds=86400) is None


def test_callback_integers_are_bounded() -> None:
    assert AlertCB.unpack("al:pause:42").id == 42
    for data in ("al:pause:99999999999999999999", "al:pause:²", "al:pause:1e3", "al:pause:٣"):
        with pytest.raises(ValueError):
            AlertCB.unpack(data)
    assert AlertCB(action="del", id=7).pack() == "al:del:7"
    assert CallbackInt is not int
