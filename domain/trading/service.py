"""Trading use cases: accounts, risk limits, previewed orders confirmed exactly once, closes,
balance, positions and history.

Every order (manual now, automatic later) goes through :meth:`TradingService.execute`:
the order row moves PENDING -> SENDING in one committed UPDATE before anything is
sent, so however many Confirm taps race, one wins; then the kill switch and the
risk limits are checked again on fresh account data; then the gateway gets the
request with the order id as ``client_id``. Every step is audited.
"""

from __future__ import annotations

import logging
import math
import secrets
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from domain.audit import AuditEntry, Surface
from domain.clock import utcnow
from domain.db.uow import UnitOfWork
from domain.errors import FeatureLocked
from domain.market.errors import GatewayError, GatewayTimeout
from domain.market.gateway import OrderRequest, TradingGateway
from domain.market.models import Account, Deal, Position, Retcode, Side, SymbolSpec
from domain.parsing import looks_numeric, parse_id
from domain.tiers import Feature, Tier, TierCatalog
from domain.trading.crypto import SecretBox
from domain.trading.market import MarketHub, market_errors
from domain.trading.models import (
    AccountKind,
    ClosePreview,
    DayPnl,
    Execution,
    InvalidOrder,
    LinkedAccount,
    NoLiveAccount,
    NoPositions,
    Order,
    OrderExpired,
    OrderKind,
    OrderRefused,
    OrderStatus,
    OutcomeUnknown,
    PositionNotFound,
    Preview,
    RETCODE_OK,
    RiskBreachInfo,
    RiskLimits,
    StopsWrongSide,
    TradingProfile,
    VolumeOutOfRange,
)

log = logging.getLogger(__name__)

PREVIEW_TTL = timedelta(minutes=5)
MAX_VOLUME = 1e9  # lots: far above any symbol's maximum
DEMO_BALANCE = 10_000.0


def round_volume(volume: float, spec: SymbolSpec) -> float:
    if not 0 < volume <= MAX_VOLUME:  # a bigger number overflows the step arithmetic and means nothing anyway
        raise VolumeOutOfRange("volume", low=spec.volume_min, high=spec.volume_max, step=spec.volume_step)
    steps = math.floor(volume / spec.volume_step + 1e-9)
    decimals = max(0, -int(math.floor(math.log10(spec.volume_step)))) if spec.volume_step < 1 else 0
    return round(steps * spec.volume_step, decimals)


class TradingService:
    def __init__(self, hub: MarketHub, tiers: TierCatalog, box: SecretBox) -> None:
        self.hub = hub
        self._tiers = tiers
        self._box = box

    # ---- profile and accounts ------------------------------------------------------------
    async def profile(self, uow: UnitOfWork, user_id: int) -> TradingProfile:
        return await uow.trading.profile(user_id)

    async def demo_account(self, uow: UnitOfWork, user_id: int) -> LinkedAccount:
        found = await uow.trading.account(user_id, AccountKind.DEMO)
        if found is not None:
            return found[0]
        login = await self.hub.open_demo(DEMO_BALANCE)
        account = LinkedAccount(user_id, AccountKind.DEMO, login, self.hub.terminal.server)
        if await uow.trading.add_account(account, None, utcnow()):
            await uow.audit.append(AuditEntry("trading.demo_opened", user_id, user_id, Surface.CHAT, {"login": login}))
            await uow.commit()
            return account
        found = await uow.trading.account(user_id, AccountKind.DEMO)  # a concurrent first use won
        assert found is not None
        return found[0]

    async def active(
        self, uow: UnitOfWork, user_id: int, tier: Tier, kind: AccountKind | None = None
    ) -> tuple[LinkedAccount, TradingGateway]:
        """The account in use (or ``kind``) and its gateway (live falls back to an error, never silently to demo)."""
        profile = await uow.trading.profile(user_id)
        if (kind or profile.active) is AccountKind.LIVE:
            self.require_live(tier)
            found = await uow.trading.account(user_id, AccountKind.LIVE)
            if found is None or found[1] is None:
                raise NoLiveAccount("no live account linked")
            account, token = found
            gw = await self.hub.live_gateway(account.login, self._box.open(token), account.server)
            return account, gw
        account = await self.demo_account(uow, user_id)
        return account, self.hub.demo_gateway(account.login)

    def require_live(self, tier: Tier) -> None:
        if not tier.has(Feature.LIVE_TRADING):
            needed = self._tiers.required_for(min_tier=None, feature=Feature.LIVE_TRADING)
            raise FeatureLocked("live trading", feature=Feature.LIVE_TRADING.value, tier=needed.code if needed else "")

    async def link_live(
        self, uow: UnitOfWork, user_id: int, tier: Tier, login_raw: str, server: str, password: str
    ) -> LinkedAccount:
        self.require_live(tier)
        login = parse_id(login_raw)
        if login is None:
            raise InvalidOrder("login", field="login")
        if not server.strip() or not password:
            raise InvalidOrder("credentials", field="login")
        server = server.strip()[:64]
        old = await uow.trading.account(user_id, AccountKind.LIVE)
        if old is not None:
            self.hub.forget_live(old[0].login)
        gw = await self.hub.connect_live(login, password, server)  # LinkFailed when refused
        account = LinkedAccount(user_id, AccountKind.LIVE, login, server)
        await uow.trading.replace_account(account, self._box.seal(password), utcnow())
        await uow.audit.append(
            AuditEntry("trading.live_linked", user_id, user_id, Surface.CHAT, {"login": login, "server": server})
        )
        await uow.commit()
        self.hub._gateways[("live", login)] = gw
        return account

    async def unlink_live(self, uow: UnitOfWork, user_id: int) -> None:
        old = await uow.trading.account(user_id, AccountKind.LIVE)
        if old is None:
            raise NoLiveAccount("no live account linked")
        self.hub.forget_live(old[0].login)
        await uow.trading.remove_account(user_id, AccountKind.LIVE)
        profile = await uow.trading.profile(user_id)
        if profile.active is AccountKind.LIVE:
            await uow.trading.save_profile(replace(profile, active=AccountKind.DEMO), utcnow())
        await uow.audit.append(AuditEntry("trading.live_unlinked", user_id, user_id, Surface.CHAT, {}))
        await uow.commit()

    async def live_account(self, uow: UnitOfWork, user_id: int) -> LinkedAccount | None:
        found = await uow.trading.account(user_id, AccountKind.LIVE)
        return found[0] if found else None

    async def switch(self, uow: UnitOfWork, user_id: int, tier: Tier, kind: AccountKind) -> TradingProfile:
        if kind is AccountKind.LIVE:
            self.require_live(tier)
            if await uow.trading.account(user_id, AccountKind.LIVE) is None:
                raise NoLiveAccount("no live account linked")
        profile = replace(await uow.trading.profile(user_id), active=kind)
        await uow.trading.save_profile(profile, utcnow())
        await uow.audit.append(
            AuditEntry("trading.account_switched", user_id, user_id, Surface.CHAT, {"to": kind.value})
        )
        await uow.commit()
        return profile

    async def set_flag(self, uow: UnitOfWork, user_id: int, flag: str, value: bool) -> TradingProfile:
        if flag not in ("auto_trading", "kill_switch"):
            raise InvalidOrder("flag", field="flag")
        profile = replace(await uow.trading.profile(user_id), **{flag: value})
        await uow.trading.save_profile(profile, utcnow())
        await uow.audit.append(AuditEntry(f"trading.{flag}", user_id, user_id, Surface.CHAT, {"on": value}))
        await uow.commit()
        return profile

    async def set_limit(self, uow: UnitOfWork, user_id: int, name: str, raw: str) -> TradingProfile:
        profile = await uow.trading.profile(user_id)
        profile = replace(profile, limits=profile.limits.with_value(name, raw))
        await uow.trading.save_profile(profile, utcnow())
        await uow.audit.append(
            AuditEntry("trading.limit_set", user_id, user_id, Surface.CHAT, {name: getattr(profile.limits, name)})
        )
        await uow.commit()
        return profile

    # ---- reading the account ---------------------------------------------------------------
    async def balance(self, uow: UnitOfWork, user_id: int, tier: Tier) -> tuple[LinkedAccount, Account]:
        account, gw = await self.active(uow, user_id, tier)
        async with market_errors():
            return account, await gw.account()

    async def positions(
        self, uow: UnitOfWork, user_id: int, tier: Tier
    ) -> tuple[LinkedAccount, Account, list[Position], dict[str, int]]:
        account, gw = await self.active(uow, user_id, tier)
        async with market_errors():
            info, positions = await gw.account(), await gw.positions()
        digits = {p.symbol: await self.hub.digits(p.symbol) for p in positions}
        return account, info, positions, digits

    async def history(
        self, uow: UnitOfWork, user_id: int, tier: Tier, days: int, symbol: str | None
    ) -> tuple[LinkedAccount, Account, list[Deal]]:
        account, gw = await self.active(uow, user_id, tier)
        if symbol:
            symbol = (await self.hub.resolve(symbol)).name
        end = datetime.now(UTC) if self.hub.backend != "sim" else _terminal_now(self.hub)
        start = end - timedelta(days=days)
        async with market_errors():
            info = await gw.account()
            deals = await gw.history_deals(start, end + timedelta(seconds=1), symbol)
        closed = [d for d in deals if d.entry == "out"]
        closed.sort(key=lambda d: (d.time, d.ticket), reverse=True)
        return account, info, closed

    async def day_pnl(self, gw: TradingGateway, now: datetime) -> tuple[DayPnl, Account, list[Position]]:
        start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        async with market_errors():
            info = await gw.account()
            positions = await gw.positions()
            deals = await gw.history_deals(start, now + timedelta(seconds=1))
        realized = sum(d.profit + d.commission + d.swap for d in deals if d.entry in ("in", "out") and d.symbol)
        floating = sum(p.profit for p in positions)
        total = realized + floating
        return DayPnl(round(realized, 2), round(floating, 2), info.equity - total), info, positions

    async def state(
        self, uow: UnitOfWork, user_id: int, tier: Tier
    ) -> tuple[TradingProfile, LinkedAccount, Account, DayPnl, LinkedAccount | None]:
        profile = await uow.trading.profile(user_id)
        account, gw = await self.active(uow, user_id, tier)
        pnl, info, _positions = await self.day_pnl(gw, self._now())
        return profile, account, info, pnl, await self.live_account(uow, user_id)

    def _now(self) -> datetime:
        return _terminal_now(self.hub) if self.hub.backend == "sim" else datetime.now(UTC)

    # ---- opening ------------------------------------------------------------------------------
    async def preview_open(
        self, uow: UnitOfWork, user_id: int, tier: Tier, side: Side, symbol_raw: str, volume: float,
        sl: float | None, tp: float | None, *, account: AccountKind | None = None, surface: Surface = Surface.CHAT,
        note: Mapping[str, Any] | None = None,
    ) -> Preview:  # fmt: skip
        """``account`` overrides the active account; ``note`` is recorded in the order's params (auto-trading)."""
        spec = await self.hub.resolve(symbol_raw)
        if not (volume > 0 and math.isfinite(volume)):
            raise InvalidOrder("volume", field="volume")
        rounded = round_volume(volume, spec)
        if rounded < spec.volume_min or rounded > spec.volume_max:
            raise VolumeOutOfRange("volume", low=spec.volume_min, high=spec.volume_max, step=spec.volume_step)
        for name, level in (("sl", sl), ("tp", tp)):
            if level is not None and not (level > 0 and math.isfinite(level)):
                raise InvalidOrder(name, field=name)
        account, gw = await self.active(uow, user_id, tier, account)
        tick = await self.hub.tick(spec.name)
        price = tick.ask if side is Side.BUY else tick.bid
        _check_sides(side, price, sl, tp)
        request = OrderRequest.market(spec.name, side, rounded, sl=sl, tp=tp)
        async with market_errors(spec.name):
            check = await gw.order_check(request)
            info = await gw.account()
        risk_money = await self._risk_money(spec, info.currency, side, rounded, price, sl)
        risk_pct = risk_money / info.equity * 100 if risk_money is not None and info.equity > 0 else None
        order = Order(
            id=secrets.token_hex(8),
            user_id=user_id,
            account_kind=account.kind,
            login=account.login,
            kind=OrderKind.OPEN,
            symbol=spec.name,
            params={**(note or {}), "side": side.value, "volume": rounded, "sl": sl, "tp": tp, "price": price},
            status=OrderStatus.PENDING,
            retcode=None,
            result={},
            created_at=utcnow(),
        )
        await uow.trading.add_order(order)
        await uow.audit.append(
            AuditEntry("trade.previewed", user_id, user_id, surface, {"order": order.id, **order.params,
                       "symbol": spec.name, "account": account.kind.value, "check": int(check.retcode)})
        )  # fmt: skip
        await uow.commit()
        return Preview(
            order, side, spec.name, rounded, volume, price, sl, tp, spec.digits, check.margin, check.margin_free,
            info.equity, info.currency, risk_money, risk_pct, int(check.retcode),
            int(check.retcode) in (0, *RETCODE_OK),
        )  # fmt: skip

    async def _risk_money(
        self, spec: SymbolSpec, currency: str, side: Side, volume: float, price: float, sl: float | None
    ) -> float | None:
        if sl is None:
            return None
        loss = abs(price - sl) * volume * spec.contract_size
        return round(loss * await self._rate(spec.currency_profit, currency), 2)

    async def conversion(self, src: str, dst: str) -> float:
        """Units of ``dst`` per unit of ``src`` (e.g. a symbol's profit currency into the account's)."""
        return await self._rate(src, dst)

    async def _rate(self, src: str, dst: str) -> float:
        if src == dst:
            return 1.0
        names = await self.hub.symbol_names()
        if src + dst in names:
            return (await self.hub.tick(src + dst)).bid
        if dst + src in names:
            return 1.0 / (await self.hub.tick(dst + src)).ask
        if src != "USD" and dst != "USD":
            return await self._rate(src, "USD") * await self._rate("USD", dst)
        return 1.0

    async def check_risk(self, profile: TradingProfile, gw: TradingGateway, order: Order) -> RiskBreachInfo | None:
        """The kill switch and every /risk limit, on fresh account data; None when the order may go."""
        if profile.kill_switch:
            return RiskBreachInfo("kill_switch", 0, 0)
        limits: RiskLimits = profile.limits
        p = order.params
        volume = float(p["volume"])
        if volume > limits.max_volume + 1e-9:
            return RiskBreachInfo("max_volume", limits.max_volume, volume)
        pnl, info, positions = await self.day_pnl(gw, self._now())
        if len(positions) >= limits.max_positions:
            return RiskBreachInfo("max_positions", limits.max_positions, len(positions))
        if pnl.loss_pct >= limits.max_daily_loss_pct:
            return RiskBreachInfo("daily_loss", limits.max_daily_loss_pct, round(pnl.loss_pct, 2))
        if p.get("sl") is not None and order.symbol:
            spec = await self.hub.resolve(order.symbol)
            risk = await self._risk_money(spec, info.currency, Side(p["side"]), volume, float(p["price"]), p["sl"])
            pct = risk / info.equity * 100 if risk is not None and info.equity > 0 else 0.0
            if pct > limits.risk_per_trade_pct + 1e-9:
                return RiskBreachInfo("risk_per_trade", limits.risk_per_trade_pct, round(pct, 2))
        return None

    # ---- closing and modifying ----------------------------------------------------------------
    async def preview_close(
        self, uow: UnitOfWork, user_id: int, tier: Tier, target: str, volume: float | None
    ) -> ClosePreview:
        """``target``: a ticket, a symbol or "all". Another user's ticket is refused and audited."""
        account, gw = await self.active(uow, user_id, tier)
        async with market_errors():
            positions = await gw.positions()
            info = await gw.account()
        target = target.strip()
        if looks_numeric(target):
            ticket = parse_id(target)  # None: digits no terminal issues ("²³", beyond int64)
            chosen = [p for p in positions if p.ticket == ticket] if ticket is not None else []
            if not chosen:
                if ticket is not None:
                    await uow.audit.append(
                        AuditEntry("trade.close_refused", user_id, user_id, Surface.CHAT, {"ticket": ticket})
                    )
                    await uow.commit()
                raise PositionNotFound("not this account's", ticket=target[:32])
        elif target.lower() == "all":
            chosen = positions
        else:
            symbol = (await self.hub.resolve(target)).name
            chosen = [p for p in positions if p.symbol == symbol]
        if not chosen:
            raise NoPositions("nothing to close")
        if volume is not None:
            if len(chosen) != 1:
                raise InvalidOrder("partial volume needs one ticket", field="volume")
            spec = await self.hub.resolve(chosen[0].symbol)
            volume = round_volume(volume, spec)
            if volume < spec.volume_min or volume > chosen[0].volume:
                raise VolumeOutOfRange("volume", low=spec.volume_min, high=chosen[0].volume, step=spec.volume_step)
        rows = tuple(
            (p.ticket, p.symbol, p.side.value, p.volume, volume if volume is not None else p.volume, p.profit)
            for p in chosen
        )
        order = Order(
            secrets.token_hex(8), user_id, account.kind, account.login, OrderKind.CLOSE, None,
            {"tickets": [r[0] for r in rows], "volume": volume}, OrderStatus.PENDING, None, {}, utcnow(),
        )  # fmt: skip
        await uow.trading.add_order(order)
        await uow.audit.append(
            AuditEntry("trade.close_previewed", user_id, user_id, Surface.CHAT, {"order": order.id, **order.params})
        )
        await uow.commit()
        return ClosePreview(order, rows, info.currency)

    async def modify(
        self, uow: UnitOfWork, user_id: int, tier: Tier, ticket: int, sl: float | None, tp: float | None
    ) -> Execution:
        account, gw = await self.active(uow, user_id, tier)
        async with market_errors():
            positions = await gw.positions()
        pos = next((p for p in positions if p.ticket == ticket), None)
        if pos is None:
            await uow.audit.append(
                AuditEntry("trade.modify_refused", user_id, user_id, Surface.CHAT, {"ticket": ticket})
            )
            await uow.commit()
            raise PositionNotFound("not this account's", ticket=str(ticket))
        _check_sides(pos.side, pos.price_current, sl, tp)
        order = Order(
            secrets.token_hex(8), user_id, account.kind, account.login, OrderKind.MODIFY, pos.symbol,
            {"ticket": ticket, "sl": sl, "tp": tp}, OrderStatus.SENDING, None, {}, utcnow(),
        )  # fmt: skip
        await uow.trading.add_order(order)
        await uow.commit()
        return await self._send(uow, gw, order, [OrderRequest.modify(pos.symbol, ticket, sl=sl, tp=tp)])

    # ---- confirming -----------------------------------------------------------------------------
    async def cancel(self, uow: UnitOfWork, user_id: int, order_id: str) -> Order:
        if not await uow.trading.transition(order_id, user_id, OrderStatus.PENDING, OrderStatus.CANCELLED, utcnow()):
            return await self._refuse_or_get(uow, user_id, order_id)
        await uow.audit.append(AuditEntry("trade.cancelled", user_id, user_id, Surface.CHAT, {"order": order_id}))
        await uow.commit()
        order = await uow.trading.order(order_id)
        assert order is not None
        return order

    async def execute(
        self, uow: UnitOfWork, user_id: int, tier: Tier, order_id: str, *, account: AccountKind | None = None,
        surface: Surface = Surface.CHAT,
    ) -> Execution:
        """Confirm a previewed order: sent at most once however often this is called."""
        now = utcnow()
        claimed = await uow.trading.transition(order_id, user_id, OrderStatus.PENDING, OrderStatus.SENDING, now)
        await uow.commit()
        if not claimed:
            order = await self._refuse_or_get(uow, user_id, order_id)
            return Execution(order, (order.retcode,) if order.retcode else (), order.status is OrderStatus.DONE,
                             order.result.get("price"), order.result.get("volume"), repeated=True)  # fmt: skip
        order = await uow.trading.order(order_id)
        assert order is not None
        try:
            prepared = await self._prepare(uow, user_id, tier, order, now, account, surface)
            if isinstance(prepared, Execution):
                return prepared
            return await self._send(uow, prepared[0], order, prepared[1], surface)
        except BaseException as exc:  # never leave a claimed order in SENDING
            await uow.rollback()
            await self._finish(
                uow, order, OrderStatus.FAILED, None, {"error": getattr(exc, "code", type(exc).__name__)}, surface
            )
            raise

    async def _prepare(
        self, uow: UnitOfWork, user_id: int, tier: Tier, order: Order, now: datetime,
        kind: AccountKind | None = None, surface: Surface = Surface.CHAT,
    ) -> Execution | tuple[TradingGateway, list[OrderRequest]]:  # fmt: skip
        if now - order.created_at > PREVIEW_TTL:
            await self._finish(uow, order, OrderStatus.EXPIRED, None, {}, surface)
            raise OrderExpired("preview too old")
        account, gw = await self.active(uow, user_id, tier, kind)
        if (account.kind, account.login) != (order.account_kind, order.login):
            await self._finish(uow, order, OrderStatus.CANCELLED, None, {"reason": "account switched"}, surface)
            raise OrderExpired("account switched since the preview")
        profile = await uow.trading.profile(user_id)
        if order.kind is OrderKind.OPEN:
            breach = await self.check_risk(profile, gw, order)
            if breach is not None:
                final = await self._finish(
                    uow, order, OrderStatus.BLOCKED, None,
                    {"rule": breach.rule, "limit": breach.limit, "value": breach.value}, surface,
                )  # fmt: skip
                return Execution(final, (), False, None, None, breach=breach)
            p = order.params
            return gw, [
                OrderRequest.market(order.symbol or "", Side(p["side"]), float(p["volume"]), sl=p.get("sl"),
                                    tp=p.get("tp"), client_id=order.id)
            ]  # fmt: skip
        async with market_errors():
            open_ = {p.ticket: p for p in await gw.positions()}
        requests = [
            OrderRequest.close(open_[t].symbol, t, order.params.get("volume"), client_id=order.id)
            for t in order.params["tickets"]
            if t in open_
        ]
        if not requests:
            await self._finish(uow, order, OrderStatus.CANCELLED, None, {"reason": "already closed"}, surface)
            raise NoPositions("already closed")
        return gw, requests

    async def _send(
        self, uow: UnitOfWork, gw: TradingGateway, order: Order, requests: list[OrderRequest],
        surface: Surface = Surface.CHAT,
    ) -> Execution:  # fmt: skip
        retcodes: list[int] = []
        price = volume = None
        try:
            for request in requests:
                result = await gw.order_send(request)
                retcodes.append(int(result.retcode))
                if result.ok:
                    price, volume = result.price, (volume or 0) + result.volume
        except GatewayTimeout as exc:
            await self._finish(
                uow, order, OrderStatus.FAILED, None, {"error": "timeout", "retcodes": retcodes}, surface
            )
            raise OutcomeUnknown("the gateway timed out during order_send") from exc
        except GatewayError as exc:
            await self._finish(
                uow, order, OrderStatus.FAILED, None, {"error": exc.code, "retcodes": retcodes}, surface
            )
            async with market_errors():
                raise
        ok = bool(retcodes) and all(r in RETCODE_OK for r in retcodes)
        status = OrderStatus.DONE if ok else (OrderStatus.REJECTED if not any(r in RETCODE_OK for r in retcodes)
                                              else OrderStatus.DONE)  # fmt: skip
        final = await self._finish(
            uow, order, status, retcodes[-1] if retcodes else None,
            {"retcodes": retcodes, "price": price, "volume": volume}, surface,
        )  # fmt: skip
        return Execution(final, tuple(retcodes), ok, price, volume)

    async def _finish(
        self, uow: UnitOfWork, order: Order, status: OrderStatus, retcode: int | None, result: dict[str, Any],
        surface: Surface = Surface.CHAT,
    ) -> Order:  # fmt: skip
        moved = await uow.trading.transition(
            order.id, order.user_id, OrderStatus.SENDING, status, utcnow(), retcode=retcode, result=result
        )
        if not moved:  # already finished (e.g. an error after a refusal was recorded)
            final = await uow.trading.order(order.id)
            assert final is not None
            return final
        action = {OrderStatus.BLOCKED: "trade.blocked", OrderStatus.DONE: "trade.executed"}.get(
            status, "trade." + status
        )
        await uow.audit.append(
            AuditEntry(action, order.user_id, order.user_id, surface,
                       {"order": order.id, "kind": order.kind.value, "symbol": order.symbol, **order.params,
                        "retcode": retcode, **result})
        )  # fmt: skip
        await uow.commit()
        final = await uow.trading.order(order.id)
        assert final is not None
        return final

    async def _refuse_or_get(self, uow: UnitOfWork, user_id: int, order_id: str) -> Order:
        order = await uow.trading.order(order_id)
        if order is None or order.user_id != user_id:
            await uow.audit.append(
                AuditEntry("trade.confirm_refused", user_id, user_id, Surface.CHAT,
                           {"order": order_id[:32], "owner": order.user_id if order else None})
            )  # fmt: skip
            await uow.commit()
            raise OrderRefused("not this user's order")
        return order


def _check_sides(side: Side, price: float, sl: float | None, tp: float | None) -> None:
    below, above = (sl, tp) if side is Side.BUY else (tp, sl)
    if below is not None and below >= price:
        raise StopsWrongSide("wrong side", field="sl" if side is Side.BUY else "tp", side=side.value)
    if above is not None and above <= price:
        raise StopsWrongSide("wrong side", field="tp" if side is Side.BUY else "sl", side=side.value)


def _terminal_now(hub: MarketHub) -> datetime:
    return datetime.fromtimestamp(hub.terminal.now_ms() / 1000, UTC)


__all__ = ["TradingService", "round_volume", "Retcode"]
