"""/positions, /balance, /trade, /close, /history, /risk, /trading and the live-account link flow."""

from __future__ import annotations

import contextlib
import secrets

from aiogram import Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message

from bot.secret_state import SecretState
from bot.ui import show
from bot.views import View
from bot.views.trading import (
    AutoCB,
    HistCB,
    OrderCB,
    PosCB,
    RiskCB,
    TradeFlowCB,
    TradingCB,
    auto_locked_text,
    autotrade_live_view,
    autotrade_view,
    balance_view,
    cancelled_view,
    close_preview_view,
    close_usage,
    execution_view,
    history_usage,
    history_view,
    link_failed_text,
    link_login_prompt,
    link_password_prompt,
    link_server_prompt,
    live_locked_text,
    linked_view,
    positions_view,
    preview_view,
    risk_view,
    sltp_prompt,
    trade_side_view,
    trade_start_view,
    trade_volume_view,
    trading_view,
    unlinked_text,
)
from domain.db.uow import UnitOfWork
from domain.parsing import parse_count, parse_id
from domain.errors import FeatureLocked
from domain.market.models import Side
from domain.tiers import Feature, Tier
from domain.trading.autotrade import AutoPanel, AutoTradeRefused, AutoTrader
from domain.trading.models import AccountKind, Execution, InvalidOrder, LinkFailed, Order, parse_number
from domain.trading.service import TradingService
from domain.users import User
from handlers.filters import has_text, is_plain_text

MAX_HISTORY_DAYS = 365
LIVE_CODE = "autotrade_live"  # FSM data key: the one-time code of the live auto-trading confirmation
AUTO_SETTINGS = ("threshold", "risk", "symbol")  # /trading threshold 72 · /trading risk 1.5 · /trading symbol X


class LinkForm(StatesGroup):
    login = State()
    server = State()
    password = SecretState()  # deleted from the chat on arrival, never logged, stored or echoed


class StopsForm(StatesGroup):
    levels = State()


def _args(message: Message) -> list[str]:
    parts = (message.text or "").split(maxsplit=1)
    return parts[1].split() if len(parts) > 1 else []


def _levels(tokens: list[str]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for token in tokens:
        key, sep, raw = token.partition("=")
        key = key.lower()
        if not sep or key not in ("sl", "tp") or key in out:
            raise InvalidOrder("level", field=key or token[:8])
        value = parse_number(raw, key)
        if value < 0:
            raise InvalidOrder("level", field=key)
        out[key] = value or None
    return out


def make_router() -> Router:
    router = Router(name=__name__)

    # ---- reading ----
    @router.message(Command("balance"))
    async def balance(message: Message, user: User, tier: Tier, uow: UnitOfWork, trading: TradingService) -> None:
        await show(message, balance_view(*await trading.balance(uow, user.id, tier)))

    async def list_positions(event: Message | CallbackQuery, user: User, tier: Tier, uow: UnitOfWork,
                             autotrade: AutoTrader) -> None:  # fmt: skip
        await show(event, positions_view(await autotrade.holdings(uow, user.id, tier)))

    @router.message(Command("positions"))
    async def positions(message: Message, user: User, tier: Tier, uow: UnitOfWork, autotrade: AutoTrader) -> None:
        await list_positions(message, user, tier, uow, autotrade)

    @router.callback_query(PosCB.filter())
    async def position_button(
        query: CallbackQuery, callback_data: PosCB, user: User, tier: Tier, uow: UnitOfWork, trading: TradingService,
        state: FSMContext, autotrade: AutoTrader,
    ) -> None:  # fmt: skip
        if callback_data.action == "close" and callback_data.ticket > 0:
            await show(query, close_preview_view(
                await trading.preview_close(uow, user.id, tier, str(callback_data.ticket), None)))  # fmt: skip
        elif callback_data.action == "sltp" and callback_data.ticket > 0:
            await state.set_state(StopsForm.levels)
            await state.update_data(ticket=callback_data.ticket)
            await query.answer()
            await query.bot.send_message(user.id, sltp_prompt(callback_data.ticket))  # type: ignore[union-attr]
        else:
            await list_positions(query, user, tier, uow, autotrade)

    @router.message(StateFilter(StopsForm.levels), is_plain_text)
    async def typed_levels(message: Message, user: User, tier: Tier, uow: UnitOfWork, trading: TradingService,
                           state: FSMContext) -> None:  # fmt: skip
        data = await state.get_data()
        levels = _levels((message.text or "").split())
        await state.clear()
        result = await trading.modify(uow, user.id, tier, int(data.get("ticket", 0)), levels.get("sl"),
                                      levels.get("tp"))  # fmt: skip
        await show(message, execution_view(result))

    # ---- orders ----
    @router.message(Command("trade"))
    async def trade(message: Message, user: User, tier: Tier, uow: UnitOfWork, trading: TradingService) -> None:
        args = _args(message)
        if len(args) < 3 or args[0].lower() not in ("buy", "sell"):
            await show(message, trade_start_view())
            return
        side = Side(args[0].lower())
        volume = parse_number(args[2], "volume")
        levels = _levels(args[3:])
        preview = await trading.preview_open(uow, user.id, tier, side, args[1], volume, levels.get("sl"),
                                             levels.get("tp"))  # fmt: skip
        await show(message, preview_view(preview))

    @router.callback_query(TradeFlowCB.filter())
    async def trade_flow(
        query: CallbackQuery, callback_data: TradeFlowCB, user: User, tier: Tier, uow: UnitOfWork,
        trading: TradingService,
    ) -> None:  # fmt: skip
        symbol = (await trading.hub.resolve(callback_data.symbol)).name  # forged names end here
        if callback_data.step == "side":
            await show(query, trade_side_view(symbol))
        elif callback_data.step == "vol" and callback_data.side in ("buy", "sell"):
            await show(query, trade_volume_view(symbol, callback_data.side))
        elif callback_data.step == "go" and callback_data.side in ("buy", "sell"):
            volume = parse_number(callback_data.volume, "volume")
            preview = await trading.preview_open(
                uow, user.id, tier, Side(callback_data.side), symbol, volume, None, None
            )
            await show(query, preview_view(preview))
        else:
            await query.answer()

    @router.message(Command("close"))
    async def close(message: Message, user: User, tier: Tier, uow: UnitOfWork, trading: TradingService) -> None:
        args = _args(message)
        if not args or len(args) > 2:
            await show(message, close_usage())
            return
        volume = parse_number(args[1], "volume") if len(args) == 2 else None
        await show(message, close_preview_view(await trading.preview_close(uow, user.id, tier, args[0], volume)))

    @router.callback_query(OrderCB.filter())
    async def order_button(
        query: CallbackQuery, callback_data: OrderCB, user: User, tier: Tier, uow: UnitOfWork, trading: TradingService
    ) -> None:
        if callback_data.action == "ok":
            await show(query, execution_view(await trading.execute(uow, user.id, tier, callback_data.id)))
        elif callback_data.action == "no":
            order = await trading.cancel(uow, user.id, callback_data.id)
            await show(query, cancelled_view() if order.status.value == "cancelled" else execution_view(
                _repeat(order)))  # fmt: skip
        else:
            await query.answer()

    # ---- history ----
    @router.message(Command("history"))
    async def history(message: Message, user: User, tier: Tier, uow: UnitOfWork, trading: TradingService) -> None:
        symbol, days = "", 7
        for arg in _args(message)[:2]:
            count = parse_count(arg, low=1, high=MAX_HISTORY_DAYS)
            if count is not None:
                days = count
            else:
                symbol = arg
        account, info, deals = await trading.history(uow, user.id, tier, days, symbol or None)
        symbol = deals[0].symbol if symbol and deals else symbol.upper()
        text, markup = history_view(account, info, deals, 0, days, symbol, user.timezone)
        await message.answer(text + "\n" + history_usage(), reply_markup=markup)

    @router.callback_query(HistCB.filter())
    async def history_page(
        query: CallbackQuery, callback_data: HistCB, user: User, tier: Tier, uow: UnitOfWork, trading: TradingService
    ) -> None:
        days = min(max(callback_data.days, 1), MAX_HISTORY_DAYS)
        account, info, deals = await trading.history(uow, user.id, tier, days, callback_data.symbol or None)
        await show(query, history_view(account, info, deals, callback_data.page, days, callback_data.symbol,
                                       user.timezone))  # fmt: skip

    # ---- risk and trading state ----
    @router.message(Command("risk"))
    async def risk(message: Message, user: User, uow: UnitOfWork, trading: TradingService) -> None:
        args = _args(message)
        if len(args) == 2:
            profile = await trading.set_limit(uow, user.id, args[0].lower(), args[1])
        else:
            profile = await trading.profile(uow, user.id)
        await show(message, risk_view(profile))

    @router.callback_query(RiskCB.filter())
    async def risk_button(query: CallbackQuery, user: User, uow: UnitOfWork, trading: TradingService) -> None:
        await show(query, risk_view(await trading.profile(uow, user.id)))

    async def trading_home(event: Message | CallbackQuery, user: User, tier: Tier, uow: UnitOfWork,
                           trading: TradingService) -> None:  # fmt: skip
        await show(event, trading_view(*await trading.state(uow, user.id, tier)))

    @router.message(Command("trading"))
    async def trading_command(
        message: Message, user: User, tier: Tier, uow: UnitOfWork, trading: TradingService, autotrade: AutoTrader
    ) -> None:
        args = _args(message)
        if len(args) == 2 and args[0].lower() in AUTO_SETTINGS:
            setter = {"threshold": autotrade.set_threshold, "risk": autotrade.set_risk,
                      "symbol": autotrade.toggle_symbol}[args[0].lower()]  # fmt: skip
            await show(message, autotrade_view(await setter(uow, user.id, tier, args[1]), user.timezone))
            return
        await trading_home(message, user, tier, uow, trading)

    @router.callback_query(TradingCB.filter())
    async def trading_button(
        query: CallbackQuery, callback_data: TradingCB, user: User, tier: Tier, uow: UnitOfWork,
        trading: TradingService, state: FSMContext, autotrade: AutoTrader,
    ) -> None:  # fmt: skip
        action = callback_data.action
        try:
            await _trading_action(query, callback_data, user, tier, uow, trading, state, autotrade)
        except FeatureLocked as exc:
            tier_code = str(exc.params.get("tier", ""))
            locked = auto_locked_text if exc.params.get("feature") == Feature.AUTO_TRADING else live_locked_text
            await query.answer(locked(tier_code), show_alert=True)
            return
        if action != "link":
            await trading_home(query, user, tier, uow, trading)

    async def _trading_action(
        query: CallbackQuery, callback_data: TradingCB, user: User, tier: Tier, uow: UnitOfWork,
        trading: TradingService, state: FSMContext, autotrade: AutoTrader,
    ) -> None:  # fmt: skip
        action = callback_data.action
        if action == "kill":
            await trading.set_flag(uow, user.id, "kill_switch", bool(callback_data.value))
        elif action == "auto":
            await autotrade.set_enabled(uow, user.id, tier, bool(callback_data.value))
        elif action in ("demo", "live"):
            await trading.switch(uow, user.id, tier, AccountKind(action))
        elif action == "unlink":
            await trading.unlink_live(uow, user.id)
            await autotrade.revoke_live(uow, user.id)  # a new live account needs a new confirmation
            await query.bot.send_message(user.id, unlinked_text())  # type: ignore[union-attr]
        elif action == "link":
            trading.require_live(tier)
            await state.set_state(LinkForm.login)
            await query.answer()
            await query.bot.send_message(user.id, link_login_prompt())  # type: ignore[union-attr]

    @router.message(StateFilter(LinkForm.login), is_plain_text)
    async def link_login(message: Message, state: FSMContext) -> None:
        login = parse_id(message.text or "")
        if login is None:  # MT5 logins are positive integers
            await message.answer(link_login_prompt())
            return
        await state.update_data(login=str(login))
        await state.set_state(LinkForm.server)
        await message.answer(link_server_prompt())

    @router.message(StateFilter(LinkForm.server), is_plain_text)
    async def link_server(message: Message, state: FSMContext) -> None:
        await state.update_data(server=(message.text or "").strip()[:64])
        await state.set_state(LinkForm.password)
        await message.answer(link_password_prompt())

    # Any text, "/..." included: a password may start with a slash. The secret-input middleware has already
    # deleted the message; registered commands (/cancel) were taken by their own handlers before this one.
    @router.message(StateFilter(LinkForm.password), has_text)
    async def link_password(
        message: Message, state: FSMContext, user: User, tier: Tier, uow: UnitOfWork, trading: TradingService,
        autotrade: AutoTrader,
    ) -> None:  # fmt: skip
        password = message.text or ""
        data = await state.get_data()
        await state.clear()
        try:
            account = await trading.link_live(uow, user.id, tier, data.get("login", ""), data.get("server", ""),
                                              password)  # fmt: skip
        except LinkFailed:
            await message.answer(link_failed_text())
            return
        finally:
            del password
        await autotrade.revoke_live(uow, user.id)  # live auto-trading is confirmed per linked account
        await show(message, linked_view(account))

    # ---- auto-trading ----
    @router.callback_query(AutoCB.filter())
    async def auto_button(
        query: CallbackQuery, callback_data: AutoCB, user: User, tier: Tier, uow: UnitOfWork, autotrade: AutoTrader,
        state: FSMContext,
    ) -> None:  # fmt: skip
        if callback_data.uid != user.id:
            raise AutoTradeRefused("not this user's panel")
        try:
            panel = await _auto_action(callback_data, user, tier, uow, autotrade, state)
        except FeatureLocked as exc:
            tier_code = str(exc.params.get("tier", ""))
            locked = auto_locked_text if exc.params.get("feature") == Feature.AUTO_TRADING else live_locked_text
            text, markup = autotrade_view(await autotrade.panel(uow, user.id, tier, pending=False), user.timezone)
            if isinstance(query.message, Message):  # the panel shows what the upgrade unlocks; the alert says why
                with contextlib.suppress(TelegramBadRequest):
                    await query.message.edit_text(text, reply_markup=markup)
            await query.answer(locked(tier_code), show_alert=True)
            return
        if isinstance(panel, tuple):
            await show(query, panel)
        else:
            await show(query, autotrade_view(panel, user.timezone))

    async def _auto_action(
        cb: AutoCB, user: User, tier: Tier, uow: UnitOfWork, autotrade: AutoTrader, state: FSMContext
    ) -> AutoPanel | View:
        action = cb.action
        if action in ("on", "off"):
            return await autotrade.set_enabled(uow, user.id, tier, action == "on")
        if action == "thr":
            return await autotrade.set_threshold(uow, user.id, tier, cb.value)
        if action == "risk":
            return await autotrade.set_risk(uow, user.id, tier, cb.value)
        if action == "tf":
            return await autotrade.set_timeframe(uow, user.id, tier, cb.value)
        if action == "sym":
            return await autotrade.toggle_symbol(uow, user.id, tier, cb.value)
        if action == "demo":
            return await autotrade.use_demo(uow, user.id, tier)
        if action == "live":
            panel = await autotrade.live_offer(uow, user.id, tier)
            code = secrets.token_hex(4)
            await state.update_data({LIVE_CODE: code})
            return autotrade_live_view(panel, code)
        if action == "confirm":
            code = (await state.get_data()).get(LIVE_CODE)
            # bytes: compare_digest raises TypeError on a non-ASCII str (forged button data)
            if not code or not secrets.compare_digest(str(code).encode(), cb.value.encode()):
                raise AutoTradeRefused("live confirmation was not asked for")
            await state.update_data({LIVE_CODE: None})
            return await autotrade.confirm_live(uow, user.id, tier)
        return await autotrade.panel(uow, user.id, tier)

    return router


def _repeat(order: Order) -> Execution:
    return Execution(order, (), False, None, None, repeated=True)
