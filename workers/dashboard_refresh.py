"""Keeps open /analytics dashboards current: re-renders one when a position closes (or opens) or an alert fires.

Dashboards register themselves when they render (``watch``) and leave on Close
(``forget``) or after ``ttl`` seconds without a render. Every ``interval``
seconds the job fingerprints each watched user's open positions and live alerts
(ticket set; alert id, status and last firing) through the same services the
dashboard uses; on a change it refreshes the dialog through aiogram-dialog's
``BgManagerFactory`` — the window the user has open is re-rendered in place.

Runs in the bot process: the background manager feeds this process's Dispatcher.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from aiogram import Bot
from aiogram_dialog import DialogManager, ShowMode
from aiogram_dialog.api.protocols import BgManagerFactory
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from domain.analytics.service import AnalyticsService
from domain.db.uow import UnitOfWork
from domain.users import UserService

log = logging.getLogger(__name__)

Fingerprint = tuple[Any, ...]


@dataclass
class _Open:
    chat_id: int
    seen: float  # monotonic time of the last render
    fingerprint: Fingerprint | None = None


class DashboardRefresher:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        analytics: AnalyticsService,
        users: UserService,
        dialogs: BgManagerFactory,
        *,
        interval: float = 3.0,
        ttl: float = 900.0,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._analytics = analytics
        self._users = users
        self._dialogs = dialogs
        self.interval = interval
        self.ttl = ttl
        self._open: dict[int, _Open] = {}
        self.refreshed = 0

    @property
    def watched(self) -> list[int]:
        return list(self._open)

    def watch(self, user_id: int, manager: DialogManager) -> None:
        chat = manager.middleware_data.get("event_chat")
        if chat is None:
            return
        entry = self._open.get(user_id)
        if entry is None or entry.chat_id != chat.id:
            self._open[user_id] = _Open(chat.id, time.monotonic())
        else:
            entry.seen = time.monotonic()

    def forget(self, user_id: int) -> None:
        self._open.pop(user_id, None)

    async def fingerprint(self, user_id: int) -> Fingerprint | None:
        async with UnitOfWork(self._sessionmaker) as uow:
            user = await uow.users.get(user_id)
            if user is None:
                return None
            tier = self._users.tier_of(user)
            portfolio = await self._analytics.portfolio(uow, user_id, tier)
            rules = await uow.trading.alerts(user_id)
        positions = tuple(sorted(p.ticket for p in portfolio.positions))
        alerts = tuple((r.id, r.status.value, r.last_triggered_msc) for r in rules)
        return positions, alerts

    async def check(self, bot: Bot) -> int:
        """One round: refresh every watched dashboard whose positions or alerts changed; returns how many."""
        now = time.monotonic()
        changed = 0
        for user_id, entry in list(self._open.items()):
            if now - entry.seen > self.ttl:
                self.forget(user_id)
                continue
            try:
                current = await self.fingerprint(user_id)
            except Exception:  # a gateway hiccup must not stop the others
                log.warning("dashboard fingerprint failed for a user", exc_info=True)
                continue
            previous, entry.fingerprint = entry.fingerprint, current
            if previous is None or current is None or current == previous:
                continue
            manager = self._dialogs.bg(bot, user_id, entry.chat_id, load=False)
            await manager.update({}, show_mode=ShowMode.EDIT)
            changed += 1
            self.refreshed += 1
        return changed

    async def run(self, bot: Bot) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.check(bot)
            except Exception:
                log.exception("dashboard refresh round failed")
