"""AlertIndex against a naive reference that scans every rule on every tick."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import pytest

from domain.alerts.index import AlertIndex, cross_down_key, pct_fall_level, pct_rise_level
from domain.alerts.models import AlertFired, AlertKind, AlertRule, AlertStatus, Direction, InvalidAlertRule
from domain.market.models import Tick

UP, DOWN = Direction.UP, Direction.DOWN


@dataclass
class _State:
    rule: AlertRule
    state: str = "paused"  # armed | cooling | paused
    upper: bool = False  # CROSS: the price was on or above the level
    until: int = 0
    last_t: int | None = None
    last_p: float | None = None


@dataclass
class NaiveAlerts:
    """The semantics of domain.alerts.models, written as directly as possible."""

    rules: dict[int, _State] = field(default_factory=dict)
    last_t: dict[str, int] = field(default_factory=dict)
    last_p: dict[str, float] = field(default_factory=dict)
    history: dict[tuple[str, int], list[tuple[int, float]]] = field(default_factory=dict)

    def _ref(self, st: _State) -> float | None:
        return st.last_p if st.last_t is not None else st.rule.created_price

    def _arm(self, st: _State, ref: float | None) -> None:
        st.state = "armed"
        st.upper = ref is not None and ref >= st.rule.threshold

    def _activate(self, st: _State, ref: float | None) -> None:
        if st.rule.repeat and st.last_t is not None:
            st.state, st.until = "cooling", st.last_t + st.rule.cooldown_s * 1000
        else:
            self._arm(st, ref)

    def add(self, rule: AlertRule) -> None:
        if rule.id in self.rules:
            self.remove(rule.id)
        st = _State(rule, last_t=rule.last_triggered_msc, last_p=rule.last_price)
        if rule.kind is AlertKind.PCT_MOVE:
            self.history.setdefault((rule.symbol, rule.window_s), [])
        self.rules[rule.id] = st
        if rule.status is not AlertStatus.PAUSED:
            self._activate(st, self._ref(st))

    def remove(self, alert_id: int) -> None:
        st = self.rules.pop(alert_id)
        r = st.rule
        if r.kind is AlertKind.PCT_MOVE and not any(
            x.rule.symbol == r.symbol and x.rule.window_s == r.window_s and x.rule.kind is AlertKind.PCT_MOVE
            for x in self.rules.values()
        ):
            del self.history[(r.symbol, r.window_s)]

    def pause(self, alert_id: int) -> bool:
        st = self.rules.get(alert_id)
        if st is None or st.state == "paused":
            return False
        st.state = "paused"
        return True

    def resume(self, alert_id: int) -> bool:
        st = self.rules.get(alert_id)
        if st is None or st.state != "paused":
            return False
        price = self.last_p.get(st.rule.symbol)
        self._activate(st, price if price is not None else self._ref(st))
        return True

    def count_for_user(self, user_id: int) -> int:
        return sum(1 for st in self.rules.values() if st.rule.user_id == user_id)

    def on_tick(self, tick: Tick) -> list[tuple[int, Direction, float, int]]:
        sym, t, p = tick.symbol, tick.time_msc, tick.bid
        if t < self.last_t.get(sym, -1) or not p > 0:
            return []
        prev = self.last_p.get(sym)
        for st in self.rules.values():
            if st.rule.symbol == sym and st.state == "cooling" and st.until <= t:
                self._arm(st, prev if prev is not None else self._ref(st))
        self.last_t[sym], self.last_p[sym] = t, p
        for (s, _w), hist in self.history.items():
            if s == sym:
                hist.append((t, p))
        hits = []
        for st in self.rules.values():
            r = st.rule
            if r.symbol != sym or st.state != "armed":
                continue
            x = r.threshold
            if r.kind is AlertKind.ABOVE and p >= x:
                hits.append(((0, x, 0.0, r.id), UP, st))
            elif r.kind is AlertKind.BELOW and p <= x:
                hits.append(((1, -x, 0.0, r.id), DOWN, st))
            elif r.kind is AlertKind.CROSS and not st.upper and p >= x:
                hits.append(((0, x, 0.0, r.id), UP, st))
            elif r.kind is AlertKind.CROSS and st.upper and p < x:
                hits.append(((1, -cross_down_key(x), 0.0, r.id), DOWN, st))
            elif r.kind is AlertKind.PCT_MOVE:
                window = [q for tt, q in self.history[(sym, r.window_s)] if tt >= t - r.window_s * 1000]
                if p >= pct_rise_level(min(window), r.pct):
                    hits.append(((2, r.window_s, r.pct, r.id), UP, st))
                elif p <= pct_fall_level(max(window), r.pct):
                    hits.append(((2, r.window_s, r.pct, r.id), DOWN, st))
        hits.sort(key=lambda h: h[0])
        out = []
        for _key, direction, st in hits:
            st.last_t, st.last_p = t, p
            if st.rule.repeat:
                st.state, st.until = "cooling", t + st.rule.cooldown_s * 1000
            else:
                self.remove(st.rule.id)
            out.append((st.rule.id, direction, p, t))
        return out


def _fired(events: object) -> list[tuple[int, Direction, float, int]]:
    return [(e.rule.id, e.direction, e.price, e.time_msc) for e in events]  # type: ignore[attr-defined]


def _random_rule(rng: random.Random, rid: int, symbols: list[str], price: dict[str, float]) -> AlertRule:
    sym = rng.choice(symbols)
    p0 = price[sym]
    kind = rng.choice(list(AlertKind))
    repeat = rng.random() < 0.5
    cooldown = rng.choice((0, 1, 5, 30)) if repeat else 0
    status = AlertStatus.PAUSED if rng.random() < 0.1 else AlertStatus.ACTIVE
    user = rng.randrange(5)
    if kind is AlertKind.PCT_MOVE:
        return AlertRule(rid, user, sym, kind, pct=rng.choice((0.05, 0.1, 0.2, 0.3, 0.5)),
                         window_s=rng.choice((5, 20, 60)), repeat=repeat, cooldown_s=cooldown, status=status)
    # levels on a coarse grid so that ties, exact touches and shared levels happen
    level = round(p0 + rng.randrange(-30, 31) * 0.0001, 4)
    if rng.random() < 0.5 and kind is AlertKind.CROSS:
        level = round(p0, 4)  # created exactly at the level
    return AlertRule(rid, user, sym, kind, threshold=level, repeat=repeat, cooldown_s=cooldown,
                     status=status, created_price=p0)


@pytest.mark.parametrize("seed", range(8))
def test_index_matches_naive_reference(seed: int) -> None:
    rng = random.Random(seed)
    symbols = ["EURUSD", "GBPUSD"]
    price = {"EURUSD": 1.1000, "GBPUSD": 1.2500}
    index, naive = AlertIndex(), NaiveAlerts()
    next_id = 1
    t = 1_700_000_000_000
    fired_total = 0
    kinds_fired: set[AlertKind] = set()
    for step in range(2500):
        op = rng.random()
        if op < 0.08 or len(naive.rules) < 20:
            rule = _random_rule(rng, next_id, symbols, price)
            next_id += 1
            index.add(rule)
            naive.add(rule)
        elif op < 0.10:
            victim = rng.choice(list(naive.rules))
            assert index.remove(victim) is not None
            naive.remove(victim)
        elif op < 0.12:
            victim = rng.choice(list(naive.rules))
            assert index.pause(victim) == naive.pause(victim)
        elif op < 0.15:
            victim = rng.choice(list(naive.rules))
            assert index.resume(victim) == naive.resume(victim)
        sym = rng.choice(symbols)
        r = rng.random()
        if r < 0.03:
            tick = Tick(sym, t - rng.randrange(1, 5_000), price[sym], price[sym])  # out of order
        else:
            t += rng.choice((0, 50, 500, 1_000, 3_000)) if r > 0.05 else 40_000
            move = rng.choice((0, 0, 1, -1, 2, -2, 5, -5, 20, -20)) * 0.0001
            price[sym] = max(0.5, round(price[sym] + move, 4))
            tick = Tick(sym, t, price[sym], price[sym] + 0.0002)
        expected = naive.on_tick(tick)
        events = index.on_tick(tick)
        assert _fired(events) == expected, f"step {step}"
        fired_total += len(events)
        kinds_fired.update(e.rule.kind for e in events)
        assert len(index) == len(naive.rules)
    for user in range(5):
        assert index.count_for_user(user) == naive.count_for_user(user)
    assert fired_total > 200
    assert kinds_fired == set(AlertKind)


# ---- explicit scenarios -------------------------------------------------------


def _tick(t_s: float, bid: float, sym: str = "EURUSD") -> Tick:
    return Tick(sym, int(t_s * 1000), bid, bid + 0.0001)


def test_cross_fires_once_per_crossing_in_both_directions() -> None:
    index = AlertIndex()
    index.add(AlertRule(1, 7, "EURUSD", AlertKind.CROSS, threshold=1.1, repeat=True, created_price=1.09))
    path = [1.095, 1.1, 1.102, 1.1, 1.101, 1.0999, 1.098, 1.1, 1.12, 1.2]
    fired = [(e.direction, e.price) for i, p in enumerate(path) for e in index.on_tick(_tick(i, p))]
    # up at touching 1.1, down below it, up again; staying above or sitting on the level fires nothing
    assert fired == [(UP, 1.1), (DOWN, 1.0999), (UP, 1.1)]


def test_cross_created_above_waits_for_a_downward_crossing() -> None:
    index = AlertIndex()
    index.add(AlertRule(1, 7, "EURUSD", AlertKind.CROSS, threshold=1.1, created_price=1.105))
    assert index.on_tick(_tick(1, 1.2)) == ()
    assert index.on_tick(_tick(2, 1.1)) == ()
    (event,) = index.on_tick(_tick(3, 1.05))
    assert (event.direction, event.price, event.time_msc, event.final) == (DOWN, 1.05, 3000, True)


def test_one_shot_rule_fires_once_and_leaves_the_index() -> None:
    index = AlertIndex()
    index.add(AlertRule(1, 7, "EURUSD", AlertKind.ABOVE, threshold=1.1))
    index.add(AlertRule(2, 7, "EURUSD", AlertKind.BELOW, threshold=1.0))
    assert index.count_for_user(7) == 2
    assert index.on_tick(_tick(1, 1.05)) == ()
    (event,) = index.on_tick(_tick(2, 1.11))
    assert event.rule.id == 1 and event.direction is UP and event.final
    assert 1 not in index and index.get(1) is None and index.count_for_user(7) == 1
    assert index.on_tick(_tick(3, 1.12)) == ()
    assert index.on_tick(_tick(4, 1.09)) == () and index.on_tick(_tick(5, 1.2)) == ()


def test_levels_fire_in_price_path_order() -> None:
    index = AlertIndex()
    for rid, level in [(1, 1.3), (2, 1.1), (3, 1.2), (4, 1.2)]:
        index.add(AlertRule(rid, 1, "EURUSD", AlertKind.ABOVE, threshold=level))
    for rid, level in [(5, 0.9), (6, 0.95)]:
        index.add(AlertRule(rid, 1, "EURUSD", AlertKind.BELOW, threshold=level))
    index.on_tick(_tick(0, 1.0))
    assert [e.rule.id for e in index.on_tick(_tick(1, 1.25))] == [2, 3, 4]
    assert [e.rule.id for e in index.on_tick(_tick(2, 0.5))] == [6, 5]


def test_repeating_rule_rearms_after_its_cooldown() -> None:
    index = AlertIndex()
    index.add(AlertRule(1, 7, "EURUSD", AlertKind.ABOVE, threshold=1.1, repeat=True, cooldown_s=60))
    assert [e.time_msc for e in index.on_tick(_tick(10, 1.2))] == [10_000]
    assert index.on_tick(_tick(40, 1.2)) == ()
    assert index.on_tick(_tick(69.999, 1.3)) == ()  # 59.999 s later: still cooling
    assert [e.time_msc for e in index.on_tick(_tick(70, 1.3))] == [70_000]
    assert index.on_tick(_tick(200, 1.0)) == ()  # re-armed, but the condition does not hold
    assert [e.price for e in index.on_tick(_tick(201, 1.15))] == [1.15]
    assert index.get(1).last_triggered_msc == 201_000 and index.get(1).last_price == 1.15


def test_cross_rearmed_after_cooldown_takes_its_side_from_the_previous_tick() -> None:
    index = AlertIndex()
    index.add(AlertRule(1, 7, "EURUSD", AlertKind.CROSS, threshold=1.1, repeat=True, cooldown_s=30,
                        created_price=1.0))
    assert [e.direction for e in index.on_tick(_tick(0, 1.2))] == [UP]
    assert index.on_tick(_tick(10, 1.0)) == ()  # crossed down while cooling: not reported
    assert index.on_tick(_tick(20, 1.2)) == ()
    assert index.on_tick(_tick(40, 1.15)) == ()  # re-armed on the upper side
    assert [e.direction for e in index.on_tick(_tick(41, 1.05))] == [DOWN]


def test_pct_move_fires_on_a_move_within_the_window_only() -> None:
    index = AlertIndex()
    index.add(AlertRule(1, 7, "EURUSD", AlertKind.PCT_MOVE, pct=1.0, window_s=60))
    index.add(AlertRule(2, 7, "EURUSD", AlertKind.PCT_MOVE, pct=2.0, window_s=60, repeat=True, cooldown_s=5))
    assert index.on_tick(_tick(0, 100.0)) == ()
    assert index.on_tick(_tick(30, 100.9)) == ()  # +0.9 %
    assert index.on_tick(_tick(61, 100.95)) == ()  # the 100.0 low left the window: +0.05 %
    assert index.on_tick(_tick(62, 99.95)) == ()  # -0.99 % from 100.95
    (event,) = index.on_tick(_tick(63, 99.9))  # -1.04 %
    assert (event.rule.id, event.direction) == (1, DOWN)
    events = index.on_tick(_tick(64, 102.0))  # +2.1 % from 99.9
    assert [(e.rule.id, e.direction) for e in events] == [(2, UP)]
    assert index.on_tick(_tick(66, 102.5)) == ()  # cooling until 69
    assert [(e.rule.id, e.direction) for e in index.on_tick(_tick(69, 102.5))] == [(2, UP)]


def test_pause_and_resume() -> None:
    index = AlertIndex()
    index.add(AlertRule(1, 7, "EURUSD", AlertKind.CROSS, threshold=1.1, created_price=1.0))
    index.add(AlertRule(2, 7, "EURUSD", AlertKind.BELOW, threshold=1.0, status=AlertStatus.PAUSED))
    assert index.pause(1) and not index.pause(1)
    assert index.get(1).status is AlertStatus.PAUSED and index.count_for_user(7) == 2
    assert index.on_tick(_tick(1, 0.9)) == ()  # BELOW is paused since it was added
    assert index.on_tick(_tick(2, 1.2)) == ()  # crossed while paused
    assert index.resume(1) and not index.resume(1)
    assert index.on_tick(_tick(3, 1.3)) == ()  # resumed on the upper side: nothing to report
    assert [e.direction for e in index.on_tick(_tick(4, 1.05))] == [DOWN]
    assert index.resume(2)
    assert [e.rule.id for e in index.on_tick(_tick(5, 0.99))] == [2]


def test_out_of_order_and_bad_ticks_are_ignored() -> None:
    index = AlertIndex()
    index.add(AlertRule(1, 7, "EURUSD", AlertKind.ABOVE, threshold=1.1))
    index.on_tick(_tick(10, 1.0))
    assert index.on_tick(_tick(9, 1.2)) == ()
    assert index.on_tick(Tick("EURUSD", 11_000, float("nan"), 1.2)) == ()
    assert index.rejected == 2 and 1 in index


def test_many_removals_compact_the_heaps() -> None:
    index = AlertIndex()
    for rid in range(1, 1001):
        index.add(AlertRule(rid, 1, "EURUSD", AlertKind.ABOVE, threshold=1.0 + rid / 1000))
    for rid in range(1, 1000):
        index.remove(rid)
    assert len(index) == 1 and index.count_for_user(1) == 1
    assert [e.rule.id for e in index.on_tick(_tick(1, 5.0))] == [1000]


def test_invalid_rules_are_refused() -> None:
    with pytest.raises(InvalidAlertRule):
        AlertRule(1, 1, "EURUSD", AlertKind.CROSS, threshold=1.1)  # no created price
    with pytest.raises(InvalidAlertRule):
        AlertRule(1, 1, "EURUSD", AlertKind.PCT_MOVE, pct=1.0, window_s=0)
    with pytest.raises(InvalidAlertRule):
        AlertRule(1, 1, "EURUSD", AlertKind.ABOVE, threshold=float("nan"))
    with pytest.raises(InvalidAlertRule):
        AlertIndex().add(AlertRule(1, 1, "EURUSD", AlertKind.ABOVE, threshold=1.0, status=AlertStatus.TRIGGERED))


def test_fired_event_is_a_plain_value() -> None:
    rule = AlertRule(1, 1, "EURUSD", AlertKind.ABOVE, threshold=1.0)
    event = AlertFired(rule, 1.5, 10, UP)
    assert event.final and event == AlertFired(rule, 1.5, 10, UP)


@pytest.mark.parametrize("seed", range(4))
def test_batches_fire_exactly_what_single_ticks_fire(seed: int) -> None:
    rng = random.Random(100 + seed)
    symbols = ["EURUSD", "GBPUSD"]
    price = {"EURUSD": 1.1000, "GBPUSD": 1.2500}
    rules = [_random_rule(rng, rid, symbols, price) for rid in range(1, 120)]
    single, batched = AlertIndex(), AlertIndex()
    told: list[AlertFired] = []
    batched_told = AlertIndex(on_fire=told.extend)
    for rule in rules:
        single.add(rule)
        batched.add(rule)
        batched_told.add(rule)
    t = 1_700_000_000_000
    ticks: list[Tick] = []
    for _ in range(3000):
        sym = rng.choice(symbols)
        t += rng.choice((0, 50, 500, 1_000, 3_000, 40_000))
        price[sym] = max(0.5, round(price[sym] + rng.choice((0, 1, -1, 2, -2, 5, -5, 20, -20)) * 0.0001, 4))
        ticks.append(Tick(sym, t, price[sym], price[sym] + 0.0002))
    expected = [e for tick in ticks for e in single.on_tick(tick)]
    got: list[AlertFired] = []
    start = 0
    while start < len(ticks):
        size = rng.choice((1, 2, 7, 50, 400))
        got += batched.on_ticks(ticks[start : start + size])
        start += size
    assert len(expected) > 100
    assert _fired(got) == _fired(expected)
    assert _fired(batched_told.on_ticks(iter(ticks))) == _fired(expected) == _fired(told)
    assert sorted(r.id for r in batched.rules()) == sorted(r.id for r in single.rules())
