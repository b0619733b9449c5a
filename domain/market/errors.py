"""Typed errors of the market gateways.

Every error carries a stable ``code`` string (``MKT-…``) that the bot's error
layer maps to an ErrorDNA code and a localized message. Trade rejections are
not errors: they come back as an ``OrderResult`` with an MT5 retcode.
"""

from __future__ import annotations

from typing import ClassVar


class GatewayError(Exception):
    """Base class: something went wrong talking to the trading terminal."""

    code: ClassVar[str] = "MKT-ERROR"

    def __init__(self, message: str = "", *, mt5_code: int | None = None) -> None:
        super().__init__(message or self.__class__.__name__)
        self.message = message
        self.mt5_code = mt5_code  # MT5 ``last_error()`` code when there is one


class GatewayUnavailable(GatewayError):
    """The terminal (or the bridge to it) cannot be reached right now."""

    code: ClassVar[str] = "MKT-UNAVAILABLE"


class GatewayTimeout(GatewayUnavailable):
    """A call did not answer in time; its outcome is unknown."""

    code: ClassVar[str] = "MKT-TIMEOUT"


class BackendNotInstalled(GatewayUnavailable):
    """The backend's library (``MetaTrader5`` or ``rpyc``) is not importable here."""

    code: ClassVar[str] = "MKT-BACKEND-MISSING"


class BridgeAuthError(GatewayUnavailable):
    """The bridge and this process do not share the secret (or one of them has none)."""

    code: ClassVar[str] = "MKT-BRIDGE-AUTH"


class AccountMismatch(GatewayError):
    """The terminal is logged in to another account than the one this gateway serves.

    Nothing was sent. ``relogged``: the terminal was logged back in to the expected account;
    otherwise it must leave the pool."""

    code: ClassVar[str] = "MKT-ACCOUNT-MISMATCH"

    def __init__(self, expected: tuple[int, str], actual: tuple[int, str] | None, *, relogged: bool) -> None:
        super().__init__(f"terminal is on {actual}, expected {expected}")
        self.expected = expected
        self.actual = actual
        self.relogged = relogged


class GatewayAuthError(GatewayError):
    """Login to the trade account failed (wrong login, password or server)."""

    code: ClassVar[str] = "MKT-AUTH"


class AutoTradingDisabled(GatewayError):
    """The terminal refuses API trading (the "Algo Trading" button is off)."""

    code: ClassVar[str] = "MKT-AUTOTRADING-OFF"


class InvalidRequest(GatewayError):
    """The call's arguments were rejected before or by the terminal."""

    code: ClassVar[str] = "MKT-INVALID-REQUEST"


class NoQuotes(GatewayError):
    """The symbol exists but has no price yet (no tick since the data starts)."""

    code: ClassVar[str] = "MKT-NO-QUOTES"


class BridgeProtocolError(GatewayError):
    """The bridge server answered with something that is not plain data."""

    code: ClassVar[str] = "MKT-BRIDGE-PROTOCOL"


class UnknownSymbol(GatewayError):
    """The terminal has no such symbol; ``suggestions`` hold close names."""

    code: ClassVar[str] = "MKT-UNKNOWN-SYMBOL"

    def __init__(self, symbol: str, suggestions: list[str] | None = None) -> None:
        super().__init__(f"unknown symbol {symbol!r}")
        self.symbol = symbol
        self.suggestions = list(suggestions or [])


class InvalidSymbolName(UnknownSymbol):
    """The name is not even shaped like a symbol; it is never sent anywhere."""

    code: ClassVar[str] = "MKT-INVALID-SYMBOL"
