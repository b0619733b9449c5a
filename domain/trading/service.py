"""Trading use cases: accounts, risk limits, previewed orders confirmed exactly once, closes,
balance, positions and history.

Every order (chat and auto-trading) goes through :meth:`TradingService.execute`,
under the account's lock (domain/trading/locks.py, shared by every process): no
other order on the account may be unsettled; the order row moves PENDING ->
SENDING in one committed UPDATE before anything is sent, so however many
Confirm taps race, one wins; then the kill switch and the risk limits are
checked again on fresh account data; then the gateway gets the request
carrying the order id (MT5 comment) and its magic. Check and send in one
critical section: concurrent orders cannot all pass a limit that only one fits.

When no answer comes back (timeout, connection lost mid-call, a crash) the
order stays SENDING: its outcome is unknown, not failed. Reconciliation
(domain/trading/reconcile.py) finds it in the terminal by its id and settles it
DONE with the real fill or REJECTED, once; until then no new order goes to that
account. Every step is audited.
"""

from __future__ import annotations

import logging
import math
import secrets
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError

from domain.audit import AuditEntry, Surface
from domain.clock import utcnow
from domain.db.uow import UnitOfWork
from domain.errors import FeatureLocked
from domain.market.errors import (
    AutoTradingDisabled,
    BackendNotInstalled,
    GatewayAuthError,
    GatewayError,
    InvalidRequest,
    NoQuotes,
    UnknownSymbol,
)
from domain.market.gateway import OrderRequest, TradingGateway
from domain.market.models import Account, Deal, Position, Retcode, Side, SymbolSpec
from domain.parsing import looks_numeric, parse_id
from domain.tiers import Feature, Tier, TierCatalog
from domain.trading.crypto import SecretBox
from domain.trading.locks import AccountLocks, LocalLocks
from domain.trading.market import MarketHub, market_errors
from domain.trading.models import (
    AccountKind,
    AccountTaken,
    DemoLoginRefused,
    LinkFailed,
    NoFreeTerminal,
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
    OrderUnsettled,
    OutcomeUnknown,
    PositionNotFound,
    Preview,
    RETCODE_OK,
    RiskBreachInfo,
    RiskLimits,
    Settlement,
    StopsWrongSide,
    TradingProfile,
    VolumeOutOfRange,
    order_magic,
)
from domain.trading.reconcile import Announce, find_fill

log = logging.getLogger(__name__)

PREVIEW_TTL = timedelta(minutes=5)
MAX_VOLUME = 1e9  # lots: far above any symbol's maximum
DEMO_BALANCE = 10_000.0
# Deal history read when looking for an order, on top of the time since it was claimed (clock skew, a
# terminal whose time is not ours).
LOOKBACK = timedelta(days=1)
# The gateway refused these before the request left this process (or the terminal refused it outright): the
# order was not sent. Any other failure of order_send leaves the outcome unknown.
NOT_SENT = (InvalidRequest, UnknownSymbol, NoQuotes, GatewayAuthError, AutoTradingDisabled, BackendNotInstalled)


def round_volume(volume: float, spec: SymbolSpec) -> float:
    if not 0 < volume <= MAX_VOLUME:  # a bigger number overflows the step arithmetic and means nothing anyway
        raise VolumeOutOfRange("volume", low=spec.volume_min, high=spec.volume_max, step=spec.volume_step)
    steps = math.floor(volume / spec.volume_step + 1e-9)
    decimals = max(0, -int(math.floor(math.log10(spec.volume_step)))) if spec.volume_step < 1 else 0
    return round(steps * spec.volume_step, decimals)


class TradingService:
    def __init__(self, hub: MarketHub, tiers: TierCatalog, box: SecretBox, *, locks: AccountLocks | None = None) -> None:
        self.hub = hub
        self._tiers = tiers
        self._box = box
        self.locks: AccountLocks = locks or LocalLocks()

    # ---- profile and accounts ------------------------------------------------------------
    async def profile(self, uow: UnitOfWork, user_id: int) -> TradingProfile:
        return await uow.trading.profile(user_id)

    def simulated(self, kind: AccountKind) -> bool:
        """Whether an account of ``kind`` trades simulated prices: a demo account always (it lives on the
        simulated terminal, whatever feeds market data), a live one on the ``sim`` backend."""
        return kind is AccountKind.DEMO or self.hub.simulated

    def _marked(self, account: LinkedAccount) -> LinkedAccount:
        return replace(account, simulated=self.simulated(account.kind))

    async def demo_account(self, uow: UnitOfWork, user_id: int) -> LinkedAccount:
        found = await uow.trading.account(user_id, AccountKind.DEMO)
        if found is not None:
            return self._marked(found[0])
        login = await self.hub.open_demo(DEMO_BALANCE)
        account = LinkedAccount(user_id, AccountKind.DEMO, login, self.hub.terminal.server, simulated=True)
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
            gw = await self.hub.live_gateway(user_id, account.login, self._box.open(token), account.server)
            return self._marked(account), gw
        account = await self.demo_account(uow, user_id)
        return account, self.hub.demo_gateway(account.login)

    def require_live(self, tier: Tier) -> None:
        if not tier.has(Feature.LIVE_TRADING):
            needed = self._tiers.required_for(min_tier=None, feature=Feature.LIVE_TRADING)
            raise FeatureLocked("live trading", feature=Feature.LIVE_TRADING.value, tier=needed.code if needed else "")

    async def link_live(
        self, uow: UnitOfWork, user_id: int, tier: Tier, login_raw: str, server: str, password: str
    ) -> LinkedAccount:
        """Link a live account on a terminal of its own (a lease of the pool).

        Refused (audited, nothing stored): platform demo logins, accounts the terminal reports as
        demo, a (login, server) another user linked (AccountTaken), a wrong password (LinkFailed),
        no free terminal (NoFreeTerminal)."""
        self.require_live(tier)
        login = parse_id(login_raw)
        if login is None:
            raise InvalidOrder("login", field="login")
        if not server.strip() or not password:
            raise InvalidOrder("credentials", field="login")
        server = server.strip()[:64]
        try:
            if await uow.trading.is_platform_demo(login, server, self.hub.terminal.server):
                raise DemoLoginRefused("a platform demo login")
            owner = await uow.trading.live_owner(login, server)
            if owner is not None and owner != user_id:
                raise AccountTaken("linked by another user")
            old = await uow.trading.account(user_id, AccountKind.LIVE)
            await uow.commit()  # no transaction held while a terminal logs in
            if old is not None and (old[0].login, old[0].server.casefold()) != (login, server.casefold()):
                await self.hub.forget_live(old[0].login, old[0].server, release_for=user_id)  # its terminal first
            gw, info = await self.hub.link_gateway(user_id, login, password, server)
        except (DemoLoginRefused, AccountTaken, LinkFailed, NoFreeTerminal) as exc:
            await self._link_refused(uow, user_id, login, server, exc.code)
            raise
        account = LinkedAccount(user_id, AccountKind.LIVE, login, info.server,  # the server's own spelling
                                simulated=self.hub.simulated)  # fmt: skip
        try:
            await uow.trading.replace_account(account, self._box.seal(password), utcnow())
            await uow.audit.append(
                AuditEntry("trading.live_linked", user_id, user_id, Surface.CHAT, {"login": login, "server": info.server})
            )
            await uow.commit()
        except IntegrityError:  # another user linked the same account a moment before
            await uow.rollback()
            await self.hub.forget_live(login, info.server, release_for=user_id)
            await gw.close()
            await self._link_refused(uow, user_id, login, server, AccountTaken.code)
            raise AccountTaken("linked by another user") from None
        await self.hub.adopt_live(login, info.server, gw)
        return account

    async def _link_refused(self, uow: UnitOfWork, user_id: int, login: int, server: str, reason: str) -> None:
        await uow.audit.append(
            AuditEntry("trading.link_refused", user_id, user_id, Surface.CHAT,
                       {"login": login, "server": server, "reason": reason})
        )  # fmt: skip
        await uow.commit()

    async def unlink_live(self, uow: UnitOfWork, user_id: int) -> None:
        old = await uow.trading.account(user_id, AccountKind.LIVE)
        if old is None:
            raise NoLiveAccount("no live account linked")
        # its credentials are what reconciliation looks an unsettled order up with: keep them until it is settled
        await self._refuse_unsettled(uow, user_id, AccountKind.LIVE, old[0].login, Surface.CHAT, locked=False)
        await uow.trading.remove_account(user_id, AccountKind.LIVE)
        profile = await uow.trading.profile(user_id)
        if profile.active is AccountKind.LIVE:
            await uow.trading.save_profile(replace(profile, active=AccountKind.DEMO), utcnow())
        await uow.audit.append(AuditEntry("trading.live_unlinked", user_id, user_id, Surface.CHAT, {}))
        await uow.commit()
        await self.hub.forget_live(old[0].login, old[0].server, release_for=user_id)  # its terminal is free again

    async def live_account(self, uow: UnitOfWork, user_id: int) -> LinkedAccount | None:
        found = await uow.trading.account(user_id, AccountKind.LIVE)
        return self._marked(found[0]) if found else None

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
        await self._refuse_unsettled(uow, user_id, account.kind, account.login, surface, locked=False)
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
            int(check.retcode) in (0, *RETCODE_OK), account.simulated,
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
        await self._refuse_unsettled(uow, user_id, account.kind, account.login, Surface.CHAT, locked=False)
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
        return ClosePreview(order, rows, info.currency, account.simulated)

    async def modify(
        self, uow: UnitOfWork, user_id: int, tier: Tier, ticket: int, sl: float | None, tp: float | None
    ) -> Execution:
        account, gw = await self.active(uow, user_id, tier)
        async with self.locks.hold(account.kind.value, account.login):
            await self._refuse_unsettled(uow, user_id, account.kind, account.login, Surface.CHAT)
            return await self._modify_locked(uow, user_id, account, gw, ticket, sl, tp)

    async def _modify_locked(
        self, uow: UnitOfWork, user_id: int, account: LinkedAccount, gw: TradingGateway, ticket: int,
        sl: float | None, tp: float | None,
    ) -> Execution:  # fmt: skip
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
        request = replace(OrderRequest.modify(pos.symbol, ticket, sl=sl, tp=tp), magic=order_magic(order.id))
        return await self._send(uow, gw, order, [request])

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
        """Confirm a previewed order: sent at most once however often this is called, and only while no other
        order on its account is unsettled. The claim, the risk check and the send hold the account's lock."""
        order = await uow.trading.order(order_id)
        if order is None or order.user_id != user_id:
            await self._refuse_or_get(uow, user_id, order_id)  # audited, raises
        assert order is not None
        if order.status is not OrderStatus.PENDING:
            return _repeated(order)
        async with self.locks.hold(order.account_kind.value, order.login):
            done = await self._execute_locked(uow, user_id, tier, order, account, surface)
        return replace(done, simulated=self.simulated(order.account_kind))

    async def _execute_locked(
        self, uow: UnitOfWork, user_id: int, tier: Tier, order: Order, kind: AccountKind | None, surface: Surface
    ) -> Execution:
        await self._refuse_unsettled(uow, user_id, order.account_kind, order.login, surface, exclude=order.id)
        now = utcnow()
        claimed = await uow.trading.transition(order.id, user_id, OrderStatus.PENDING, OrderStatus.SENDING, now)
        await uow.commit()
        current = await uow.trading.order(order.id)
        assert current is not None
        if not claimed:
            return _repeated(current)
        in_flight = False
        try:
            prepared = await self._prepare(uow, user_id, tier, current, now, kind, surface)
            if isinstance(prepared, Execution):
                return prepared
            in_flight = True  # from here on a failure leaves the outcome unknown: _send decides
            return await self._send(uow, prepared[0], current, prepared[1], surface)
        except BaseException as exc:
            if in_flight:
                raise
            await uow.rollback()  # nothing was sent: never leave a claimed order in SENDING
            await self._finish(
                uow, current, OrderStatus.FAILED, None, {"error": getattr(exc, "code", type(exc).__name__)}, surface
            )
            raise

    async def _refuse_unsettled(
        self, uow: UnitOfWork, user_id: int, kind: AccountKind, login: int, surface: Surface,
        exclude: str | None = None, *, locked: bool = True,
    ) -> None:  # fmt: skip
        """A new order (or a retry) while another order on the account has no known outcome could double a
        position: refused (audited) until reconciliation settles the other one.

        Holding the account's lock (``locked``), every other SENDING order is one whose sender is gone or gave
        up (senders hold the lock from the claim to the answer). Without it (a preview) only orders already
        marked unknown count: another may just be in flight."""
        blocking = await uow.trading.unsettled(kind, login, exclude, known_unknown=not locked)
        if blocking is None:
            return
        await uow.audit.append(
            AuditEntry("trade.refused_unsettled", user_id, user_id, surface,
                       {"order": exclude, "unsettled": blocking.id, "account": kind.value})
        )  # fmt: skip
        await uow.commit()
        raise OrderUnsettled("an order on this account is not settled", order=blocking.id[:8])

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
        magic = order_magic(order.id)
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
                                    tp=p.get("tp"), client_id=order.id, magic=magic)
            ]  # fmt: skip
        async with market_errors():
            open_ = {p.ticket: p for p in await gw.positions()}
        requests = [
            replace(OrderRequest.close(open_[t].symbol, t, order.params.get("volume"), client_id=order.id), magic=magic)
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
        except NOT_SENT as exc:
            if retcodes:  # an earlier request of this order went out: its outcome is known, the rest's not
                return await self._unknown(uow, gw, order, surface, exc)
            await self._finish(
                uow, order, OrderStatus.FAILED, None, {"error": exc.code, "retcodes": retcodes}, surface
            )
            async with market_errors():
                raise
        except GatewayError as exc:  # timeout, connection lost mid-call, a reply that makes no sense
            return await self._unknown(uow, gw, order, surface, exc)
        ok = bool(retcodes) and all(r in RETCODE_OK for r in retcodes)
        status = OrderStatus.DONE if ok else (OrderStatus.REJECTED if not any(r in RETCODE_OK for r in retcodes)
                                              else OrderStatus.DONE)  # fmt: skip
        final = await self._finish(
            uow, order, status, retcodes[-1] if retcodes else None,
            {"retcodes": retcodes, "price": price, "volume": volume}, surface,
        )  # fmt: skip
        return Execution(final, tuple(retcodes), ok, price, volume)

    async def _unknown(
        self, uow: UnitOfWork, gw: TradingGateway, order: Order, surface: Surface, exc: GatewayError
    ) -> Execution:
        """The request may have reached the terminal but no answer came: the order stays SENDING.

        A demo account answers for certain at once (its terminal calls are database transactions: the fill
        is stored or it never happened), so it is settled here; a live one is left to the reconciler."""
        await uow.rollback()
        await uow.trading.mark_unknown(order.id, exc.code)
        await uow.audit.append(
            AuditEntry("trade.outcome_unknown", order.user_id, order.user_id, surface,
                       {"order": order.id, "error": exc.code, "account": order.account_kind.value})
        )  # fmt: skip
        await uow.commit()
        log.warning("order %s: no answer from the gateway (%s); left for reconciliation", order.id, exc.code)
        if order.account_kind is AccountKind.DEMO:
            try:
                settled = await self.reconcile_with(uow, gw, order, surface, conclusive=True)
            except GatewayError:
                settled = None
            if settled is not None:
                o = settled.order
                retcodes = (o.retcode,) if o.retcode else ()
                return Execution(o, retcodes, o.status is OrderStatus.DONE, settled.price, settled.volume)
        raise OutcomeUnknown("no answer during order_send", order=order.id[:8]) from exc

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

    # ---- reconciliation ---------------------------------------------------------------------------
    async def order_gateway(self, uow: UnitOfWork, order: Order) -> TradingGateway | None:
        """The gateway of the account an order went to, whatever the user's plan is now; None when that
        account is no longer linked (the order waits until it is linked again)."""
        if order.account_kind is AccountKind.DEMO:
            return self.hub.demo_gateway(order.login)
        found = await uow.trading.account(order.user_id, AccountKind.LIVE)
        if found is None or found[1] is None or found[0].login != order.login:
            return None
        account, token = found
        return await self.hub.live_gateway(order.user_id, account.login, self._box.open(token), account.server)

    async def find_in_terminal(self, gw: TradingGateway, order: Order) -> Settlement | None:
        """The order's fill (or, for a modification, its effect) in the terminal; None when there is no trace."""
        now = self._now()
        claimed = order.updated_at or order.created_at
        start = now - max(utcnow() - claimed, timedelta(0)) - LOOKBACK
        positions = await gw.positions()
        deals = [] if order.kind is OrderKind.MODIFY else await gw.history_deals(start, now + timedelta(seconds=1))
        return find_fill(order, positions, deals)

    async def reconcile_with(
        self, uow: UnitOfWork, gw: TradingGateway, order: Order, surface: Surface, *, conclusive: bool,
        announce: Announce | None = None,
    ) -> Settlement | None:  # fmt: skip
        """Look the order up in the terminal and settle it: DONE with the real fill when found; REJECTED when
        not found and ``conclusive`` (no later fill is possible). Call it holding the account's lock.
        Returns the settlement, or None when it stays unsettled (or another process settled it first)."""
        found = await self.find_in_terminal(gw, order)
        if found is None and not conclusive:
            return None
        settlement = found or Settlement(order, reason="no_trace")
        return await self.settle(uow, settlement, surface, announce)

    async def settle(
        self, uow: UnitOfWork, s: Settlement, surface: Surface, announce: Announce | None = None
    ) -> Settlement | None:
        """One committed transition SENDING -> DONE/REJECTED, its audit entry and the user's notice, in one
        transaction; None when the order was settled already (exactly once, however many reconcilers race)."""
        order = s.order
        done = s.reason == ""
        status = OrderStatus.DONE if done else OrderStatus.REJECTED
        retcode = 10009 if done else None  # TRADE_RETCODE_DONE: the fill is in the terminal's history
        result = {"reconciled": True, "price": s.price, "volume": s.volume, "ticket": s.ticket, "reason": s.reason}
        moved = await uow.trading.transition(
            order.id, order.user_id, OrderStatus.SENDING, status, utcnow(), retcode=retcode, result=result
        )
        if not moved:
            await uow.rollback()
            return None
        await uow.audit.append(
            AuditEntry("trade.reconciled", None, order.user_id, surface,
                       {"order": order.id, "kind": order.kind.value, "symbol": order.symbol,
                        "account": order.account_kind.value, "status": status.value, **result})
        )  # fmt: skip
        final = await uow.trading.order(order.id)
        assert final is not None
        settled = replace(s, order=final)
        if announce is not None:
            await announce(uow, settled)
        await uow.commit()
        return settled


def _repeated(order: Order) -> Execution:
    return Execution(order, (order.retcode,) if order.retcode else (), order.status is OrderStatus.DONE,
                     order.result.get("price"), order.result.get("volume"), repeated=True)  # fmt: skip


def _check_sides(side: Side, price: float, sl: float | None, tp: float | None) -> None:
    below, above = (sl, tp) if side is Side.BUY else (tp, sl)
    if below is not None and below >= price:
        raise StopsWrongSide("wrong side", field="sl" if side is Side.BUY else "tp", side=side.value)
    if above is not None and above <= price:
        raise StopsWrongSide("wrong side", field="tp" if side is Side.BUY else "sl", side=side.value)


def _terminal_now(hub: MarketHub) -> datetime:
    return datetime.fromtimestamp(hub.terminal.now_ms() / 1000, UTC)


__all__ = ["TradingService", "round_volume", "Retcode"]
