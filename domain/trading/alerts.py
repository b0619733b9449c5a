"""Price alerts a user manages from the chat: parse, add within the tier quota, list, pause,
resume, delete. Changes are committed first, then applied to the live evaluator index."""

from __future__ import annotations

import re
from dataclasses import replace

from domain.alerts.models import AlertKind, AlertRule, AlertStatus
from domain.alerts.service import AlertEvaluator
from domain.audit import AuditEntry, Surface
from domain.clock import utcnow
from domain.db.uow import UnitOfWork
from domain.errors import DomainError, InvalidInput, NotFound, QuotaExceeded
from domain.parsing import INT64_MAX, looks_numeric, parse_id
from domain.parsing import parse_duration as parse_seconds
from domain.tiers import Quota, Tier
from domain.trading.market import MarketHub
from domain.trading.models import parse_number


class AlertSyntax(InvalidInput):
    code = "ALR-SYNTAX"


class AlertNotFound(NotFound):
    code = "ALR-NOT-FOUND"


_OPS = {">": AlertKind.ABOVE, ">=": AlertKind.ABOVE, "above": AlertKind.ABOVE,
        "<": AlertKind.BELOW, "<=": AlertKind.BELOW, "below": AlertKind.BELOW,
        "cross": AlertKind.CROSS, "x": AlertKind.CROSS}  # fmt: skip
MAX_DURATION_S = 30 * 86400  # a move window or a repeat cooldown: up to 30 days


def parse_duration(raw: str) -> int:
    seconds = parse_seconds(raw, max_seconds=MAX_DURATION_S)
    if seconds is None:
        raise AlertSyntax("duration")
    return seconds


def parse_alert_id(raw: str) -> int | None:
    """The alert id typed after del/pause/resume (``5``, ``#5``); None when the word is no number at all,
    AlertNotFound when it is one no alert can have ("²", beyond int64)."""
    if not looks_numeric(raw):
        return None
    alert_id = parse_id(raw)
    if alert_id is None:
        raise AlertNotFound("alert", id=raw.strip()[:32])
    return alert_id


def parse_rule(text: str) -> tuple[str, AlertKind, float, float, int, int | None]:
    """``SYMBOL > 1.1050`` | ``SYMBOL < x`` | ``SYMBOL cross x`` | ``SYMBOL move 1% 60m``,
    optionally followed by ``every 30m`` (repeat with that cooldown).

    Returns (symbol, kind, threshold, pct, window_s, cooldown_s or None)."""
    parts = text.replace(">=", " >= ").replace("<=", " <= ").split()
    parts = [p for chunk in parts for p in ([chunk] if chunk in (">=", "<=") else re.split(r"([<>])", chunk)) if p]
    cooldown: int | None = None
    if len(parts) >= 2 and parts[-2].lower() == "every":
        cooldown = parse_duration(parts[-1])
        parts = parts[:-2]
    if len(parts) < 3:
        raise AlertSyntax("too short")
    symbol, op = parts[0], parts[1].lower()
    if op == "move":
        if len(parts) != 4:
            raise AlertSyntax("move needs a percent and a window")
        pct = parse_number(parts[2].rstrip("%"), "pct")
        if not 0 < pct <= 100:
            raise AlertSyntax("pct")
        return symbol, AlertKind.PCT_MOVE, 0.0, pct, parse_duration(parts[3]), cooldown
    if op not in _OPS or len(parts) != 3:
        raise AlertSyntax("operator")
    level = parse_number(parts[2], "level")
    if level <= 0:
        raise AlertSyntax("level")
    return symbol, _OPS[op], level, 0.0, 0, cooldown


class AlertService:
    def __init__(self, hub: MarketHub, evaluator: AlertEvaluator) -> None:
        self._hub = hub
        self.evaluator = evaluator

    async def count(self, uow: UnitOfWork, user_id: int) -> int:
        return await uow.trading.count_alerts(user_id)

    async def list(self, uow: UnitOfWork, user_id: int) -> list[AlertRule]:
        return await uow.trading.alerts(user_id)

    async def add(self, uow: UnitOfWork, user_id: int, tier: Tier, text: str) -> AlertRule:
        symbol_raw, kind, threshold, pct, window_s, cooldown = parse_rule(text)
        spec = await self._hub.resolve(symbol_raw)
        limit = tier.quota(Quota.ALERTS)
        if await uow.trading.count_alerts(user_id) >= limit:
            raise QuotaExceeded("alerts", quota=Quota.ALERTS.value, limit=limit)
        tick = await self._hub.tick(spec.name)
        rule = AlertRule(
            id=0, user_id=user_id, symbol=spec.name, kind=kind, threshold=round(threshold, spec.digits), pct=pct,
            window_s=window_s, repeat=cooldown is not None, cooldown_s=cooldown or 0,
            created_price=tick.bid, created_msc=tick.time_msc,
        )  # fmt: skip
        rule = await uow.trading.add_alert(rule, utcnow())
        await uow.audit.append(
            AuditEntry("alert.added", user_id, user_id, Surface.CHAT,
                       {"alert": rule.id, "symbol": rule.symbol, "kind": kind.value, "threshold": rule.threshold,
                        "pct": pct, "window_s": window_s})
        )  # fmt: skip
        await uow.commit()
        self.evaluator.add(rule)
        self._hub.watch([rule.symbol])
        return rule

    async def _owned(self, uow: UnitOfWork, user_id: int, alert_id: int) -> AlertRule:
        if not 0 < alert_id <= INT64_MAX:  # no such row; a bigger number would overflow the query
            raise AlertNotFound("alert", id=alert_id)
        rule = await uow.trading.alert(alert_id)
        if rule is None or rule.user_id != user_id or rule.status is AlertStatus.TRIGGERED:
            if rule is not None and rule.user_id != user_id:
                await uow.audit.append(AuditEntry("alert.refused", user_id, user_id, Surface.CHAT, {"alert": alert_id}))
                await uow.commit()
            raise AlertNotFound("alert", id=alert_id)
        return rule

    async def set_paused(self, uow: UnitOfWork, user_id: int, alert_id: int, paused: bool) -> AlertRule:
        await self._owned(uow, user_id, alert_id)
        status = AlertStatus.PAUSED if paused else AlertStatus.ACTIVE
        await uow.trading.set_alert_status(alert_id, user_id, status)
        await uow.audit.append(
            AuditEntry("alert.paused" if paused else "alert.resumed", user_id, user_id, Surface.CHAT,
                       {"alert": alert_id})
        )  # fmt: skip
        await uow.commit()
        if alert_id not in self.evaluator.index:
            fresh = await uow.trading.alert(alert_id)
            if fresh is not None:
                self.evaluator.add(fresh)
        (self.evaluator.pause if paused else self.evaluator.resume)(alert_id)
        rule = await uow.trading.alert(alert_id)
        assert rule is not None
        return replace(rule, status=status)

    async def delete(self, uow: UnitOfWork, user_id: int, alert_id: int) -> AlertRule:
        rule = await self._owned(uow, user_id, alert_id)
        await uow.trading.delete_alert(alert_id, user_id)
        await uow.audit.append(AuditEntry("alert.deleted", user_id, user_id, Surface.CHAT, {"alert": alert_id}))
        await uow.commit()
        self.evaluator.remove(alert_id)
        return rule

    async def levels(self, uow: UnitOfWork, user_id: int, symbol: str) -> list[float]:
        return [r.threshold for r in await uow.trading.alerts(user_id) if r.symbol == symbol and r.threshold > 0]


__all__ = ["AlertNotFound", "AlertService", "AlertSyntax", "DomainError", "parse_alert_id", "parse_rule"]
