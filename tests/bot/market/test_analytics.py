"""/performance as a user meets it: usage, the upgrade gate, an empty account, metrics + equity curve, languages."""

from __future__ import annotations

from domain.db.analytics import EquitySnapshot
from domain.db.uow import UnitOfWork
from domain.market.clock import ManualClock
from domain.trading.models import AccountKind
from tests.fakes.telegram import Call
from tests.harness import Harness

ANN = 1001


async def set_tier(harness: Harness, user: int, tier: str) -> None:
    await harness.send("/start", user=user)
    async with UnitOfWork(harness.app.sessionmaker) as uow:
        await uow.users.update(user, tier=tier)
        await uow.commit()
    harness.app.users.forget(user)


async def trade(harness: Harness, text: str, user: int = ANN) -> None:
    calls = await harness.send(text, user=user)
    data = next(d for c in calls for _, d in c.buttons if d and d.startswith("tr:ok:"))
    await harness.press(data, user=user)


def photo(calls: list[Call]) -> Call:
    return next(c for c in calls if c.method == "sendPhoto")


async def test_performance_needs_the_analytics_feature(harness: Harness, clock: ManualClock) -> None:
    calls = await harness.send("/performance")
    assert "Basic" in calls[-1].text and not any(c.method == "sendPhoto" for c in calls)


async def test_empty_account_gets_a_friendly_answer(harness: Harness, clock: ManualClock) -> None:
    await set_tier(harness, ANN, "basic")
    calls = await harness.send("/performance")
    assert [c.method for c in calls] == ["sendMessage"]
    assert "No trades yet" in calls[0].text and "10,000.00 USD" in calls[0].text


async def test_bad_period_shows_usage(harness: Harness, clock: ManualClock) -> None:
    await set_tier(harness, ANN, "basic")
    for text in ("/performance yesterday", "/performance week month"):
        calls = await harness.send(text)
        assert "Usage: <code>/performance [period]</code>" in calls[-1].text


async def test_metrics_and_equity_curve_after_trades(harness: Harness, clock: ManualClock) -> None:
    await set_tier(harness, ANN, "basic")
    await trade(harness, "/trade buy EURUSD 1")
    clock.advance(3600)
    await trade(harness, "/close all")
    await trade(harness, "/trade sell XAUUSD 0.1")
    calls = await harness.send("/performance week")
    shot = photo(calls)
    text = shot.text
    assert "Performance</b> · last 7 days · demo account" in text
    assert "1 trade · win rate" in text and "EURUSD" in text
    assert "1 open" in text
    assert "Buy and hold of your symbols" in text
    assert "Platform median: shown once enough traders" in text
    attached = shot.params[shot.params["photo"].removeprefix("attach://")]
    assert attached["filename"] == "equity_week.png" and attached["content"].startswith(b"\x89PNG")


async def test_performance_in_russian_and_spanish(harness: Harness, clock: ManualClock) -> None:
    for user, lang in ((ANN, "ru"), (2002, "es")):
        await harness.send("/start", user=user, lang=lang)
        await set_tier(harness, user, "basic")
        await trade(harness, "/trade buy EURUSD 1", user=user)
        await trade(harness, "/close all", user=user)
    ru = photo(await harness.send("/performance today", lang="ru")).text
    assert "Результаты</b> · сегодня" in ru and "1 сделка · доля прибыльных" in ru and "<b>По символам</b>" in ru
    es = photo(await harness.send("/performance all", user=2002, lang="es")).text
    assert "Rendimiento</b> · todo el tiempo" in es and "1 operación · tasa de acierto" in es
    usage = await harness.send("/performance ayer", user=2002, lang="es")
    assert "Uso: <code>/performance [periodo]</code>" in usage[-1].text


async def test_many_symbols_are_summarized(harness: Harness, clock: ManualClock) -> None:
    await set_tier(harness, ANN, "basic")
    for symbol in ("EURUSD", "GBPUSD", "USDJPY", "XAUUSD", "AUDUSD", "USDCAD", "EURJPY"):
        await trade(harness, f"/trade buy {symbol} 0.1")
    await trade(harness, "/close all")
    calls = await harness.send("/performance")
    text = "\n".join(c.text for c in calls)
    assert "…and 2 more" in text and any(c.method == "sendPhoto" for c in calls)


async def test_max_drawdown_money_and_percent_are_one_episode(harness: Harness, clock: ManualClock) -> None:
    await set_tier(harness, ANN, "basic")
    await trade(harness, "/trade buy EURUSD 0.01")
    await trade(harness, "/close all")
    async with UnitOfWork(harness.app.sessionmaker) as uow:
        linked = await uow.trading.account(ANN, AccountKind.DEMO)
        assert linked is not None
        login = linked[0].login
        now = clock() // 1000
        # 1000 → 500 is the deepest fall (50 %, 500 lost); 10,000 → 9,000 loses more money (1,000) but only 10 %
        equity = (1_000.0, 500.0, 10_000.0, 9_000.0, 9_500.0)
        await uow.equity.add([EquitySnapshot(ANN, "demo", login, now - 3600 * (5 - i), v, v) for i, v in enumerate(equity)])
        await uow.commit()
    text = photo(await harness.send("/performance all")).text
    assert "Max drawdown: 50.00% (500.00 USD below its peak)" in text
    assert "1,000.00 USD" not in text
    ru = photo(await harness.send("/performance all", lang="ru")).text
    assert "50.00%" in ru and "500.00 USD" in ru and "1,000.00 USD" not in ru
