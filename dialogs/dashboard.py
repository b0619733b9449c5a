"""The /analytics dashboard (aiogram-dialog): portfolio, watchlist, alerts, agents and settings windows.

Texts come from :mod:`bot.views.analytics`; every action goes through the same
domain services (and confirmations) as the commands: closing a position is a
``TradingService.preview_close`` → confirm → ``execute`` (sent at most once),
deleting an alert is ``AlertService.delete`` after a confirmation.

``dashboard_dialog()`` is a factory, not a module-level ``Dialog``: a Dialog is
a Router and a router can be attached to one Dispatcher only, while tests and
replicas build many.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram.fsm.state import State
from aiogram.types import CallbackQuery
from aiogram_dialog import DialogManager, ShowMode, Window
from aiogram_dialog.api.entities import DialogUpdateEvent
from aiogram_dialog.widgets.kbd import (
    Button,
    Cancel,
    Group,
    Row,
    ScrollingGroup,
    Select,
    SwitchTo,
    WebApp,
)
from aiogram_dialog.widgets.text import Const, Format

from bot.i18n import N_
from bot.views.analytics import (
    agents_text,
    ai_used_up_text,
    alert_button,
    alert_deleted_text,
    alerts_text,
    close_button,
    confirm_delete_alert_text,
    dashboard_closed_text,
    dashboard_text,
    kill_switch_button,
    locked_text,
    notify_button,
    portfolio_text,
    position_gone_text,
    refresh_hint_text,
    settings_text,
    unavailable_text,
    watchlist_text,
)
from bot.views.trading import close_preview_view, execution_view
from dialogs.common import ButtonDialog, DialogGuard, Label, Needs, dep
from dialogs.states import Dashboard
from domain.agents.service import AiQuotaExceeded
from domain.errors import DomainError
from domain.market.models import Timeframe
from domain.parsing import parse_id
from domain.tiers import Feature, Quota
from domain.trading.models import PositionNotFound
from domain.users import Notify

log = logging.getLogger(__name__)

PAGE = 5  # rows per page of positions and alerts
WATCH_PAGE = 6  # symbols per watchlist page (each one is a consensus computation)
TF = Timeframe.H1

Consensus = Callable[[], Awaitable[tuple[str, bool]]]  # a panel's text, and whether anything was analysed


# ---- getters ----------------------------------------------------------------------------------------
async def get_main(dialog_manager: DialogManager, **data: Any) -> dict[str, Any]:
    user, tier, analytics = data["user"], data["tier"], data["analytics"]
    portfolio = await analytics.portfolio(data["uow"], user.id, tier)
    premium = tier.has(Feature.DASHBOARDS)
    url = data["settings"].web_public_url
    _watch(dialog_manager, user.id)
    return {
        "text": dashboard_text(portfolio, tier.code, premium, analytics.now(), user.timezone),
        "premium": premium and data.get("agents") is not None,
        "locked": not premium,
        "webapp": bool(url) and tier.has(Feature.WEB_APP),
        "webapp_url": f"{(url or '').rstrip('/')}/app/",
    }


def _watch(manager: DialogManager, user_id: int) -> None:
    """Let the refresher (workers/dashboard_refresh.py) re-render this dashboard when positions or alerts change."""
    refresher = manager.middleware_data.get("dashboards")
    if refresher is not None:
        refresher.watch(user_id, manager)


async def get_portfolio(dialog_manager: DialogManager, **data: Any) -> dict[str, Any]:
    user, tier, analytics = data["user"], data["tier"], data["analytics"]
    _watch(dialog_manager, user.id)
    p = await analytics.portfolio(data["uow"], user.id, tier)
    result = dialog_manager.dialog_data.pop("result", None)
    return {
        "text": portfolio_text(p, analytics.now(), user.timezone, result),
        "positions": [(str(pos.ticket), close_button(pos.ticket, pos.symbol)) for pos in p.positions],
    }


async def get_close_confirm(dialog_manager: DialogManager, **data: Any) -> dict[str, Any]:
    return {"text": dialog_manager.dialog_data.get("confirm_text", "")}


async def get_alerts(dialog_manager: DialogManager, **data: Any) -> dict[str, Any]:
    user, tier, alerts, market = data["user"], data["tier"], data["alerts"], data["market"]
    _watch(dialog_manager, user.id)
    rules = await alerts.list(data["uow"], user.id)
    digits = {r.symbol: await market.digits(r.symbol) for r in rules}
    result = dialog_manager.dialog_data.pop("result", None)
    return {
        "text": alerts_text(rules, digits, tier.quota(Quota.ALERTS), result),
        "rules": [(str(r.id), alert_button(r)) for r in rules],
    }


async def get_alert_confirm(dialog_manager: DialogManager, **data: Any) -> dict[str, Any]:
    return {"text": dialog_manager.dialog_data.get("confirm_text", "")}


async def _metered(manager: DialogManager, data: dict[str, Any], key: str, compute: Consensus) -> str:
    """A panel computing the agents' consensus costs one AI analysis of the daily quota each time the user
    has it rendered (open, refresh, page), like /ai; a worker's re-render shows the last result again."""
    if isinstance(manager.event, DialogUpdateEvent):
        return str(manager.dialog_data.get(key) or refresh_hint_text())
    user, tier, agents = data["user"], data["tier"], data["agents"]
    try:
        claim = await agents.claim(user, tier)
    except AiQuotaExceeded:
        return ai_used_up_text(tier.quota(Quota.AI_PER_DAY), agents.quotas.renews_at(), user.timezone)
    try:
        text, computed = await compute()
    except BaseException:
        await agents.meter.refund(claim)
        raise
    if not computed:  # the market was unreachable for every symbol: nothing was analysed
        await agents.meter.refund(claim)
    manager.dialog_data[key] = text
    return text


async def get_watchlist(dialog_manager: DialogManager, **data: Any) -> dict[str, Any]:
    tier, uow, agents = data["tier"], data["uow"], data.get("agents")
    symbols = await uow.agents.subscriptions(data["user"].id) if agents is not None else []
    pages = max((len(symbols) + WATCH_PAGE - 1) // WATCH_PAGE, 1)
    page = min(max(int(dialog_manager.dialog_data.get("wpage", 0)), 0), pages - 1)
    shown = symbols[page * WATCH_PAGE : (page + 1) * WATCH_PAGE]

    async def compute() -> tuple[str, bool]:
        rows: list[tuple[str, str, float]] = []
        failed = False
        for symbol in shown:
            try:
                decision = await agents.consensus(uow, symbol, TF)
            except DomainError:
                failed = True
                continue
            rows.append((symbol, decision.direction.value, float(decision.confidence)))
        text = watchlist_text(rows, tier.quota(Quota.WATCHLIST))
        if failed:
            text += "\n" + unavailable_text()
        return text, bool(rows)

    if shown:
        text = await _metered(dialog_manager, data, f"watchlist:{page}", compute)
    else:
        text = watchlist_text([], tier.quota(Quota.WATCHLIST))
    if pages > 1:
        text += f"\n{page + 1}/{pages}"
    return {"text": text, "has_prev": page > 0, "has_next": page < pages - 1}


async def get_agents(dialog_manager: DialogManager, **data: Any) -> dict[str, Any]:
    user, uow, agents = data["user"], data["uow"], data.get("agents")
    symbols = await uow.agents.subscriptions(user.id) if agents is not None else []
    symbol = symbols[0] if symbols else None
    if symbol is None:
        return {"text": agents_text([], None)}

    async def compute() -> tuple[str, bool]:
        try:
            decision = await agents.consensus(uow, symbol, TF)
        except DomainError:
            return agents_text([], symbol) + "\n" + unavailable_text(), False
        rows = [(v.vote.agent, float(v.weight), float(v.hit_rate)) for v in decision.votes]
        return agents_text(rows, symbol), True

    return {"text": await _metered(dialog_manager, data, "agents", compute)}


async def get_settings(dialog_manager: DialogManager, **data: Any) -> dict[str, Any]:
    user, uow, analytics = data["user"], data["uow"], data["analytics"]
    profile = await uow.trading.profile(user.id)
    return {
        "text": settings_text(user, profile, analytics.now()),
        "toggles": [(kind.value, notify_button(user, kind)) for kind in Notify],
        "kill_label": kill_switch_button(profile),
    }


async def get_locked(dialog_manager: DialogManager, **data: Any) -> dict[str, Any]:
    needed = data["tiers"].required_for(min_tier=None, feature=Feature.DASHBOARDS)
    return {"text": locked_text(needed.code if needed else None)}


# ---- actions ----------------------------------------------------------------------------------------
async def on_refresh(query: CallbackQuery, button: Button, manager: DialogManager) -> None:
    """Nothing to change: returning makes the dialog re-render (edit in place) with fresh data."""


async def on_pick_position(query: CallbackQuery, widget: Any, manager: DialogManager, item_id: str) -> None:
    user, tier, trading = dep(manager, "user"), dep(manager, "tier"), dep(manager, "trading")
    ticket = parse_id(item_id)  # button data: forgeable
    if ticket is None:
        return
    try:
        preview = await trading.preview_close(dep(manager, "uow"), user.id, tier, str(ticket), None)
    except PositionNotFound:
        manager.dialog_data["result"] = position_gone_text(ticket)
        return
    text, _markup = close_preview_view(preview)
    manager.dialog_data.update(order=preview.order.id, confirm_text=text)
    await manager.switch_to(Dashboard.close_confirm)


async def on_confirm_close(query: CallbackQuery, button: Button, manager: DialogManager) -> None:
    order_id = manager.dialog_data.pop("order", None)
    if order_id is not None:
        user, tier, trading = dep(manager, "user"), dep(manager, "tier"), dep(manager, "trading")
        execution = await trading.execute(dep(manager, "uow"), user.id, tier, order_id)
        manager.dialog_data["result"] = execution_view(execution)[0]
    await manager.switch_to(Dashboard.portfolio)


async def on_cancel_close(query: CallbackQuery, button: Button, manager: DialogManager) -> None:
    order_id = manager.dialog_data.pop("order", None)
    if order_id is not None:
        with contextlib.suppress(DomainError):  # already expired or used: nothing to cancel
            await dep(manager, "trading").cancel(dep(manager, "uow"), dep(manager, "user").id, order_id)
    await manager.switch_to(Dashboard.portfolio)


async def on_pick_alert(query: CallbackQuery, widget: Any, manager: DialogManager, item_id: str) -> None:
    alert_id = parse_id(item_id)  # button data: forgeable
    if alert_id is None:
        return
    user, alerts = dep(manager, "user"), dep(manager, "alerts")
    rules = {r.id: r for r in await alerts.list(dep(manager, "uow"), user.id)}
    rule = rules.get(alert_id)
    if rule is None:  # deleted meanwhile (or not this user's): show the fresh list
        return
    digits = await dep(manager, "market").digits(rule.symbol)
    manager.dialog_data.update(alert=rule.id, confirm_text=confirm_delete_alert_text(rule, digits))
    await manager.switch_to(Dashboard.alert_confirm)


async def on_confirm_delete_alert(query: CallbackQuery, button: Button, manager: DialogManager) -> None:
    alert_id = manager.dialog_data.pop("alert", None)
    if alert_id is not None:
        user, alerts = dep(manager, "user"), dep(manager, "alerts")
        with contextlib.suppress(DomainError):  # already gone: the list shows the truth
            await alerts.delete(dep(manager, "uow"), user.id, int(alert_id))
        manager.dialog_data["result"] = alert_deleted_text(int(alert_id))
    await manager.switch_to(Dashboard.alerts)


async def on_toggle_notify(query: CallbackQuery, widget: Any, manager: DialogManager, item_id: str) -> None:
    if item_id not in {k.value for k in Notify}:
        return
    user = await dep(manager, "users").toggle_notification(dep(manager, "uow"), dep(manager, "user"), item_id)
    manager.middleware_data["user"] = user  # the re-render in this update shows the new value


async def on_kill_switch(query: CallbackQuery, button: Button, manager: DialogManager) -> None:
    uow, user = dep(manager, "uow"), dep(manager, "user")
    profile = await uow.trading.profile(user.id)
    await dep(manager, "trading").set_flag(uow, user.id, "kill_switch", not profile.kill_switch)


async def on_watch_page(query: CallbackQuery, button: Button, manager: DialogManager) -> None:
    step = 1 if button.widget_id == "w_next" else -1
    manager.dialog_data["wpage"] = max(int(manager.dialog_data.get("wpage", 0)) + step, 0)


async def on_close(query: CallbackQuery, button: Button, manager: DialogManager) -> None:
    refresher = manager.middleware_data.get("dashboards")
    if refresher is not None:
        refresher.forget(dep(manager, "user").id)
    if query.message is not None:
        with contextlib.suppress(Exception):  # the message may be too old to edit; the dialog still closes
            await query.message.edit_text(dashboard_closed_text())  # type: ignore[union-attr]
    manager.show_mode = ShowMode.NO_UPDATE


# ---- windows ----------------------------------------------------------------------------------------
def _back() -> SwitchTo:
    return SwitchTo(Label(N_("⬅️ Back")), id="back", state=Dashboard.main)


def _refresh() -> Button:
    return Button(Label(N_("🔄 Refresh")), id="refresh", on_click=on_refresh)


def _list_window(state: State, getter: Any, items: str, item_id: str, on_click: Any) -> Window:
    """A paged list of ``items`` ((id, label) pairs) whose rows open their item, with Refresh and Back."""
    return Window(
        Format("{text}"),
        ScrollingGroup(
            Select(Format("{item[1]}"), id=item_id, item_id_getter=lambda item: item[0], items=items,
                   on_click=on_click),  # fmt: skip
            id=f"{item_id}_pages",
            width=1,
            height=PAGE,
            hide_on_single_page=True,
        ),
        Row(_refresh(), _back()),
        state=state,
        getter=getter,
    )


# What each window and action needs beyond opening /analytics, checked on every press (dialogs/common.py):
# the premium panels need the DASHBOARDS feature; an action is gated like the command that does the same
# thing (its plan feature and, for trading, the risk disclosure).
GUARD = DialogGuard(
    windows={
        Dashboard.watchlist: Needs(command="ai", feature=Feature.DASHBOARDS),  # the consensus, like /ai
        Dashboard.agents: Needs(feature=Feature.DASHBOARDS),
        Dashboard.close_confirm: Needs(command="close"),
        Dashboard.alert_confirm: Needs(command="alerts"),
    },
    widgets={
        "pos": Needs(command="close"),  # a position row: preview its closing
        "close_yes": Needs(command="close"),
        "alert": Needs(command="alerts"),  # an alert row: ask to delete it
        "alert_yes": Needs(command="alerts"),
        "kill": Needs(command="trading"),  # the kill switch of /trading
        "notify": Needs(command="config"),
    },
)


def dashboard_dialog() -> ButtonDialog:
    return ButtonDialog(
        Window(
            Format("{text}"),
            Group(
                SwitchTo(Label(N_("💼 Portfolio")), id="portfolio", state=Dashboard.portfolio),
                SwitchTo(Label(N_("🔔 Alerts")), id="alerts", state=Dashboard.alerts),
                SwitchTo(Label(N_("👀 Watchlist")), id="watchlist", state=Dashboard.watchlist, when="premium"),
                SwitchTo(Label(N_("🤖 Agents")), id="agents", state=Dashboard.agents, when="premium"),
                SwitchTo(Label(N_("🔒 Watchlist")), id="lock_w", state=Dashboard.locked, when="locked"),
                SwitchTo(Label(N_("🔒 Agents")), id="lock_a", state=Dashboard.locked, when="locked"),
                SwitchTo(Label(N_("⚙️ Settings")), id="settings", state=Dashboard.settings),
                _refresh(),
                width=2,
            ),
            WebApp(Label(N_("🌐 Web dashboard")), Format("{webapp_url}"), id="webapp", when="webapp"),
            Cancel(Label(N_("✖️ Close")), id="close", on_click=on_close),
            state=Dashboard.main,
            getter=get_main,
        ),
        _list_window(Dashboard.portfolio, get_portfolio, "positions", "pos", on_pick_position),
        Window(
            Format("{text}"),
            Row(
                Button(Label(N_("✅ Confirm")), id="close_yes", on_click=on_confirm_close),
                Button(Label(N_("✖️ Cancel")), id="close_no", on_click=on_cancel_close),
            ),
            state=Dashboard.close_confirm,
            getter=get_close_confirm,
        ),
        _list_window(Dashboard.alerts, get_alerts, "rules", "alert", on_pick_alert),
        Window(
            Format("{text}"),
            Row(
                Button(Label(N_("🗑 Delete")), id="alert_yes", on_click=on_confirm_delete_alert),
                SwitchTo(Label(N_("✖️ Cancel")), id="alert_no", state=Dashboard.alerts),
            ),
            state=Dashboard.alert_confirm,
            getter=get_alert_confirm,
        ),
        Window(
            Format("{text}"),
            Row(
                Button(Const("«"), id="w_prev", on_click=on_watch_page, when="has_prev"),
                Button(Const("»"), id="w_next", on_click=on_watch_page, when="has_next"),
            ),
            Row(_refresh(), _back()),
            state=Dashboard.watchlist,
            getter=get_watchlist,
        ),
        Window(
            Format("{text}"),
            Row(_refresh(), _back()),
            state=Dashboard.agents,
            getter=get_agents,
        ),
        Window(
            Format("{text}"),
            Group(
                Select(
                    Format("{item[1]}"),
                    id="notify",
                    item_id_getter=lambda item: item[0],
                    items="toggles",
                    on_click=on_toggle_notify,
                ),  # fmt: skip
                width=2,
            ),
            Button(Format("{kill_label}"), id="kill", on_click=on_kill_switch),
            _back(),
            state=Dashboard.settings,
            getter=get_settings,
        ),
        Window(
            Format("{text}"),
            _back(),
            state=Dashboard.locked,
            getter=get_locked,
        ),
        guard=GUARD,
    )
