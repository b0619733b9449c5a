"""The simulated terminal's symbol universe, sessions, and "did you mean".

Specs follow a typical retail MT5 broker (5-digit FX, 100k lots, metals and
index/crypto CFDs with leverage-scaled margin). Crosses have no process of
their own: their price is the product of two USD legs, so EURJPY is always
EURUSD × USDJPY and P/L conversions stay triangular-consistent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from domain.market import mt5api
from domain.market.models import SymbolSpec

# Trading sessions per weekday (Mon=0 … Sun=6) as (start, end) minutes UTC.
_FULL = ((0, 1440),)
SESSIONS: dict[str, tuple[tuple[tuple[int, int], ...], ...]] = {
    # FX: Sunday 22:00 to Friday 22:00
    "fx": (_FULL, _FULL, _FULL, _FULL, ((0, 1320),), (), ((1320, 1440),)),
    # metals: as FX with a daily 22:00-23:00 break
    "metal": (
        ((0, 1320), (1380, 1440)),
        ((0, 1320), (1380, 1440)),
        ((0, 1320), (1380, 1440)),
        ((0, 1320), (1380, 1440)),
        ((0, 1320),),
        (),
        ((1380, 1440),),
    ),
    # US index CFDs: Sunday 22:00 to Friday 21:00, daily 21:00-22:00 break
    "us_index": (
        ((0, 1260), (1320, 1440)),
        ((0, 1260), (1320, 1440)),
        ((0, 1260), (1320, 1440)),
        ((0, 1260), (1320, 1440)),
        ((0, 1260),),
        (),
        ((1320, 1440),),
    ),
    # European index CFDs: Monday to Friday 07:00-21:00
    "eu_index": (((420, 1260),),) * 5 + ((), ()),
    "crypto": (_FULL,) * 7,
}

# Relative volatility by UTC hour (intraday seasonality).
SEASONALITY: dict[str, tuple[float, ...]] = {
    "fx": (0.7,) * 7 + (1.2,) * 5 + (1.5,) * 4 + (1.0,) * 5 + (0.5,) * 3,
    "metal": (0.7,) * 7 + (1.1,) * 5 + (1.6,) * 4 + (1.0,) * 5 + (0.5,) * 3,
    "us_index": (0.4,) * 13 + (1.0, 1.9, 1.5, 1.2, 1.1, 1.1, 1.3, 1.6) + (0.4,) * 3,
    "eu_index": (1.0,) * 7 + (1.9, 1.3, 1.0, 0.9, 0.9, 1.0, 1.4, 1.5, 1.2, 1.0, 0.9, 0.9, 0.9, 1.1) + (1.0,) * 3,
    "crypto": (0.9,) * 12 + (1.1,) * 9 + (0.9,) * 3,
}

# Spread multiplier by UTC hour: wide around the 21:00-23:00 rollover, and for
# index CFDs outside their cash hours.
SPREAD_PROFILE: dict[str, tuple[float, ...]] = {
    "fx": (1.5,) + (1.0,) * 20 + (3.0, 3.0, 1.5),
    "metal": (1.5,) + (1.0,) * 20 + (2.5, 2.5, 2.0),
    "us_index": (2.0,) * 13 + (1.0,) * 7 + (1.5,) + (3.0,) * 3,
    "eu_index": (2.0,) * 8 + (1.0,) * 8 + (1.5,) * 8,
    "crypto": (1.0,) * 24,
}

# Mean tick arrivals per minute at seasonality 1.0.
TICKS_PER_MINUTE = {"fx": 30.0, "metal": 45.0, "us_index": 40.0, "eu_index": 35.0, "crypto": 60.0}

ACCOUNT_CURRENCIES = frozenset({"USD", "EUR", "GBP", "JPY", "CHF", "AUD", "CAD", "NZD"})


@dataclass(frozen=True, slots=True)
class SymbolDef:
    """A symbol of the simulated universe: its spec plus how its price moves."""

    spec: SymbolSpec
    price: float  # long-run price level the process reverts to
    vol: float  # annualized volatility
    spread: int  # typical spread, points
    session: str  # key of SESSIONS / SEASONALITY / SPREAD_PROFILE
    calc_mode: int  # MT5 SYMBOL_CALC_MODE_*
    path: str  # MT5 symbol tree path
    legs: tuple[tuple[str, int], ...] = ()  # crosses: log price = sum(sign * log leg)


def _fx(
    name: str, desc: str, price: float, vol: float, spread: int, legs: tuple[tuple[str, int], ...] = ()
) -> SymbolDef:
    jpy = name.endswith("JPY")
    spec = SymbolSpec(
        name=name,
        description=desc,
        category="fx",
        digits=3 if jpy else 5,
        point=0.001 if jpy else 0.00001,
        contract_size=100_000.0,
        volume_min=0.01,
        volume_max=100.0,
        volume_step=0.01,
        stops_level=10,
        currency_base=name[:3],
        currency_profit=name[3:],
        currency_margin=name[:3],
        margin_rate=1.0,
    )
    group = "Majors" if not legs else "Crosses"
    return SymbolDef(spec, price, vol, spread, "fx", mt5api.SYMBOL_CALC_MODE_FOREX, f"Forex\\{group}\\{name}", legs)


def _cfd(
    name: str,
    desc: str,
    category: str,
    session: str,
    *,
    digits: int,
    contract: float,
    vmin: float,
    vmax: float,
    stops: int,
    currency: str,
    base: str,
    margin_rate: float,
    price: float,
    vol: float,
    spread: int,
) -> SymbolDef:
    spec = SymbolSpec(
        name=name,
        description=desc,
        category=category,
        digits=digits,
        point=10.0**-digits,
        contract_size=contract,
        volume_min=vmin,
        volume_max=vmax,
        volume_step=vmin,
        stops_level=stops,
        currency_base=base,
        currency_profit=currency,
        currency_margin=currency,
        margin_rate=margin_rate,
    )
    folder = {"metal": "Metals", "index": "Indices", "crypto": "Crypto"}[category]
    return SymbolDef(spec, price, vol, spread, session, mt5api.SYMBOL_CALC_MODE_CFDLEVERAGE, f"{folder}\\{name}")


_DEFS: tuple[SymbolDef, ...] = (
    _fx("EURUSD", "Euro vs US Dollar", 1.085, 0.07, 10),
    _fx("GBPUSD", "Great Britain Pound vs US Dollar", 1.27, 0.08, 14),
    _fx("USDJPY", "US Dollar vs Japanese Yen", 150.0, 0.09, 12),
    _fx("USDCHF", "US Dollar vs Swiss Franc", 0.88, 0.07, 15),
    _fx("AUDUSD", "Australian Dollar vs US Dollar", 0.66, 0.10, 12),
    _fx("USDCAD", "US Dollar vs Canadian Dollar", 1.36, 0.06, 16),
    _fx("NZDUSD", "New Zealand Dollar vs US Dollar", 0.60, 0.10, 18),
    _fx("EURGBP", "Euro vs Great Britain Pound", 0.0, 0.0, 15, (("EURUSD", 1), ("GBPUSD", -1))),
    _fx("EURJPY", "Euro vs Japanese Yen", 0.0, 0.0, 18, (("EURUSD", 1), ("USDJPY", 1))),
    _fx("GBPJPY", "Great Britain Pound vs Japanese Yen", 0.0, 0.0, 28, (("GBPUSD", 1), ("USDJPY", 1))),
    _fx("EURCHF", "Euro vs Swiss Franc", 0.0, 0.0, 20, (("EURUSD", 1), ("USDCHF", 1))),
    _fx("AUDJPY", "Australian Dollar vs Japanese Yen", 0.0, 0.0, 20, (("AUDUSD", 1), ("USDJPY", 1))),
    _fx("EURAUD", "Euro vs Australian Dollar", 0.0, 0.0, 25, (("EURUSD", 1), ("AUDUSD", -1))),
    _fx("EURCAD", "Euro vs Canadian Dollar", 0.0, 0.0, 25, (("EURUSD", 1), ("USDCAD", 1))),
    _fx("GBPCHF", "Great Britain Pound vs Swiss Franc", 0.0, 0.0, 30, (("GBPUSD", 1), ("USDCHF", 1))),
    _fx("CADJPY", "Canadian Dollar vs Japanese Yen", 0.0, 0.0, 25, (("USDJPY", 1), ("USDCAD", -1))),
    _fx("CHFJPY", "Swiss Franc vs Japanese Yen", 0.0, 0.0, 30, (("USDJPY", 1), ("USDCHF", -1))),
    _fx("AUDNZD", "Australian Dollar vs New Zealand Dollar", 0.0, 0.0, 25, (("AUDUSD", 1), ("NZDUSD", -1))),
    _cfd(
        "XAUUSD",
        "Gold vs US Dollar",
        "metal",
        "metal",
        digits=2,
        contract=100.0,
        vmin=0.01,
        vmax=50.0,
        stops=20,
        currency="USD",
        base="XAU",
        margin_rate=1.0,
        price=2650.0,
        vol=0.15,
        spread=25,
    ),
    _cfd(
        "XAGUSD",
        "Silver vs US Dollar",
        "metal",
        "metal",
        digits=3,
        contract=5000.0,
        vmin=0.01,
        vmax=50.0,
        stops=30,
        currency="USD",
        base="XAG",
        margin_rate=1.0,
        price=31.0,
        vol=0.25,
        spread=30,
    ),
    _cfd(
        "US500",
        "US 500 Index CFD",
        "index",
        "us_index",
        digits=2,
        contract=1.0,
        vmin=0.1,
        vmax=500.0,
        stops=100,
        currency="USD",
        base="USD",
        margin_rate=5.0,
        price=5500.0,
        vol=0.16,
        spread=50,
    ),
    _cfd(
        "NAS100",
        "US Tech 100 Index CFD",
        "index",
        "us_index",
        digits=2,
        contract=1.0,
        vmin=0.1,
        vmax=500.0,
        stops=200,
        currency="USD",
        base="USD",
        margin_rate=5.0,
        price=19000.0,
        vol=0.20,
        spread=150,
    ),
    _cfd(
        "GER40",
        "Germany 40 Index CFD",
        "index",
        "eu_index",
        digits=2,
        contract=1.0,
        vmin=0.1,
        vmax=500.0,
        stops=200,
        currency="EUR",
        base="EUR",
        margin_rate=5.0,
        price=18500.0,
        vol=0.17,
        spread=120,
    ),
    _cfd(
        "UK100",
        "UK 100 Index CFD",
        "index",
        "eu_index",
        digits=2,
        contract=1.0,
        vmin=0.1,
        vmax=500.0,
        stops=100,
        currency="GBP",
        base="GBP",
        margin_rate=5.0,
        price=8200.0,
        vol=0.13,
        spread=100,
    ),
    _cfd(
        "BTCUSD",
        "Bitcoin vs US Dollar CFD",
        "crypto",
        "crypto",
        digits=2,
        contract=1.0,
        vmin=0.01,
        vmax=10.0,
        stops=500,
        currency="USD",
        base="BTC",
        margin_rate=20.0,
        price=65000.0,
        vol=0.55,
        spread=3000,
    ),
    _cfd(
        "ETHUSD",
        "Ethereum vs US Dollar CFD",
        "crypto",
        "crypto",
        digits=2,
        contract=1.0,
        vmin=0.01,
        vmax=100.0,
        stops=200,
        currency="USD",
        base="ETH",
        margin_rate=20.0,
        price=3200.0,
        vol=0.70,
        spread=250,
    ),
)

UNIVERSE: dict[str, SymbolDef] = {d.spec.name: d for d in _DEFS}

# Everyday names traders type for a symbol.
ALIASES: dict[str, str] = {
    "GOLD": "XAUUSD",
    "XAU": "XAUUSD",
    "SILVER": "XAGUSD",
    "XAG": "XAGUSD",
    "SPX": "US500",
    "SP500": "US500",
    "SPX500": "US500",
    "NASDAQ": "NAS100",
    "NDX": "NAS100",
    "USTEC": "NAS100",
    "DAX": "GER40",
    "DE40": "GER40",
    "FTSE": "UK100",
    "BTC": "BTCUSD",
    "BITCOIN": "BTCUSD",
    "ETH": "ETHUSD",
    "ETHEREUM": "ETHUSD",
    "FIBER": "EURUSD",
    "CABLE": "GBPUSD",
}

SYMBOL_NAME_RE = re.compile(r"^[A-Za-z0-9#][A-Za-z0-9._#+\-]{0,31}$")


def is_valid_symbol_name(name: object) -> bool:
    """Strict shape of an MT5 symbol name (letters, digits, ``. _ # + -``)."""
    return isinstance(name, str) and SYMBOL_NAME_RE.fullmatch(name) is not None


def _distance(a: str, b: str) -> int:
    """Optimal-string-alignment edit distance (insert, delete, substitute, swap)."""
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cost = 0 if ca == cb else 1
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return prev[-1]


def suggest(query: str, names: list[str] | tuple[str, ...], limit: int = 3) -> list[str]:
    """Names of ``names`` a trader probably meant by ``query``, best first.

    Aliases ("gold"), then prefixes either way ("EURUSDX", "NAS"), then names
    within a small edit distance ("EURSUD"); ties keep ``names`` order.
    """
    q = re.sub(r"[^A-Z0-9]", "", str(query).upper())[:64]
    if not q:
        return []
    by_upper = {n.upper(): n for n in names}
    scored: dict[str, tuple[int, int]] = {}

    def offer(name: str, score: tuple[int, int]) -> None:
        if name not in scored or score < scored[name]:
            scored[name] = score

    alias = ALIASES.get(q)
    if alias and alias in by_upper:
        offer(by_upper[alias], (0, 0))
    for upper, name in by_upper.items():
        plain = re.sub(r"[^A-Z0-9]", "", upper)
        if plain == q:
            offer(name, (0, 0))
        elif plain.startswith(q) or q.startswith(plain):
            offer(name, (1, abs(len(plain) - len(q))))
        else:
            dist = _distance(q, plain)
            if dist <= max(1, min(2, len(q) // 3)):
                offer(name, (2, dist))
    order = {n: i for i, n in enumerate(names)}  # ties go to the earlier (more traded) symbol
    return [n for n, _ in sorted(scored.items(), key=lambda kv: (kv[1], order[kv[0]]))][:limit]


def weekly_minutes(session: str) -> np.ndarray:
    """Open flags for each minute of the week, shape (7, 1440), Monday first."""
    mask = np.zeros((7, 1440), dtype=bool)
    for wd, intervals in enumerate(SESSIONS[session]):
        for start, end in intervals:
            mask[wd, start:end] = True
    return mask
