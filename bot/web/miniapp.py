"""The read-only Telegram Mini App: pages under ``/app/``, their JSON under ``/api/``, live ticks on ``/app/ws``.

* Pages: one HTML shell (``static/index.html``) for ``/app/`` (dashboard),
  ``/app/chart`` and ``/app/agents``; the script (``static/app.js``) draws the
  charts with TradingView's lightweight-charts, vendored under
  ``static/vendor/`` (pinned by hash, see ``vendor.json``). Nothing is loaded
  from another origin.
* Every page's JSON says ``simulated``: true when the prices come from the
  simulated terminal (``MT5_BACKEND=sim``), and the page marks them so.
* Every ``/api/`` request carries ``Authorization: tma <initData>`` (opened from
  a WebApp button) or ``Authorization: link <token>`` (a signed plain link); see
  :mod:`bot.web.auth`. The user id comes only from that proof, so a user can
  only ever read their own data. No proof → 401; no web app in the plan → 403.
* ``/app/ws``: the first message authenticates (``{"auth": "tma …"}``), then
  ``{"watch": ["EURUSD"]}`` picks the symbols. One listener on the tick bus
  fans ticks out to the connections watching a symbol: each tick is encoded
  once into a WebSocket frame and written to every page's socket in one pass;
  a page whose socket has not taken what it was given holds the latest frame
  per symbol in a slot (never a queue), so a slow browser skips to the newest
  price and never slows the feed or the other pages.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import math
import struct
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from aiohttp import WSMsgType, web

from bot.views.webapp import labels, locked_message, not_a_user, unauthorized
from bot.web.auth import Unauthorized, WebAuth, WebUser
from domain.analytics.metrics import Period, drawdown_pct
from domain.db.agents import CONSENSUS, StoredVote
from domain.db.uow import UnitOfWork
from domain.errors import DomainError, InvalidInput
from domain.market.models import Position, Tick, Timeframe
from domain.market.tickbus import TickSource
from domain.tiers import Feature, Tier
from domain.trading.market import market_errors
from domain.trading.models import AccountKind, MarketUnavailable, NoQuote, SymbolNotFound
from domain.users import User

if TYPE_CHECKING:
    from bot.app import App

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
PAGES = ("/app/", "/app/chart", "/app/agents")
CHART_BARS = 150
MAX_BARS = 500
MAX_EQUITY_POINTS = 1500  # the curve is thinned to this many points (each bucket keeps its low and high)
MAX_SIGNALS = 200  # agent signals drawn on a chart / listed on the agents page
MAX_HISTORY = 2000  # weight updates plotted on the agents page
VOTE_BARS = 48  # bars of consensus history (every agent's vote) on the agents page
MAX_WATCH = 8  # symbols one connection may follow
SLOW_SOCKET_BYTES = 64 * 1024  # unsent bytes above which a page is slow: it gets the latest tick once it drains
SLOW_SOCKET_POLL = 0.02  # seconds between checks of a slow page's socket
WS_AUTH_TIMEOUT = 10.0
REWATCH_EVERY = 300.0  # keep the feed polling the symbols open pages follow
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'self'; connect-src 'self'; img-src 'self' data:; object-src 'none'; "
    "base-uri 'none'",
}


MINIAPP: web.AppKey[MiniApp] = web.AppKey("miniapp")


class ApiError(Exception):
    def __init__(self, status: int, error: str, message: str | None = None, **extra: Any) -> None:
        super().__init__(error)
        self.status, self.error, self.message, self.extra = status, error, message, extra

    def response(self) -> web.Response:
        body: dict[str, Any] = {"error": self.error, **self.extra}
        if self.message is not None:
            body["message"] = self.message
        return web.json_response(body, status=self.status, headers={"Cache-Control": "no-store"})


@dataclasses.dataclass(frozen=True, slots=True)
class Viewer:
    """The verified web user, their stored account and plan."""

    who: WebUser
    user: User
    tier: Tier


# ---- live ticks --------------------------------------------------------------------------------------


class Socket(Protocol):
    """Where a connection's frames go: the page's transport (``asyncio.Transport`` has exactly these)."""

    def write(self, data: bytes) -> None: ...

    def get_write_buffer_size(self) -> int: ...

    def is_closing(self) -> bool: ...


def ws_frame(text: str) -> bytes:
    """One final, unmasked WebSocket text frame (RFC 6455 §5.2): what a server sends, the same bytes for every page."""
    payload = text.encode()
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    if n < 65_536:
        return struct.pack("!BBH", 0x81, 126, n) + payload
    return struct.pack("!BBQ", 0x81, 127, n) + payload


class Connection:
    """One open page: its socket, the latest frame per symbol it could not take yet, and the task that drains those.

    A tick is written straight to the socket when nothing is waiting and the
    socket has taken what it was given; otherwise it replaces the symbol's slot
    (never a queue) and :meth:`pump` sends the slots once the socket drains.
    """

    __slots__ = ("symbols", "_socket", "_slot", "_wake", "sent", "skipped", "closed")

    def __init__(self, socket: Socket) -> None:
        self.symbols: frozenset[str] = frozenset()
        self._socket = socket
        self._slot: dict[str, bytes] = {}
        self._wake = asyncio.Event()
        self.sent = 0
        self.skipped = 0  # ticks replaced by a newer one before the browser took them
        self.closed = False

    def deliver(self, symbol: str, frame: bytes, skipped: int = 0) -> None:
        """Called by the fan-out: O(1), never waits."""
        self.skipped += skipped
        if self.closed:
            return
        slot = self._slot
        if not slot and self._socket.get_write_buffer_size() < SLOW_SOCKET_BYTES:
            self._write(frame)
            return
        if symbol in slot:
            self.skipped += 1
        slot[symbol] = frame
        self._wake.set()

    def _write(self, frame: bytes) -> None:
        if self._socket.is_closing():
            self.closed = True
            return
        self._socket.write(frame)
        self.sent += 1

    def close(self) -> None:
        self.closed = True
        self._wake.set()

    async def pump(self) -> None:
        """Send the slots of a slow page whenever its socket has room again (the latest tick per symbol)."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._slot and not self.closed:
                if self._socket.get_write_buffer_size() >= SLOW_SOCKET_BYTES:
                    await asyncio.sleep(SLOW_SOCKET_POLL)
                    continue
                frames, self._slot = self._slot, {}
                for frame in frames.values():
                    self._write(frame)
            if self.closed:
                return


def encode_ticks(ticks: Sequence[Tick]) -> str:
    """The message for ticks (encoded once per tick, whatever the number of pages watching)."""
    payload = [{"s": t.symbol, "t": t.time_msc, "b": t.bid, "a": t.ask} for t in ticks]
    return json.dumps({"type": "ticks", "ticks": payload}, separators=(",", ":"))


class LiveTicks:
    """One tick-bus listener for every open page, indexed by symbol.

    The listener only records the latest tick per symbol and schedules one
    flush on the event loop; the flush encodes each symbol's tick once into a
    ready WebSocket frame and hands the same bytes to every page watching it
    (a plain write each, no task switch, no await per page).
    """

    def __init__(self, source: TickSource, keep_watching: Callable[[Iterable[str]], None]) -> None:
        self._source = source
        self._keep_watching = keep_watching
        self._watchers: dict[str, set[Connection]] = {}
        self._pending: dict[str, tuple[Tick, int]] = {}
        self._flush_at: asyncio.Handle | None = None
        self._remove: Callable[[], None] | None = None
        self._task: asyncio.Task[None] | None = None
        self.connections = 0

    def _on_tick(self, tick: Tick) -> None:
        symbol = tick.symbol
        if symbol not in self._watchers:
            return
        pending = self._pending.get(symbol)
        self._pending[symbol] = (tick, pending[1] + 1 if pending is not None else 1)
        if self._flush_at is None:
            self._flush_at = asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_at = None
        pending, self._pending = self._pending, {}
        for symbol, (tick, count) in pending.items():
            watchers = self._watchers.get(symbol)
            if not watchers:
                continue
            frame = ws_frame(encode_ticks((tick,)))
            for conn in watchers:
                try:
                    conn.deliver(symbol, frame, count - 1)
                except Exception:  # one broken socket never stops the others
                    log.warning("web view: a tick write failed", exc_info=True)
                    conn.close()

    def open(self, socket: Socket) -> Connection:
        if self._remove is None:
            self._remove = self._source.add_listener(self._on_tick)
            start = getattr(self._source, "start", None)  # the Redis tick stream: follow it even without workers here
            if start is not None:
                start()
            self._task = asyncio.create_task(self._rewatch(), name="webapp-rewatch")
        self.connections += 1
        return Connection(socket)

    def watch(self, conn: Connection, symbols: Iterable[str]) -> None:
        self._unindex(conn)
        conn.symbols = frozenset(symbols)
        for symbol in conn.symbols:
            self._watchers.setdefault(symbol, set()).add(conn)
        self._keep_watching(conn.symbols)

    def drop(self, conn: Connection) -> None:
        self._unindex(conn)
        conn.close()
        self.connections -= 1

    def _unindex(self, conn: Connection) -> None:
        for symbol in conn.symbols:
            watchers = self._watchers.get(symbol)
            if watchers is not None:
                watchers.discard(conn)
                if not watchers:
                    del self._watchers[symbol]

    @property
    def symbols(self) -> list[str]:
        return sorted(self._watchers)

    async def _rewatch(self) -> None:
        while True:
            await asyncio.sleep(REWATCH_EVERY)
            if self._watchers:
                self._keep_watching(list(self._watchers))

    async def close(self) -> None:
        if self._flush_at is not None:
            self._flush_at.cancel()
            self._flush_at = None
        if self._remove is not None:
            self._remove()
            self._remove = None
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None


# ---- serialization helpers ---------------------------------------------------------------------------


def thin(points: Sequence[tuple[int, float]], limit: int = MAX_EQUITY_POINTS) -> list[tuple[int, float]]:
    """At most about ``limit`` points, keeping each bucket's lowest and highest (drawdowns stay visible)."""
    if len(points) <= limit:
        return list(points)
    arr = np.asarray(points, dtype=np.float64)
    index = thin_index(arr[:, 1], limit)
    return [(int(t), float(v)) for t, v in arr[index].tolist()]


def thin_index(values: np.ndarray, limit: int = MAX_EQUITY_POINTS) -> np.ndarray:
    """Indexes of the points :func:`thin` keeps: both ends, and each bucket's lowest and highest, in order."""
    n = len(values)
    if n <= limit:
        return np.arange(n)
    per = max(2, (n * 2) // limit)
    inner = values[1:-1]
    buckets = len(inner) // per
    body = inner[: buckets * per].reshape(buckets, per)
    base = np.arange(buckets) * per
    lo, hi = base + body.argmin(axis=1), base + body.argmax(axis=1)
    picks = np.unique(np.concatenate([lo, hi]))  # sorted by time; one index when low == high
    tail = inner[buckets * per :]
    if len(tail):
        start = buckets * per
        picks = np.unique(np.concatenate([picks, [start + int(tail.argmin()), start + int(tail.argmax())]]))
    return np.concatenate([[0], picks + 1, [n - 1]])


def _series(times: np.ndarray, values: np.ndarray) -> dict[str, list[Any]]:
    """A curve for the page, thinned before it is ever turned into Python numbers."""
    index = thin_index(values)
    return {"t": times[index].tolist(), "v": np.round(values[index], 2).tolist()}


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return int(value.timestamp())
    if isinstance(value, float):
        return round(value, 6) if math.isfinite(value) else None  # JSON has no NaN or infinity
    if hasattr(value, "value") and isinstance(getattr(value, "value"), (str, int)):  # enums
        return value.value
    return value


def _finite(value: float) -> float | None:
    return round(float(value), 6) if math.isfinite(value) else None


def weights_over_time(points: list[Any]) -> dict[str, Any]:
    """Each agent's weight after every update, on one shared time axis (a weight holds until its next update)."""
    times = sorted({p.time for p in points})
    index = {t: i for i, t in enumerate(times)}
    names = sorted({p.agent for p in points})
    series: dict[str, list[float | None]] = {name: [None] * len(times) for name in names}
    for p in points:
        series[p.agent][index[p.time]] = _finite(p.stats().weight)
    for values in series.values():
        held: float | None = None
        for i, v in enumerate(values):
            held = v if v is not None else held
            values[i] = held if held is not None else 0.0  # before its first update an agent has the prior's 0
    return {"t": times, "agents": series}


_DIRECTION = {"buy": 1, "sell": -1}


def votes_per_bar(votes: Sequence[StoredVote]) -> dict[str, Any]:
    """Each agent's vote at each recorded bar on one time axis: direction (1 buy, -1 sell, 0 flat, None when the
    agent did not vote at that bar), confidence and the weight it carried; the consensus apart."""
    times = sorted({v.time for v in votes})
    index = {t: i for i, t in enumerate(times)}
    rows: dict[str, dict[str, list[Any]]] = {}
    for v in votes:
        row = rows.setdefault(v.agent, {"d": [None] * len(times), "c": [None] * len(times), "w": [None] * len(times)})
        i = index[v.time]
        row["d"][i] = _DIRECTION.get(v.direction, 0)
        row["c"][i] = _finite(v.confidence)
        row["w"][i] = _finite(v.weight) if v.weight is not None else None
    consensus = rows.pop(CONSENSUS, {"d": [None] * len(times), "c": [None] * len(times)})
    consensus.pop("w", None)
    return {"t": times, "agents": dict(sorted(rows.items())), "consensus": consensus}


def _dumps(body: Any) -> str:
    return json.dumps(body, separators=(",", ":"), allow_nan=False, default=str)


def _json(body: Any) -> web.Response:
    return web.Response(text=_dumps(body), content_type="application/json", headers={"Cache-Control": "no-store"})


# ---- the application part ------------------------------------------------------------------------------


class MiniApp:
    def __init__(self, app: App, auth: WebAuth) -> None:
        self.app = app
        self.auth = auth
        self.live = LiveTicks(app.market.feed.bus, app.market.hub.watch)

    def register(self, web_app: web.Application) -> None:
        for path in PAGES:
            web_app.router.add_get(path, self.page)
        web_app.router.add_get("/app", self.redirect)
        web_app.router.add_static("/app/static/", STATIC, append_version=False)
        web_app.router.add_get("/app/ws", self.ws)
        web_app.router.add_get("/api/me", self._api(self.me))
        web_app.router.add_get("/api/dashboard", self._api(self.dashboard))
        web_app.router.add_get("/api/chart", self._api(self.chart))
        web_app.router.add_get("/api/agents", self._api(self.agents))
        web_app.on_cleanup.append(self._cleanup)

    async def _cleanup(self, _web_app: web.Application) -> None:
        await self.live.close()

    # -- pages --
    async def page(self, _request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "index.html", headers=PAGE_HEADERS)

    async def redirect(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/app/" + (f"?{request.query_string}" if request.query_string else ""))

    def simulated(self) -> bool:
        """Whether the prices the pages show come from the simulated terminal (the market-data backend is ``sim``)."""
        return self.app.market.hub.simulated

    # -- authentication --
    async def viewer(self, uow: UnitOfWork, credentials: str | None, languages: str = "") -> Viewer:
        try:
            who = self.auth.authenticate(credentials)
        except Unauthorized as exc:
            log.info("web view: refused credentials (%s)", exc)
            with self._locale(self._language(languages)):
                raise ApiError(401, "unauthorized", unauthorized()) from None
        user = await uow.users.get(who.id)
        if user is None:
            with self._locale(who.language):
                raise ApiError(403, "not_a_user", not_a_user())
        tier = self.app.users.tier_of(user)
        if not tier.has(Feature.WEB_APP):
            needed = self.app.tiers.required_for(min_tier=None, feature=Feature.WEB_APP)
            with self._locale(user.locale):
                raise ApiError(403, "locked", locked_message(needed.code if needed else None))
        return Viewer(who, user, tier)

    def _language(self, accept: str) -> str | None:
        """The first of the browser's languages we speak (only to word a refusal; nothing else is trusted)."""
        for part in accept.split(","):
            code = part.split(";")[0].strip().split("-")[0].lower()
            if code in self.app.i18n.available_locales:
                return code
        return None

    @contextlib.contextmanager
    def _locale(self, locale: str | None) -> Any:
        i18n = self.app.i18n
        with i18n.context(), i18n.use_locale(locale if locale in i18n.available_locales else i18n.default_locale):
            yield

    def _api(self, handler: Callable[[web.Request, UnitOfWork, Viewer], Awaitable[Any]]) -> Any:
        async def endpoint(request: web.Request) -> web.StreamResponse:
            try:
                async with UnitOfWork(self.app.sessionmaker) as uow:
                    viewer = await self.viewer(
                        uow, request.headers.get("Authorization"), request.headers.get("Accept-Language", "")
                    )
                    return _json(await handler(request, uow, viewer))
            except ApiError as exc:
                return exc.response()
            except SymbolNotFound as exc:
                suggestions = [s for s in str(exc.params.get("suggestions", "")).split(", ") if s]
                return ApiError(404, "unknown_symbol", symbol=exc.params.get("symbol", ""),
                                suggestions=suggestions).response()  # fmt: skip
            except (MarketUnavailable, NoQuote) as exc:
                return ApiError(503, "market_unavailable", code=exc.code).response()
            except InvalidInput as exc:
                return ApiError(400, "invalid", code=exc.code).response()
            except DomainError as exc:
                return ApiError(409, "refused", code=exc.code).response()
            except Exception:
                log.exception("web view: %s failed", request.path)
                return ApiError(500, "internal").response()

        return endpoint

    # -- JSON --
    async def me(self, _request: web.Request, _uow: UnitOfWork, viewer: Viewer) -> dict[str, Any]:
        with self._locale(viewer.user.locale):
            texts = labels()
        return {
            "user": {"id": viewer.user.id, "first_name": viewer.user.first_name, "tier": viewer.tier.code},
            "locale": viewer.user.locale,
            "labels": texts,
            "symbols": await self._symbols(),
            "timeframes": [tf.value for tf in Timeframe],
            "simulated": self.simulated(),
        }

    async def _symbols(self) -> list[str]:
        try:
            return await self.app.market.hub.symbol_names()
        except (MarketUnavailable, NoQuote):
            return []

    async def dashboard(self, request: web.Request, uow: UnitOfWork, viewer: Viewer) -> dict[str, Any]:
        period = Period.parse(request.query.get("period", "all"))
        if period is None:
            raise ApiError(400, "invalid", field="period")
        report = await self.app.analytics.report(uow, viewer.user.id, viewer.tier, period, tz=viewer.user.timezone)
        drawdown = drawdown_pct(report.values)
        return {
            "period": period.value,
            "simulated": self.simulated(),
            "currency": report.currency,
            "account": {"kind": report.account_kind.value, "login": report.login},
            "balance": report.balance,
            "equity_now": report.equity_now,
            "floating": report.floating,
            "metrics": _plain(report.metrics),
            "equity": _series(report.times, report.values),
            "drawdown": _series(report.times, drawdown),
            "by_symbol": _plain(report.by_symbol),
            "buy_and_hold_pct": report.buy_and_hold_pct,
            "platform_median_pct": report.platform_median_pct,
            "positions": await self._positions(report.positions),
        }

    async def _positions(self, positions: Sequence[Position]) -> list[dict[str, Any]]:
        """The report's open positions (the same gateway read, not a second one)."""
        out = []
        for p in positions:
            spec = await self.app.market.hub.resolve(p.symbol)
            move = (p.price_current - p.price_open) * (1 if p.side.value == "buy" else -1)
            # money per unit of price move: from the terminal's own figure when the price moved, else lots × contract
            per_unit = p.profit / move if abs(move) > spec.point / 2 else p.volume * spec.contract_size
            out.append({
                "ticket": p.ticket, "symbol": p.symbol, "side": p.side.value, "volume": p.volume,
                "price_open": p.price_open, "price": p.price_current, "profit": round(p.profit, 2),
                "per_unit": per_unit, "digits": spec.digits,
            })  # fmt: skip
        return out

    async def _gateway(self, uow: UnitOfWork, viewer: Viewer) -> Any:
        """The user's active trading gateway, or None for a user who never traded (no demo account is opened)."""
        profile = await uow.trading.profile(viewer.user.id)
        if profile.active is AccountKind.DEMO and await uow.trading.account(viewer.user.id, AccountKind.DEMO) is None:
            return None
        _account, gw = await self.app.market.trading.active(uow, viewer.user.id, viewer.tier)
        return gw

    async def chart(self, request: web.Request, uow: UnitOfWork, viewer: Viewer) -> dict[str, Any]:
        hub = self.app.market.hub
        spec = await hub.resolve(request.query.get("symbol", "EURUSD"))
        tf = self._timeframe(request.query.get("tf", "H1"))
        try:
            count = max(20, min(MAX_BARS, int(request.query.get("bars", CHART_BARS))))
        except ValueError:
            raise ApiError(400, "invalid", field="bars") from None
        hub.watch([spec.name])
        bars = await hub.bars(spec.name, tf, count)
        levels = await self.app.market.alerts.levels(uow, viewer.user.id, spec.name)
        trades: list[dict[str, Any]] = []
        positions: list[dict[str, Any]] = []
        gw = await self._gateway(uow, viewer)
        if gw is not None and bars:
            start = datetime.fromtimestamp(bars[0].time, UTC)
            end = datetime.fromtimestamp(bars[-1].time + tf.seconds, UTC) + timedelta(seconds=1)
            async with market_errors(spec.name):
                deals = await gw.history_deals(start, end, spec.name)
                open_positions = [p for p in await gw.positions() if p.symbol == spec.name]
            trades = [
                {"time": d.time, "side": d.side.value, "entry": d.entry, "price": d.price, "volume": d.volume,
                 "profit": round(d.profit + d.commission + d.swap, 2)}
                for d in deals if d.symbol == spec.name
            ]  # fmt: skip
            positions = [
                {"ticket": p.ticket, "side": p.side.value, "volume": p.volume, "price_open": p.price_open,
                 "sl": p.sl, "tp": p.tp, "profit": round(p.profit, 2)}
                for p in open_positions
            ]  # fmt: skip
        signals = await self._signals(uow, spec.name, tf, bars[0].time if bars else 0)
        return {
            "symbol": spec.name,
            "description": spec.description,
            "digits": spec.digits,
            "tf": tf.value,
            "tf_seconds": tf.seconds,
            "simulated": self.simulated(),
            "bars": {
                "t": [b.time for b in bars], "o": [b.open for b in bars], "h": [b.high for b in bars],
                "l": [b.low for b in bars], "c": [b.close for b in bars], "v": [b.tick_volume for b in bars],
            },  # fmt: skip
            "levels": sorted(levels),
            "trades": trades,
            "positions": positions,
            "signals": signals,
        }

    @staticmethod
    def _timeframe(raw: str) -> Timeframe:
        try:
            return Timeframe(raw.upper())
        except ValueError:
            raise ApiError(400, "invalid", field="tf") from None

    async def _signals(self, uow: UnitOfWork, symbol: str, tf: Timeframe, since: int) -> list[dict[str, Any]]:
        found = await uow.agents.recent_signals(symbol, tf.value, MAX_SIGNALS, agent=None, since=since)
        return [
            {"agent": s.agent, "direction": s.direction, "time": s.time, "entry": s.entry,
             "confidence": round(s.confidence, 4), "status": s.status}
            for s in found
        ]  # fmt: skip

    async def agents(self, request: web.Request, uow: UnitOfWork, viewer: Viewer) -> dict[str, Any]:
        spec = await self.app.market.hub.resolve(request.query.get("symbol", "EURUSD"))
        tf = self._timeframe(request.query.get("tf", "H1"))
        visible = set(self.app.agents.visible_agents(viewer.tier))
        decision = await self.app.agents.consensus(uow, spec.name, tf)
        votes = [
            {"agent": w.vote.agent, "direction": w.vote.direction.value, "confidence": _finite(w.vote.confidence),
             "weight": _finite(w.weight), "hit_rate": _finite(w.hit_rate)}
            for w in decision.votes if w.vote.agent in visible
        ]  # fmt: skip
        history = await uow.agents.history(spec.name, tf.value, limit=MAX_HISTORY)
        recorded = await uow.agents.vote_history(spec.name, tf.value, VOTE_BARS)
        return {
            "symbol": spec.name,
            "tf": tf.value,
            "simulated": self.simulated(),
            "consensus": {
                "direction": decision.direction.value, "confidence": _finite(decision.confidence),
                "agreement": _finite(decision.agreement), "time": decision.time, "vetoed": decision.vetoed,
            },  # fmt: skip
            "votes": votes,
            "history": weights_over_time([p for p in history if p.agent in visible]),
            "consensus_history": votes_per_bar([v for v in recorded if v.agent in visible | {CONSENSUS}]),
            "signals": [s for s in await self._signals(uow, spec.name, tf, 0) if s["agent"] in visible | {"consensus"}],
        }

    # -- live --
    async def ws(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(heartbeat=30.0, max_msg_size=8192, compress=False)  # tiny frames: deflate only costs CPU
        await ws.prepare(request)
        try:
            first = await asyncio.wait_for(ws.receive(), WS_AUTH_TIMEOUT)
        except TimeoutError:
            await ws.close(code=4401, message=b"unauthorized")
            return ws
        credentials = _field(first, "auth")
        try:
            async with UnitOfWork(self.app.sessionmaker) as uow:
                viewer = await self.viewer(uow, credentials if isinstance(credentials, str) else None)
        except ApiError as exc:
            await ws.close(code=4401 if exc.status == 401 else 4403, message=exc.error.encode())
            return ws
        except Exception:  # the database failing mid-check: a clean close, never an escaping handler error
            log.exception("web view: socket authentication failed")
            await ws.close(code=1011, message=b"internal")
            return ws
        transport = request.transport
        if transport is None or ws.closed:
            return ws
        conn = self.live.open(_PageSocket(ws, transport))
        pump = asyncio.create_task(conn.pump(), name=f"webapp-ws-{viewer.user.id}")
        try:
            await ws.send_str(_dumps({"type": "ready", "user": viewer.user.id}))
            async for msg in ws:
                if msg.type is not WSMsgType.TEXT:
                    continue
                wanted = _field(msg, "watch")
                if isinstance(wanted, list):
                    names, unknown = await self._resolve_all(wanted[:MAX_WATCH])
                    self.live.watch(conn, names)
                    await ws.send_str(_dumps({"type": "watching", "symbols": sorted(names), "unknown": unknown}))
        except ConnectionResetError:  # the page went away while we answered it
            log.debug("web view: a page closed mid-answer")
        finally:
            self.live.drop(conn)
            pump.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await pump
        return ws

    async def _resolve_all(self, raw: list[Any]) -> tuple[set[str], list[str]]:
        names: set[str] = set()
        unknown: list[str] = []
        for item in raw:
            if not isinstance(item, str):
                continue
            try:
                names.add((await self.app.market.hub.resolve(item)).name)
            except (SymbolNotFound, MarketUnavailable, NoQuote):
                unknown.append(item[:32])
        return names, unknown


class _PageSocket:
    """A page's WebSocket as a :class:`Socket`: frames go straight to its transport, which aiohttp's own writer
    also writes whole frames to (``compress=False``), so they never interleave mid-frame. The transport's bound
    methods are kept as attributes: the fan-out calls them for every page on every tick."""

    __slots__ = ("write", "get_write_buffer_size", "_ws", "_closing")

    def __init__(self, ws: web.WebSocketResponse, transport: Any) -> None:
        self.write: Callable[[bytes], None] = transport.write
        self.get_write_buffer_size: Callable[[], int] = transport.get_write_buffer_size
        self._ws = ws
        self._closing: Callable[[], bool] = transport.is_closing

    def is_closing(self) -> bool:
        return self._ws.closed or self._closing()


def _field(msg: Any, name: str) -> Any:
    if msg.type is not WSMsgType.TEXT:
        return None
    try:
        data = json.loads(msg.data)
    except ValueError:
        return None
    return data.get(name) if isinstance(data, dict) else None


def install(web_app: web.Application, app: App, bot_token: str) -> MiniApp:
    """Mount the Mini App on the web server (the same server as the webhooks)."""
    current, *old = app.settings.secrets()
    mini = MiniApp(app, WebAuth(bot_token, current, old_secrets=old))
    mini.register(web_app)
    web_app[MINIAPP] = mini
    return mini


__all__ = ["MINIAPP", "Connection", "LiveTicks", "MiniApp", "install", "thin"]
