"""Persisting the shared simulated terminal's demo accounts across restarts.

Choice: a JSON snapshot of the terminal's accounts (balance, open positions,
deal history) and id counters, stored in ``sim_snapshots`` under one name,
written after every trade and account change and periodically by the market
feed (SL/TP hits move state too), restored once at start-up before any user
touches the terminal. Prices need no persisting: the seeded price process
gives the same price for the same instant after a restart; the restored
"last processed instant" lets SL/TP that were hit during the downtime fire.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from domain.market import mt5api
from domain.market.sim import SimTerminal, _Account, _Position

VERSION = 1


def dump(terminal: SimTerminal, exclude: frozenset[int] = frozenset()) -> dict[str, Any]:
    with terminal._lock:
        accounts = []
        top_order = top_deal = 0
        for acc in terminal._accounts.values():
            if acc.login in exclude:
                continue
            for deal in acc.deals:
                top_deal = max(top_deal, int(deal.ticket))
                top_order = max(top_order, int(deal.order), int(deal.position_id))
            for pos in acc.positions.values():
                top_order = max(top_order, pos.ticket)
            accounts.append(
                {
                    "login": acc.login,
                    "password": acc.password,
                    "name": acc.name,
                    "currency": acc.currency,
                    "leverage": acc.leverage,
                    "balance": acc.balance,
                    "positions": [dataclasses.asdict(p) for p in acc.positions.values()],
                    "deals": [list(d) for d in acc.deals],
                }
            )
        return {
            "version": VERSION,
            "seed": terminal.seed,
            "done_g": terminal._done_g,
            "next_login": max([a.login for a in terminal._accounts.values()], default=5_000_000) + 1,
            "next_order": top_order + 1,
            "next_deal": top_deal + 1,
            "accounts": accounts,
        }


def restore(terminal: SimTerminal, data: dict[str, Any]) -> int:
    """Load a snapshot into a fresh terminal; returns how many accounts were restored."""
    import itertools

    if data.get("version") != VERSION:
        return 0
    with terminal._lock:
        for a in data["accounts"]:
            acc = _Account(a["login"], a["password"], a["name"], a["currency"], int(a["leverage"]), float(a["balance"]))
            for p in a["positions"]:
                pos = _Position(**p)
                acc.positions[pos.ticket] = pos
            acc.deals = [mt5api.TradeDeal(*d) for d in a["deals"]]
            terminal._accounts[acc.login] = acc
        nxt_login = max(int(data["next_login"]), max(terminal._accounts, default=5_000_000) + 1)
        terminal._logins = itertools.count(nxt_login)
        terminal._orders = itertools.count(max(int(data["next_order"]), 100_000_001))
        terminal._deals = itertools.count(max(int(data["next_deal"]), 200_000_001))
        if data.get("done_g") is not None:
            terminal._done_g = int(data["done_g"])
        return len(data["accounts"])
