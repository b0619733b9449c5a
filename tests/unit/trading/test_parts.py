"""Pure parts: alert syntax, volume rounding, credential sealing, limits."""

from __future__ import annotations

import pytest

from domain.alerts.models import AlertKind
from domain.market.sim import SimTerminal
from domain.trading.alerts import AlertSyntax, parse_rule
from domain.trading.crypto import SecretBox
from domain.trading.models import LimitOutOfRange, RiskLimits
from domain.trading.service import round_volume


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("EURUSD > 1.1050", ("EURUSD", AlertKind.ABOVE, 1.105, 0.0, 0, None)),
        ("eurusd<1,08", ("eurusd", AlertKind.BELOW, 1.08, 0.0, 0, None)),
        ("XAUUSD cross 2400", ("XAUUSD", AlertKind.CROSS, 2400.0, 0.0, 0, None)),
        ("BTCUSD move 2% 60m", ("BTCUSD", AlertKind.PCT_MOVE, 0.0, 2.0, 3600, None)),
        ("EURUSD > 1.2 every 30m", ("EURUSD", AlertKind.ABOVE, 1.2, 0.0, 0, 1800)),
    ],
)
def test_alert_syntax(text: str, expected: tuple) -> None:  # type: ignore[type-arg]
    assert parse_rule(text) == expected


@pytest.mark.parametrize("text", ["", "EURUSD", "EURUSD ?? 1", "EURUSD > abc", "EURUSD > -1", "EURUSD move 0% 1m",
                                  "EURUSD move 1% soon", "EURUSD > 1 every never"])  # fmt: skip
def test_alert_syntax_errors(text: str) -> None:
    with pytest.raises(AlertSyntax if "abc" not in text else Exception):
        parse_rule(text)


def test_volume_rounds_down_to_step() -> None:
    spec_def = SimTerminal(0).symbol_def("EURUSD")
    assert spec_def is not None
    spec = spec_def.spec
    assert round_volume(0.129, spec) == 0.12
    assert round_volume(1.0, spec) == 1.0
    assert round_volume(0.3, spec) == 0.3  # no float dust


def test_secret_box_never_contains_plaintext() -> None:
    box = SecretBox(b"k")
    token = box.seal("hunter2")
    assert "hunter2" not in token and box.open(token) == "hunter2"
    assert box.seal("hunter2") != token  # fresh IV each time
    assert repr(box) == "SecretBox(<key hidden>)"
    with pytest.raises(ValueError):
        SecretBox(b"other").open(token)


def test_limits_are_bounded() -> None:
    limits = RiskLimits().with_value("max_positions", "3")
    assert limits.max_positions == 3 and isinstance(limits.max_positions, int)
    with pytest.raises(LimitOutOfRange):
        RiskLimits().with_value("max_volume", "0")
    with pytest.raises(Exception):
        RiskLimits().with_value("nonsense", "1")
