"""Every StatesGroup of the aiogram-dialog dashboards."""

from __future__ import annotations

from aiogram.fsm.state import State, StatesGroup


class Dashboard(StatesGroup):
    main = State()
    portfolio = State()
    close_confirm = State()
    watchlist = State()
    alerts = State()
    alert_confirm = State()
    agents = State()
    settings = State()
    locked = State()
