"""/status: system health and the user's plan and quotas."""

from __future__ import annotations

from datetime import datetime

from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import ngettext

from bot.i18n import N_
from bot.views import View
from bot.views.common import ai_quota_line, duration, tier_name
from domain.admin import OpsFigures
from domain.health import ProbeResult
from domain.tiers import Quota, Tier

COMPONENTS = {
    "database": N_("Database"),
    "redis": N_("Redis"),
    "workers": N_("Background workers"),
    "gateway": N_("MT5 gateway"),
}
DETAILS = {
    "memory": N_("in-memory (no REDIS_URL)"),
    "timeout": N_("not answering"),
    "none": N_("none running"),
}
QUOTA_LINES = {
    Quota.ALERTS: N_("Price alerts: {used} / {limit}"),
    Quota.AI_PER_DAY: N_("AI analyses today: {used} / {limit}"),
    Quota.WATCHLIST: N_("Symbols on watch: {used} / {limit}"),
}


def ops_lines(ops: OpsFigures) -> list[str]:
    """The operations figures (the same ones /metrics exports), for /status and /admin."""
    gateway = (
        _("MT5 gateway ping: {ms} ms").format(ms=f"{ops.gateway_ms:.1f}")
        if ops.gateway_ms is not None
        else _("MT5 gateway: not answering")
    )
    queue = (
        _("Notification queue: {n} waiting, oldest {age}").format(n=ops.outbox_depth, age=duration(ops.outbox_lag_s))
        if ops.outbox_lag_s is not None
        else _("Notification queue: empty")
    )
    lines = [_("Market feed: {rate} ticks/s").format(rate=f"{ops.tick_rate:.1f}"), gateway]
    pool = ops.terminals
    if pool is not None:
        lines.append(
            _("MT5 terminals: {size} · leased {leased} · free {free} · unhealthy {unhealthy}").format(
                size=pool.size, leased=pool.leased, free=pool.free, unhealthy=pool.unhealthy
            )
        )
        if pool.refused:
            lines.append(
                ngettext("⚠️ {n} live link refused: no free terminal", "⚠️ {n} live links refused: no free terminal",
                         pool.refused).format(n=pool.refused)
            )  # fmt: skip
    return lines + [
        queue,
        _("Active users: {h1} in the last hour · {h24} in 24 hours").format(h1=ops.active_1h, h24=ops.active_24h),
        _("Updates handled: {n} · errors: {errors}").format(n=ops.updates, errors=ops.errors),
    ]


def status_view(
    probes: list[ProbeResult], uptime: float, version: str, tier: Tier, used: dict[Quota, int],
    ops: OpsFigures | None = None, renews_at: datetime | None = None, tz: str = "UTC", simulated: bool = False,
) -> View:
    healthy = all(p.ok for p in probes)
    lines = [_("<b>🩺 System status</b>") + " " + ("✅" if healthy else "⚠️")]
    for probe in probes:
        name = _(COMPONENTS.get(probe.name, probe.name))
        detail = _(DETAILS[probe.detail]) if probe.detail in DETAILS else probe.detail
        if probe.ok:
            latency = f" · {probe.latency_ms:.1f} ms" if probe.latency_ms is not None else ""
            lines.append(f"✅ {name}: {detail}{latency}")
        else:
            lines.append(_("❌ {name}: unavailable ({detail})").format(name=name, detail=detail))
    lines.append(_("Uptime {uptime} · version {version}").format(uptime=duration(uptime), version=version))
    if simulated:  # market data from the simulated terminal (MarketHub.simulated)
        lines.append(_("🧪 Market data: the built-in simulator (simulated prices, not market quotes)."))
    lines.append(_("🧪 Demo accounts trade simulated prices, with no real money."))
    if ops is not None:
        lines += ops_lines(ops)
    lines += ["", _("<b>Your plan: {tier}</b>").format(tier=tier_name(tier.code))]
    lines.append(_("Requests: up to {n} per minute").format(n=tier.rate_per_minute))
    for quota, n in used.items():
        if quota == Quota.AI_PER_DAY and renews_at is not None:
            lines.append(ai_quota_line(n, tier.quota(quota), renews_at, tz))
        else:
            lines.append(_(QUOTA_LINES[quota]).format(used=n, limit=tier.quota(quota)))
    return "\n".join(lines), None
