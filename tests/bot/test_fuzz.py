"""Properties of every command and every button, fed hostile input through the real Dispatcher.

Hypothesis writes the input: each command's arguments in the shape the command reads, every slot
drawn from values that broke bots before (HTML, huge and exotic numbers, other users' ids) or
arbitrary text; and the callback data of every ``CallbackData`` factory with each field forged.
Whatever it sends, the bot:

- never answers with a BUG- code or stores one (bad input is a localized input error),
- never sends text Telegram would refuse to parse (the fake Bot API refuses it as Telegram does),
- never changes another user's data (their rows in every user table, their demo account, their outbox).

One harness per stack serves every example of the module: the state the attacker builds up (open
dialogs, half-filled forms) is part of what is explored. ``FUZZ_EXAMPLES`` sets examples per shape.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import pkgutil
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiogram.filters.callback_data import CallbackData
from hypothesis import HealthCheck, given, settings, strategies as st
from sqlalchemy import select

from bot.registry import MENU_PREFIX
from bot.settings import Settings
from bot.views.support import SupportCB
from domain.db.models import AlertRow, Base, ErrorEventRow, OrderRow, TicketRow, TradingAccountRow
from domain.db.uow import UnitOfWork
from domain.market.clock import ManualClock
from handlers import default_registry
from tests.bot.market.conftest import Unlimited
from tests.conftest import TEMPLATE_DB, _admin, _with_db, require
from tests.fakes.telegram import Call, FakeTelegram
from tests.harness import Harness, build_harness
from tests.servers import Server, postgres_missing, redis_missing

ATTACKER, VICTIM = 1001, 1002
START = datetime(2026, 11, 18, 10, 0, tzinfo=UTC)  # a Wednesday: FX markets open
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "12"))
SHOWN = ("sendmessage", "editmessagetext", "sendphoto", "senddocument", "editmessagecaption", "answercallbackquery")
ROOT = Path(__file__).resolve().parents[2]

COMMANDS = sorted(c.name for c in default_registry()) + ["paysupport", "terms", "nosuch"]
NUMBERS = [
    "0.1", "1", "0", "-1", "1.5", "1e308", "-1e308", "1e-300", "nan", "inf", "²", "²³", "١٢", "0x10", "1_000",
    "99999999999999999999999", "9223372036854775808", "-9223372036854775809", "1%", "1e308%", "<b>", "",
]  # fmt: skip
SYMBOLS = ["EURUSD", "XAUUSD", "eurusd", "FOO", "EUR<b>USD", "<i>", "&", "&nbsp;", "A" * 40, "EURUSD.", "\u202e"]
WORDS = [
    "<b>", "</i>", "<i>=2", "a<b>c</b>", "sl=1.1", "tp=<b>", "sl=nan", "tp=1e308", "above", "below", "cross",
    "move", ">", "<", "buy", "sell", "all", "del", "add", "pause", "on", "off", "demo", "live", "ru", "es", "en",
    "UTC", "Mars/Olympus", "max_positions", "max_volume", "max_daily_loss", "H1", "D1", "X9", "60m",
    "99999999999999999999999d", "-5m", "@everyone", "\x00", "ref_", "ref_x<b>", "day", "week", "year",
]  # fmt: skip
# What each command's arguments look like; every slot is filled with hostile values.
SHAPES = [
    "/trade {side} {symbol} {number} {word} {word}", "/trade {side} {symbol} {number} sl={number} tp={number}",
    "/close {any}", "/close {symbol}", "/history {any}", "/history {number}", "/alerts add {symbol} {op} {number}",
    "/alerts add {symbol} move {number}% {any}", "/alerts del {any}", "/alerts pause {any}", "/alerts {any}",
    "/price {symbol} {symbol} {any}", "/chart {symbol} {any}", "/risk {word} {number}", "/ai {symbol} {any}",
    "/signals {symbol} {any}", "/positions {any}", "/balance {any}", "/performance {any}", "/config {any}",
    "/user {any}", "/grant {any} {word} {number}", "/role {any} {word}", "/refund {any}", "/start {any}",
    "/feedback {any}", "/support {any}", "/referral {any}", "/tickets {any}", "/broadcast {any}",
    "/trading {any}", "/compliance {any}", "/premium {any}", "/billing {any}", "/agents {any}",
    "/paysupport {any}", "/terms {any}",
    "/{command} {any} {any}", "{any} {any}", "{text}",
]  # fmt: skip


def _factories() -> list[type[CallbackData]]:
    """Every CallbackData factory the bot's views and handlers declare."""
    for package in ("bot.views", "handlers", "dialogs"):
        module = importlib.import_module(package)
        for info in pkgutil.iter_modules(module.__path__):
            importlib.import_module(f"{package}.{info.name}")

    def below(cls: type) -> Iterator[type]:
        for sub in cls.__subclasses__():
            yield sub
            yield from below(sub)

    return sorted(set(below(CallbackData)), key=lambda c: c.__prefix__)  # type: ignore[attr-defined]


def _literals(factory: type[CallbackData]) -> dict[str, list[str]]:
    """Per field, the literal values the code packs into this factory (``AlertCB(action="pause")``)."""
    found: dict[str, set[str]] = {}
    call = re.compile(rf"\b{factory.__name__}\(([^()]*)\)")
    for path in [*ROOT.glob("bot/**/*.py"), *ROOT.glob("handlers/*.py"), *ROOT.glob("dialogs/*.py")]:
        for args in call.findall(path.read_text(encoding="utf-8")):
            for field, value in re.findall(r'(\w+)="([^"]*)"', args):
                found.setdefault(field, set()).add(value)
    return {field: sorted(values) for field, values in found.items()}


FACTORIES = _factories()
assert len(FACTORIES) >= 15, "CallbackData factories not found: the fuzz would test nothing"


@dataclass
class Victim:
    alert_id: int
    ticket_id: int
    order_id: str
    position: int
    login: int

    def ids(self) -> list[str]:
        return [str(self.alert_id), str(self.ticket_id), self.order_id, str(self.position), str(self.login)]


@dataclass(repr=False)
class Arena:
    runner: asyncio.Runner
    harness: Harness
    telegram: FakeTelegram
    victim: Victim

    def __repr__(self) -> str:  # Hypothesis prints the failing example's arguments
        return f"Arena({self.victim})"

    def run(self, coro: Any) -> Any:
        return self.runner.run(coro)


async def _seed_victim(h: Harness) -> Victim:
    """The victim uses the bot as a trader would: an alert, an open position, a support ticket."""
    await h.send("/start", user=VICTIM)
    async with UnitOfWork(h.app.sessionmaker) as uow:
        for uid in (VICTIM, ATTACKER):
            await uow.users.update(uid, tier="pro")
        await uow.commit()
    for uid in (VICTIM, ATTACKER):
        h.app.users.forget(uid)
    await h.send("/alerts add EURUSD > 1.5", user=VICTIM)
    preview = await h.send("/trade buy EURUSD 0.1", user=VICTIM)
    confirm = next(d for c in preview for _, d in c.buttons if d and d.startswith("tr:ok:"))
    await h.press(confirm, user=VICTIM)
    await h.send("/support", user=VICTIM)
    await h.press(SupportCB(action="new").pack(), user=VICTIM)
    await h.press(SupportCB(action="cat", value="trading").pack(), user=VICTIM)
    await h.send("My order failed", user=VICTIM)
    async with h.app.sessionmaker() as s:
        alert = (await s.execute(select(AlertRow.id).where(AlertRow.user_id == VICTIM))).scalar_one()
        ticket = (await s.execute(select(TicketRow.id).where(TicketRow.user_id == VICTIM))).scalar_one()
        order = (await s.execute(select(OrderRow.id).where(OrderRow.user_id == VICTIM))).scalar_one()
        login = (
            await s.execute(select(TradingAccountRow.login).where(TradingAccountRow.user_id == VICTIM))
        ).scalar_one()
    positions = await h.app.market.hub.demo_gateway(login).positions()
    assert len(positions) == 1, "the victim's trade did not open"
    return Victim(alert, ticket, str(order), positions[0].ticket, login)


async def _snapshot(h: Harness, v: Victim) -> dict[str, list[tuple[Any, ...]]]:
    """Every row that belongs to the victim, table by table."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    async with h.app.sessionmaker() as s:
        for table in Base.metadata.sorted_tables:
            if "user_id" in table.c:
                where = table.c.user_id == VICTIM
            elif table.name == "users":
                where = table.c.id == VICTIM
            elif table.name == "ticket_messages":
                where = table.c.ticket_id == v.ticket_id
            elif table.name.startswith("sim_") and "login" in table.c:
                where = table.c.login == v.login
            else:
                continue
            rows = (await s.execute(select(table).where(where))).all()
            out[table.name] = sorted(tuple(map(repr, r)) for r in rows)
    return out


def _settings(kind: str, request: pytest.FixtureRequest, tmp: Path) -> tuple[Settings, str | None]:
    """Settings for one stack, on a database of this module's own; with the PostgreSQL database's name."""
    if kind == "embedded":
        template: Path = request.getfixturevalue("sqlite_template")
        shutil.copy(template, tmp / "hybrid.db")
        return Settings(database_url=f"sqlite+aiosqlite:///{tmp / 'hybrid.db'}", data_dir=tmp, secret_key="t"), None
    require(postgres_missing() or redis_missing())
    pg: Server = request.getfixturevalue("pg_server")
    redis: Server = request.getfixturevalue("redis_server")
    name = f"fuzz_{os.getpid()}"
    asyncio.run(_admin(pg.url, f"CREATE DATABASE {name} TEMPLATE {TEMPLATE_DB}"))
    url = _with_db(pg.url, name)
    return Settings(database_url=url, redis_url=redis.url.rsplit("/", 1)[0] + "/9", data_dir=tmp, secret_key="t"), name


@pytest.fixture(scope="module", params=["embedded", pytest.param("postgres+redis", marks=pytest.mark.integration)])
def arena(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Arena]:
    """A harness on its own event loop (Hypothesis drives examples from synchronous tests), for the module."""
    settings_, database = _settings(request.param, request, tmp_path_factory.mktemp("fuzz"))
    runner = asyncio.Runner()

    async def build() -> Arena:
        telegram = await FakeTelegram().start()
        h = await build_harness(settings_, telegram, limiter=Unlimited())
        h.app.market.hub.use_clock(ManualClock(START))
        if h.app.redis is not None:
            await h.app.redis.flushdb()
        await h.send("/start", user=ATTACKER)
        return Arena(runner, h, telegram, await _seed_victim(h))

    arena = runner.run(build())
    try:
        yield arena
    finally:
        runner.run(arena.harness.close())
        runner.run(arena.telegram.stop())
        runner.close()
        if database is not None:
            asyncio.run(_admin(request.getfixturevalue("pg_server").url, f"DROP DATABASE {database} WITH (FORCE)"))


def _bug_codes(arena: Arena) -> list[tuple[str, str]]:
    async def read() -> list[tuple[str, str]]:
        async with arena.harness.app.sessionmaker() as s:
            query = select(ErrorEventRow.code, ErrorEventRow.context).where(ErrorEventRow.code.like("BUG%"))
            return [(code, context) for code, context in await s.execute(query)]

    return arena.run(read())


def _attack(arena: Arena, sent: str, send: Any) -> None:
    """Send one hostile input as the attacker and check every property."""
    before = arena.run(_snapshot(arena.harness, arena.victim))
    refused = len(arena.telegram.refused)
    calls: list[Call] = arena.run(send)
    for call in calls:
        if call.method.lower() in SHOWN:
            assert "BUG-" not in call.text, f"{sent!r} answered with a bug code: {call.text!r}"
    unparsed = [c.text for c in arena.telegram.refused[refused:]]
    assert unparsed == [], f"{sent!r}: Telegram refused {unparsed!r} (can't parse entities)"
    assert _bug_codes(arena) == [], f"{sent!r} raised"
    assert arena.run(_snapshot(arena.harness, arena.victim)) == before, f"{sent!r} changed the victim's data"


FUZZ = settings(
    max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)  # fmt: skip


@pytest.mark.parametrize("shape", SHAPES)
@FUZZ
@given(data=st.data())
def test_any_command_text_gets_a_clean_answer_and_touches_nobody_else(
    arena: Arena, shape: str, data: st.DataObject
) -> None:
    theirs = arena.victim.ids()
    slots = {
        "number": st.sampled_from(NUMBERS + theirs),
        "symbol": st.sampled_from(SYMBOLS),
        "word": st.sampled_from(WORDS),
        "side": st.sampled_from(["buy", "sell", "BUY", "<b>"]),
        "op": st.sampled_from([">", "<", "above", "below", "cross", "&", "<b>"]),
        "command": st.sampled_from(COMMANDS),
        "any": st.one_of(st.sampled_from(NUMBERS + SYMBOLS + WORDS + theirs), st.text(max_size=16)),
        "text": st.text(max_size=200),
    }
    names = re.findall(r"{(\w+)}", shape)
    text = shape.format(**{name: data.draw(slots[name], label=name) for name in names})
    _attack(arena, text, arena.harness.send(text, user=ATTACKER))


@pytest.mark.parametrize("factory", FACTORIES, ids=lambda f: f.__prefix__)
@FUZZ
@given(data=st.data())
def test_any_button_data_gets_a_clean_answer_and_touches_nobody_else(
    arena: Arena, factory: type[CallbackData], data: st.DataObject
) -> None:
    known = _literals(factory)
    worst = ["99999999999999999999999", "-1", "0", "²", "1e308", "nan", "<b>", "", "x" * 30, *arena.victim.ids()]
    fields = []
    for field in factory.model_fields:
        real = st.sampled_from(known[field]) if known.get(field) else st.nothing()
        fields.append(data.draw(st.one_of(real, real, st.sampled_from(worst), st.text(max_size=8)), label=field))
    payload = ":".join([factory.__prefix__, *fields])  # type: ignore[attr-defined]
    if len(payload.encode()) > 64:  # Telegram never delivers more
        payload = payload.encode()[:64].decode(errors="ignore")
    _attack(arena, payload, arena.harness.press(payload, user=ATTACKER, message_id=100))


@FUZZ
@given(data=st.one_of(
    st.builds(lambda i, w: f"{i}\x1d{w}", st.text(max_size=10), st.sampled_from(
        ["watchlist", "agents", "portfolio", "alerts", "settings", "refresh", "close", "back", "x"])),
    st.builds(lambda p, x: f"{p}:{x}", st.sampled_from([MENU_PREFIX, "plans"]), st.text(max_size=20)),
    st.text(min_size=1, max_size=64),
).filter(lambda d: 0 < len(d.encode()) <= 64))  # fmt: skip
def test_any_other_button_data_gets_a_clean_answer(arena: Arena, data: str) -> None:
    _attack(arena, data, arena.harness.press(data, user=ATTACKER, message_id=100))
