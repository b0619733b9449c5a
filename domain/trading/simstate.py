"""One simulated demo account as plain JSON data, for the ``sim_accounts`` and ``sim_deals`` rows.

The state (balance, open positions, the last processed instant) is one JSON
document; deals are append-only rows numbered per account, so a process that
holds an older copy of an account reads only the deals it lacks. Prices need
no persisting: the seeded price process gives the same price for the same
instant in every process and after a restart, and the stored "last processed
instant" lets SL/TP that were hit in the meantime fire.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from domain.market import mt5api
from domain.market.sim import _Account, _Position


def state(acc: _Account) -> dict[str, Any]:
    """The account without its deals, as JSON-native data (compares equal after a round trip)."""
    return {
        "password": acc.password,
        "name": acc.name,
        "currency": acc.currency,
        "leverage": acc.leverage,
        "balance": acc.balance,
        "positions": [dataclasses.asdict(p) for p in acc.positions.values()],
        "done_g": acc.done_g,
        **({"real": True, "server": acc.server} if acc.real else {}),
    }


def same_trading_state(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Equal but for the last processed instant, which only matters once something happened."""
    return {**a, "done_g": None} == {**b, "done_g": None}


def account(login: int, data: dict[str, Any], deals: Sequence[Sequence[Any]]) -> _Account:
    acc = _Account(
        login, data["password"], data["name"], data["currency"], int(data["leverage"]), float(data["balance"]),
        done_g=data["done_g"], real=bool(data.get("real", False)), server=data.get("server"),
    )  # fmt: skip
    for p in data["positions"]:
        pos = _Position(**p)
        acc.positions[pos.ticket] = pos
    acc.deals = [mt5api.TradeDeal(*d) for d in deals]
    return acc
