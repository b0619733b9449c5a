"""/ai, /agents and /signals over the Bot API on both stacks, and the runner's notifications:
tier gating (two agents and a daily quota on Free, all agents on Pro), en/ru/es, the watchlist with
owner-checked buttons, real-time signals for Pro and the daily digest for Free."""

from __future__ import annotations

import pytest
from sqlalchemy import update

from bot.app import create_app
from bot.notify import DirectNotifier
from bot.settings import Settings
from domain.agents.consensus import AgentStats
from domain.db.models import UserRow
from domain.db.uow import UnitOfWork
from domain.market.clock import ManualClock
from domain.market.models import Timeframe
from tests.bot.market.conftest import START
from tests.fakes.telegram import Call
from tests.harness import Harness

ALL_AGENTS = ("Trend", "Mean reversion", "Momentum", "Breakout", "Learner")


async def _tier(harness: Harness, user: int, tier: str) -> None:
    await harness.send("/start", user=user)
    async with harness.app.sessionmaker() as s:
        await s.execute(update(UserRow).where(UserRow.id == user).values(tier=tier))
        await s.commit()
    harness.app.users.forget(user)


async def _watchlist(harness: Harness, user: int) -> list[str]:
    async with UnitOfWork(harness.app.sessionmaker) as uow:
        return await uow.agents.subscriptions(user)


def _button(call: Call, text: str) -> str:
    data = next(d for t, d in call.buttons if text in t)
    assert data is not None
    return data


async def test_ai_pro_sees_every_agent_with_rationale_consensus_and_chart(harness: Harness, clock: ManualClock) -> None:
    await _tier(harness, 1001, "pro")
    calls = await harness.send("/ai eurusd")
    text = calls[-1].text
    assert "AI analysis · EURUSD H1" in text and "Bar of 2026-11-18 09:00 (closed)" in text
    for name in ALL_AGENTS:
        assert f"<b>{name}</b>:" in text
    assert "weight 0.00 · hit rate 50%" in text  # no track record yet: every agent is a coin
    assert "Risk</b> · regime" in text and "percentile" in text
    assert "Consensus:" in text and "{" not in text  # every rationale template was filled
    assert "🔒" not in text and "AI analyses today: 1 / 200" in text
    assert calls[-1].buttons[0] == ("📈 Chart", "ch:EURUSD:H1")
    follow = _button(calls[-1], "Follow signals")
    pressed = await harness.press(follow, message_id=calls[-1].params.get("message_id", 1))
    assert await _watchlist(harness, 1001) == ["EURUSD"]
    edit = next(c for c in pressed if c.method == "editMessageReplyMarkup")
    assert any("Stop signals" in t for t, _ in edit.buttons)
    assert "Following EURUSD" in next(c for c in pressed if c.method == "answerCallbackQuery").params["text"]
    h4 = await harness.send("/ai XAUUSD h4")
    assert "AI analysis · XAUUSD H4" in h4[-1].text


async def test_ai_free_sees_two_agents_and_the_daily_quota_runs_out(harness: Harness, clock: ManualClock) -> None:
    for n in range(1, 4):
        text = (await harness.send("/ai EURUSD"))[-1].text
        assert "<b>Trend</b>:" in text and "<b>Momentum</b>:" in text
        assert "<b>Learner</b>:" not in text and "<b>Breakout</b>:" not in text
        assert "shows 2 of 5 agents" in text and "Mean reversion, Breakout, Learner" in text and "/premium" in text
        assert f"AI analyses today: {n} / 3" in text
    over = (await harness.send("/ai EURUSD"))[-1].text
    assert "You've used all your AI analyses for today (daily limit: 3)" in over and "/premium" in over and "AI-QUOTA" in over
    ru = (await harness.send("/ai GBPUSD", lang="ru"))[-1].text
    assert "AI-QUOTA" in ru and "/premium" in ru and "You've used" not in ru


async def test_ai_usage_bad_timeframe_and_unknown_symbol(harness: Harness, clock: ManualClock) -> None:
    assert "Usage: <code>/ai SYMBOL [TIMEFRAME]</code>" in (await harness.send("/ai"))[-1].text
    assert "Usage:" in (await harness.send("/ai EURUSD H7"))[-1].text
    unknown = (await harness.send("/ai EURUSDD"))[-1].text
    assert "I don't know the symbol EURUSDD" in unknown and "EURUSD" in unknown
    # none of these used an analysis
    assert "AI analyses today: 1 / 3" in (await harness.send("/ai EURUSD"))[-1].text


async def test_ai_in_russian_and_spanish(harness: Harness, clock: ManualClock) -> None:
    await _tier(harness, 1001, "pro")
    ru = (await harness.send("/ai EURUSD", lang="ru"))[-1]
    assert "ИИ-анализ · EURUSD H1" in ru.text and "Консенсус" in ru.text and "Тренд" in ru.text
    assert "weight" not in ru.text and "Consensus" not in ru.text and "{" not in ru.text
    assert ru.buttons[0][0] == "📈 График"
    es = (await harness.send("/ai EURUSD", lang="es"))[-1]
    assert "Análisis de IA · EURUSD H1" in es.text and "Consenso" in es.text and "Tendencia" in es.text
    assert "weight" not in es.text and "{" not in es.text
    roster = (await harness.send("/agents", user=1002, lang="es"))[-1].text
    assert "Los agentes" in roster and "🔒" in roster


async def test_agents_roster_marks_locked_agents_for_free_and_none_for_pro(harness: Harness, clock: ManualClock) -> None:
    free = (await harness.send("/agents"))[-1].text
    assert "<b>Trend</b>" in free and "<b>Momentum</b>" in free and "EURUSD H1: hit rate —" in free
    for name in ("Mean reversion", "Breakout", "Learner"):
        assert f"🔒 <b>{name}</b> — unlocks with Pro" in free
    await _tier(harness, 1003, "pro")
    async with UnitOfWork(harness.app.sessionmaker) as uow:
        await uow.agents.put(AgentStats("trend", "EURUSD", "H1", 2.0, 2.0, 0, 0, 1794900000))
        await uow.agents.put(AgentStats("trend", "EURUSD", "H1", 6.0, 2.0, 4, 0, 1794990000))
        await uow.commit()
    pro = (await harness.send("/agents", user=1003))[-1].text
    assert "🔒" not in pro
    for name in ALL_AGENTS:
        assert f"<b>{name}</b>" in pro
    assert "EURUSD H1: hit rate 100% (4/4) · weight 1.10 · 7 d: ▲ +1.10, 2 resolved" in pro
    assert "Volatility regime now:" in pro


async def test_signals_follow_unfollow_with_owner_checks(harness: Harness, clock: ManualClock) -> None:
    listed = (await harness.send("/signals EURUSD"))[-1]
    assert "Consensus signals · EURUSD" in listed.text and "No signals yet" in listed.text
    assert "Your watchlist (0 / 5): empty" in listed.text
    follow = _button(listed, "Follow EURUSD")
    # someone else pressing Ann's button changes nothing
    forged = await harness.press(follow, user=2002)
    assert "You don't have access" in forged[-1].params.get("text", "") + forged[-1].text
    assert await _watchlist(harness, 2002) == [] and await _watchlist(harness, 1001) == []
    junk = await harness.press("sg:follow:EURUSD:notanumber:1001")
    assert await _watchlist(harness, 1001) == [] and junk
    shown = await harness.press(follow)
    edit = next(c for c in shown if c.method == "editMessageText")
    assert "Your watchlist (1 / 5): EURUSD" in edit.text
    assert await _watchlist(harness, 1001) == ["EURUSD"]
    status = (await harness.send("/status"))[-1].text
    assert "Symbols on watch: 1 / 5" in status
    everything = (await harness.send("/signals"))[-1]
    drop = _button(everything, "Unfollow EURUSD")
    assert (await harness.press(drop, user=2002)) and await _watchlist(harness, 1001) == ["EURUSD"]
    after = await harness.press(drop)
    assert "Your watchlist (0 / 5): empty" in next(c for c in after if c.method == "editMessageText").text
    assert await _watchlist(harness, 1001) == []
    unknown = (await harness.send("/signals NOPE1"))[-1].text
    assert "I don't know the symbol NOPE1" in unknown


async def test_runner_notifies_pro_in_real_time_and_free_by_daily_digest(harness: Harness, clock: ManualClock) -> None:
    pro, free, quiet = 2001, 2002, 2003
    await _tier(harness, pro, "pro")
    for user in (pro, free, quiet):
        lang = "ru" if user == free else "en"
        listed = (await harness.send("/signals EURUSD", user=user, lang=lang))[-1]
        await harness.press(_button(listed, "EURUSD"), user=user, lang=lang)
    async with harness.app.sessionmaker() as s:  # the quiet user switched signal digests off in /config
        await s.execute(update(UserRow).where(UserRow.id == quiet).values(notifications={"digest": False}))
        await s.commit()
    harness.app.users.forget(quiet)
    async with UnitOfWork(harness.app.sessionmaker) as uow:  # agents with a record, so the consensus can call
        for agent in ("trend", "reversion", "momentum", "breakout", "learner"):
            await uow.agents.put(AgentStats(agent, "EURUSD", "H1", 30.0, 10.0, 28, 8, 0))
        await uow.commit()
    harness.app.notifier = DirectNotifier(harness.bot)
    runner = harness.app.agent_runner
    before = len(harness.telegram.calls)
    await runner.run_once()
    clock.advance(3600)
    await runner.run_once()
    sent = [c for c in harness.telegram.calls[before:] if c.method == "sendMessage"]
    to = {user: [c for c in sent if int(c.params["chat_id"]) == user] for user in (pro, free, quiet)}
    realtime = [c for c in to[pro] if "New consensus signal: EURUSD H1" in c.text]
    assert len(realtime) == 1 and "Backed by:" in realtime[0].text and "confidence" in realtime[0].text
    assert realtime[0].buttons[0] == ("📈 Chart", "ch:EURUSD:H1")
    assert not any("digest" in c.text for c in to[pro])
    assert len(to[free]) == 1 and "Ежедневная сводка" in to[free][0].text and "EURUSD H1" in to[free][0].text
    assert to[quiet] == []
    # later the same day: more bars, no second digest
    mark = len(harness.telegram.calls)
    clock.advance(3 * 3600)
    await runner.run_once()
    later = [c for c in harness.telegram.calls[mark:] if c.method == "sendMessage"]
    assert not [c for c in later if int(c.params["chat_id"]) == free]
    # the next local day brings the next digest
    clock.advance(24 * 3600)
    await runner.run_once()
    nextday = [c for c in harness.telegram.calls[mark:] if c.method == "sendMessage" and int(c.params["chat_id"]) == free]
    assert len(nextday) == 1 and "Ежедневная сводка" in nextday[0].text
    async with UnitOfWork(harness.app.sessionmaker) as uow:
        assert await uow.agents.last_digest_day(free) == "2026-11-19"


async def test_signals_pages_and_outcomes(harness: Harness, clock: ManualClock) -> None:
    t0 = int(START.timestamp()) - 40 * 3600
    async with UnitOfWork(harness.app.sessionmaker) as uow:
        for i in range(20):
            await uow.agents.add_signal("consensus", "EURUSD" if i % 2 else "GBPUSD", "H1", "buy" if i % 3 else "sell",
                                        t0 + i * 3600, 1.1, 0.001, 5, 0.6)  # fmt: skip
        first = (await uow.agents.recent_signals("EURUSD", "H1", 1))[0]
        await uow.agents.resolve_signal(first.id, True, 0.0012, 1.2, first.time + 5 * 3600)
        await uow.commit()
    page1 = (await harness.send("/signals"))[-1]
    assert "Page 1 of 3 · 20 signals" in page1.text and page1.text.count("· <b>") == 8
    assert "✅ hit · moved +0.00120 (+1.20 ATR)" in page1.text
    older = _button(page1, "Older")
    page2 = next(c for c in await harness.press(older) if c.method == "editMessageText")
    assert "Page 2 of 3" in page2.text and any("Newer" in t for t, _ in page2.buttons)
    only = (await harness.send("/signals eurusd"))[-1].text
    assert "Consensus signals · EURUSD" in only and "GBPUSD" not in only and "Page 1 of 2 · 10 signals" in only


async def test_learned_weights_survive_a_restart_of_the_app(harness: Harness, clock: ManualClock, stack: Settings) -> None:
    runner = harness.app.agent_runner
    await runner.run_once()
    for _ in range(15):
        clock.advance(3600)
        await runner.run_once()
    async with UnitOfWork(harness.app.sessionmaker) as uow:
        learned = {s.agent: s for s in await uow.agents.list_for("EURUSD", "H1")}
    assert any(s.hits + s.misses > 0 for s in learned.values())  # signals resolved and the records moved
    again = await create_app(stack)  # a new process on the same database
    try:
        again.market.hub.use_clock(clock)
        async with UnitOfWork(again.sessionmaker) as uow:
            decision = await again.agents.consensus(uow, "EURUSD", Timeframe.H1)
    finally:
        await again.close()
    for wv in decision.votes:
        stats = learned.get(wv.vote.agent)
        assert wv.hit_rate == pytest.approx(stats.mean if stats else 0.5)
        assert wv.weight == pytest.approx(stats.weight if stats else 0.0)
    assert any(wv.hit_rate != 0.5 for wv in decision.votes)
