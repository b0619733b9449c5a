"""/price, /chart and /alerts."""

from __future__ import annotations

from aiogram import Router
from aiogram.filters import Command, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import BufferedInputFile, CallbackQuery, Message

from bot.ui import show
from bot.views.market import (
    AlertCB,
    ChartCB,
    alert_added_view,
    alert_deleted_view,
    alert_prompt,
    alerts_view,
    chart_caption,
    chart_keyboard,
    chart_usage,
    chart_mark,
    price_usage,
    MAX_PRICE_SYMBOLS,
    price_view,
    symbol_suggestions,
)
from domain.db.uow import UnitOfWork
from domain.market.models import Timeframe
from domain.tiers import Quota, Tier
from domain.trading.alerts import AlertService, parse_alert_id
from domain.trading.market import MarketHub
from domain.trading.models import SymbolNotFound
from domain.users import User
from handlers.filters import is_plain_text

class AlertForm(StatesGroup):
    rule = State()


def _args(message: Message) -> list[str]:
    parts = (message.text or "").split(maxsplit=1)
    return parts[1].split() if len(parts) > 1 else []


async def _digits(market: MarketHub, symbols: set[str]) -> dict[str, int]:
    return {s: await market.digits(s) for s in symbols}


def make_router() -> Router:
    router = Router(name=__name__)

    @router.message(Command("price"))
    async def price(message: Message, market: MarketHub) -> None:
        words = list(dict.fromkeys(s.upper() for s in _args(message)))
        if not words:
            await show(message, price_usage())
            return
        quotes, unknown = [], []
        for raw in words[:MAX_PRICE_SYMBOLS]:
            try:
                quotes.append(await market.quote(raw))
            except SymbolNotFound as exc:
                unknown.append((str(exc.params["symbol"]), str(exc.params["suggestions"])))
        await show(message, price_view(quotes, unknown, max(0, len(words) - MAX_PRICE_SYMBOLS)))

    async def send_chart(
        event: Message | CallbackQuery, raw: str, tf_raw: str, user: User, uow: UnitOfWork, market: MarketHub,
        alerts: AlertService,
    ) -> None:  # fmt: skip
        target = event if isinstance(event, Message) else event.message
        try:
            tf = Timeframe(tf_raw.upper())
        except ValueError:
            await show(event, chart_usage()) if isinstance(event, Message) else await event.answer()
            return
        try:
            spec = await market.resolve(raw)
        except SymbolNotFound as exc:
            text = symbol_suggestions(exc.params["symbol"], exc.params["suggestions"])
            if isinstance(event, CallbackQuery):
                await event.answer()
                await event.bot.send_message(event.from_user.id, text)  # type: ignore[union-attr]
            else:
                await event.answer(text)
            return
        levels = await alerts.levels(uow, user.id, spec.name)
        chart = await market.chart(spec.name, tf, levels, mark=chart_mark())
        photo = BufferedInputFile(chart.png, filename=f"{spec.name}_{tf.value}.png")
        _, markup = chart_keyboard(spec.name, tf.value)
        caption = chart_caption(spec.name, tf.value, len(levels), chart.simulated)
        if isinstance(event, CallbackQuery):
            await event.answer()
        assert event.bot is not None
        chat_id = target.chat.id if target is not None else user.id
        await event.bot.send_photo(chat_id, photo, caption=caption, reply_markup=markup)

    @router.message(Command("chart"))
    async def chart(message: Message, user: User, uow: UnitOfWork, market: MarketHub, alerts: AlertService) -> None:
        args = _args(message)
        if not args or len(args) > 2:
            await show(message, chart_usage())
            return
        await send_chart(message, args[0], args[1] if len(args) > 1 else "H1", user, uow, market, alerts)

    @router.callback_query(ChartCB.filter())
    async def chart_button(
        query: CallbackQuery, callback_data: ChartCB, user: User, uow: UnitOfWork, market: MarketHub,
        alerts: AlertService,
    ) -> None:  # fmt: skip
        await send_chart(query, callback_data.symbol, callback_data.tf, user, uow, market, alerts)

    async def list_alerts(event: Message | CallbackQuery, user: User, tier: Tier, uow: UnitOfWork,
                          market: MarketHub, alerts: AlertService) -> None:  # fmt: skip
        rules = await alerts.list(uow, user.id)
        digits = await _digits(market, {r.symbol for r in rules})
        await show(event, alerts_view(rules, digits, tier.quota(Quota.ALERTS), market.simulated))

    @router.message(Command("alerts"))
    async def alerts_command(
        message: Message, user: User, tier: Tier, uow: UnitOfWork, market: MarketHub, alerts: AlertService
    ) -> None:
        args = _args(message)
        if args and args[0].lower() in ("add", "new", "+"):
            rule = await alerts.add(uow, user.id, tier, " ".join(args[1:]))
            spec = await market.resolve(rule.symbol)
            used = await alerts.count(uow, user.id)
            await show(message, alert_added_view(rule, spec.digits, used, tier.quota(Quota.ALERTS)))
            return
        action = args[0].lower() if len(args) == 2 else ""
        alert_id = parse_alert_id(args[1]) if action in ("del", "delete", "rm", "pause", "resume") else None
        if alert_id is not None and action in ("del", "delete", "rm"):
            rule = await alerts.delete(uow, user.id, alert_id)
            await message.answer(alert_deleted_view(rule))
        elif alert_id is not None:
            await alerts.set_paused(uow, user.id, alert_id, action == "pause")
        await list_alerts(message, user, tier, uow, market, alerts)

    @router.callback_query(AlertCB.filter())
    async def alert_button(
        query: CallbackQuery, callback_data: AlertCB, user: User, tier: Tier, uow: UnitOfWork, market: MarketHub,
        alerts: AlertService, state: FSMContext,
    ) -> None:  # fmt: skip
        if callback_data.action in ("pause", "resume"):
            await alerts.set_paused(uow, user.id, callback_data.id, callback_data.action == "pause")
        elif callback_data.action == "del":
            await alerts.delete(uow, user.id, callback_data.id)
        elif callback_data.action == "new":
            await state.set_state(AlertForm.rule)
            await query.answer()
            await query.bot.send_message(user.id, alert_prompt())  # type: ignore[union-attr]
            return
        elif callback_data.action != "list":
            await query.answer()
            return
        await list_alerts(query, user, tier, uow, market, alerts)

    @router.message(StateFilter(AlertForm.rule), is_plain_text)
    async def typed_alert(
        message: Message, state: FSMContext, user: User, tier: Tier, uow: UnitOfWork, market: MarketHub,
        alerts: AlertService,
    ) -> None:  # fmt: skip
        rule = await alerts.add(uow, user.id, tier, message.text or "")  # a typo keeps the step open
        await state.clear()
        used = await alerts.count(uow, user.id)
        await show(message, alert_added_view(rule, await market.digits(rule.symbol), used, tier.quota(Quota.ALERTS)))

    return router
