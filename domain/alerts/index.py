"""In-memory alert index: evaluates one tick in O(1) when nothing fires.

Per symbol, every armed price rule sits in one of two heaps ordered by its
trigger level: ``up`` (fire when bid >= key, a min-heap) and ``down`` (fire
when bid <= key, a max-heap). What fires on a tick is a prefix of one heap, so
a tick costs two float comparisons against the cached heap tops, plus
O(k log n) for the k rules it fires. Heaps rather than sorted arrays: a Python
list insert or delete is an O(n) memmove, a heap push is O(log n), and a
removal is O(1) (lazy: the entry is left in place and skipped when it
surfaces; a heap is rebuilt when more than half of it is stale).

A ``CROSS`` rule is armed on the side opposite to the price: below the level
it waits in ``up`` for ``bid >= level``; on or above it, it waits in ``down``
for ``bid < level``, stored as ``bid <= nextafter(level, -inf)`` so one
comparison serves both kinds. After a fire a repeating rule moves to a
per-symbol cooling heap keyed by re-arm time and is armed again on the first
tick at or after that time; on re-arm a ``CROSS`` rule takes its side from the
previous tick.

``PCT_MOVE`` rules are bucketed by window, each bucket a min-heap of percent
thresholds. A symbol keeps ONE pair of monotonic deques of its ticks (rising
lows, falling highs, as lists); each window holds a head index into them, so
that window's min and max are ``lows[head]`` and ``highs[head]``. Per tick,
the O(1) amortized deque push is shared by all windows, followed by two
comparisons against cached bounds: the lowest bid that could fire an up move
and the highest that could fire a down move. The bounds are conservative: an
extreme leaving its window only makes a move harder, so heads may lag; a new
extreme lowers (raises) the bound at once using the smallest armed percent.
The windows are walked (O(windows): advance heads, fire, recompute exact
bounds) only when a bound trips, a rule is armed, or once per longest window
to trim the deques. A window's history starts with the first tick after its
bucket was created, and the bucket is dropped with its last rule.

Order of the events of one tick: ``up`` fires by ascending level, then
``down`` by descending level, then percent rules by window length and
ascending percent; ties by rule id. Rejected ticks (older than the symbol's
last tick, or a bid that is not a positive number) evaluate nothing. Time
comes only from the ticks; nothing here reads a clock.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from heapq import heapify, heappop, heappush

from domain.alerts.models import AlertFired, AlertKind, AlertRule, AlertStatus, Direction, InvalidAlertRule
from domain.market.models import Tick

__all__ = ["AlertIndex", "cross_down_key", "pct_fall_level", "pct_rise_level"]

_INF = math.inf
_NO_FIRE: tuple[AlertFired, ...] = ()
_COMPACT_MIN = 64  # never rebuild a heap for fewer stale entries than this
_TRIM_MIN = 256  # never trim the window deques for fewer dead ticks than this
_NO_CLAMP = 1 << 62
_new_fired = tuple.__new__

# where a registered rule currently lives
_UP, _DOWN, _PCT, _COOLING, _PAUSED = range(5)

_Entry = tuple[float, int, int]  # (key, rule id, generation)


def cross_down_key(level: float) -> float:
    """The ``down`` key of a cross rule waiting for ``bid < level``."""
    return math.nextafter(level, -_INF)


def pct_rise_level(low: float, pct: float) -> float:
    """The bid at or above which a rise of ``pct`` percent from ``low`` fires."""
    return low * (1.0 + pct / 100.0)


def pct_fall_level(high: float, pct: float) -> float:
    """The bid at or below which a fall of ``pct`` percent from ``high`` fires."""
    return high * (1.0 - pct / 100.0)


class _Rec:
    __slots__ = ("rule", "state", "gen", "window", "last_t", "last_p")

    def __init__(self, rule: AlertRule) -> None:
        self.rule = rule  # refreshed from last_t / last_p only when read (replace() is slow)
        self.state = _PAUSED
        self.gen = 0  # generation of the rule's one live heap entry; 0 matches none
        self.window: _Window | None = None
        self.last_t = rule.last_triggered_msc
        self.last_p = rule.last_price

    def current(self) -> AlertRule:
        rule = self.rule
        if rule.last_triggered_msc != self.last_t:
            rule = self.rule = replace(rule, last_triggered_msc=self.last_t, last_price=self.last_p)
        return rule

    def reference_price(self) -> float | None:
        return self.last_p if self.last_t is not None else self.rule.created_price


class _Window:
    """The percent-move rules of one (symbol, window) and the window's head in the symbol's deques."""

    __slots__ = ("window_s", "ms", "heap", "min_pct", "stale", "rules", "lo", "hi")

    def __init__(self, window_s: int, start: int, start_hi: int) -> None:
        self.window_s = window_s
        self.ms = window_s * 1000
        self.heap: list[_Entry] = []
        self.min_pct = _INF
        self.stale = 0
        self.rules = 0  # registered rules of this window, in any state
        self.lo = start  # index of the window's min in the symbol's ``lows``
        self.hi = start_hi  # index of the window's max in ``highs``


class _Sym:
    __slots__ = ("t", "p", "up", "down", "up_min", "down_max", "up_stale", "down_stale",
                 "cool", "cool_next", "windows", "by_window", "lows", "highs", "lo_top", "hi_top",
                 "lo_clamp", "hi_clamp", "rise_f", "fall_f", "pct_next", "pct_hi", "pct_lo")

    def __init__(self) -> None:
        self.t = -1  # time of the last accepted tick
        self.p: float | None = None  # bid of the last accepted tick
        self.up: list[_Entry] = []
        self.down: list[_Entry] = []  # keys negated: a min-heap of -level
        self.up_min = _INF
        self.down_max = -_INF
        self.up_stale = 0
        self.down_stale = 0
        self.cool: list[_Entry] = []  # (re-arm time msc, id, gen)
        self.cool_next: float = _INF
        self.windows: tuple[_Window, ...] = ()  # sorted by window length
        self.by_window: dict[int, _Window] = {}
        self.lows: list[Tick] = []  # bids strictly rising; the front is trimmed lazily
        self.highs: list[Tick] = []  # bids strictly falling
        self.lo_top = 0  # the largest window head in ``lows``: popping it changes a window min
        self.hi_top = 0
        self.lo_clamp = _NO_CLAMP  # window heads beyond this index were popped: clamp them to it
        self.hi_clamp = _NO_CLAMP
        self.rise_f = _INF  # 1 + q / 100 and 1 - q / 100 for q <= every armed percent
        self.fall_f = -_INF
        self.pct_next: float = _INF  # walk the windows at or after this time
        self.pct_hi = _INF  # ... or when the bid reaches this (an up move fires)
        self.pct_lo = -_INF  # ... or falls to this (a down move fires)


class AlertIndex:
    """All registered rules of one process, evaluated tick by tick.

    ``on_fire`` (optional) is called with the events of a tick, in order,
    before ``on_tick`` returns the same list.
    """

    def __init__(self, on_fire: Callable[[list[AlertFired]], object] | None = None) -> None:
        self._on_fire = on_fire
        self._recs: dict[int, _Rec] = {}
        self._syms: dict[str, _Sym] = {}
        self._per_user: dict[int, int] = {}
        self._gen = 0
        self.rejected = 0  # ticks refused: out of order or a bad bid

    # ---- queries -------------------------------------------------------

    def __len__(self) -> int:
        return len(self._recs)

    def __contains__(self, alert_id: object) -> bool:
        return alert_id in self._recs

    def get(self, alert_id: int) -> AlertRule | None:
        rec = self._recs.get(alert_id)
        return rec.current() if rec is not None else None

    def rules(self) -> Iterator[AlertRule]:
        return (rec.current() for rec in self._recs.values())

    def count_for_user(self, user_id: int) -> int:
        """Registered rules (active or paused) of one user, O(1)."""
        return self._per_user.get(user_id, 0)

    def last_price(self, symbol: str) -> float | None:
        s = self._syms.get(symbol)
        return s.p if s is not None else None

    # ---- changes ---------------------------------------------------------

    def add(self, rule: AlertRule) -> None:
        """Register a rule, replacing one with the same id. O(log n)."""
        if rule.status is AlertStatus.TRIGGERED:
            raise InvalidAlertRule("a triggered rule cannot be registered", field="status")
        if rule.id in self._recs:
            self.remove(rule.id)
        s = self._sym(rule.symbol)
        rec = _Rec(rule)
        if rule.kind is AlertKind.PCT_MOVE:
            w = s.by_window.get(rule.window_s)
            if w is None:
                for x in s.windows:  # settle pending clamps: they concern the older heads only
                    x.lo = min(x.lo, s.lo_clamp)
                    x.hi = min(x.hi, s.hi_clamp)
                s.lo_clamp = s.hi_clamp = _NO_CLAMP
                w = _Window(rule.window_s, len(s.lows), len(s.highs))
                s.lo_top = max(s.lo_top, w.lo)
                s.hi_top = max(s.hi_top, w.hi)
                s.by_window[rule.window_s] = w
                s.windows = tuple(sorted(s.by_window.values(), key=lambda x: x.window_s))
                s.pct_next = 0  # walk the windows on the next tick
            w.rules += 1
            rec.window = w
        self._recs[rule.id] = rec
        self._per_user[rule.user_id] = self._per_user.get(rule.user_id, 0) + 1
        if rule.status is not AlertStatus.PAUSED:
            self._activate(s, rec, rec.reference_price())

    def remove(self, alert_id: int) -> AlertRule | None:
        """Unregister a rule; returns it, or None when unknown. O(1) amortized."""
        rec = self._recs.get(alert_id)
        if rec is None:
            return None
        s = self._syms[rec.rule.symbol]
        self._disarm(s, rec)
        self._forget(s, rec)
        return rec.current()

    def pause(self, alert_id: int) -> bool:
        rec = self._recs.get(alert_id)
        if rec is None or rec.state == _PAUSED:
            return False
        self._disarm(self._syms[rec.rule.symbol], rec)
        rec.rule = replace(rec.current(), status=AlertStatus.PAUSED)
        return True

    def resume(self, alert_id: int) -> bool:
        """Re-arm a paused rule; a cross rule takes its side from the last price."""
        rec = self._recs.get(alert_id)
        if rec is None or rec.state != _PAUSED:
            return False
        rec.rule = replace(rec.current(), status=AlertStatus.ACTIVE)
        s = self._syms[rec.rule.symbol]
        self._activate(s, rec, s.p if s.p is not None else rec.reference_price())
        return True

    def clear(self) -> None:
        self._recs.clear()
        self._syms.clear()
        self._per_user.clear()

    # ---- evaluation --------------------------------------------------------

    def on_tick(self, tick: Tick) -> Sequence[AlertFired]:
        """Evaluate one tick; returns the events it fired (an empty tuple mostly)."""
        return self.on_ticks((tick,))

    def on_ticks(self, ticks: Iterable[Tick]) -> Sequence[AlertFired]:
        """Evaluate ticks in order; returns the events they fired (an empty tuple mostly).

        Takes the ticks one at a time with a plain ``for``: when ``on_fire``
        raises, the ticks not yet taken from an iterator are still in it (the
        tick bus calls again with the same iterator to resume).
        """
        syms = self._syms
        fired: list[AlertFired] | None = None
        for tick in ticks:
            try:
                s = syms[tick.symbol]
            except KeyError:
                s = self._sym(tick.symbol)
            t = tick.time_msc
            p = tick.bid
            if t < s.t or not p > 0.0:
                self.rejected += 1
                continue
            s.t = t
            if t >= s.cool_next:
                self._rearm(s, t)
            s.p = p
            if s.windows:
                lows = s.lows
                highs = s.highs
                # both deques end with the same tick, the last one pushed (they start, restart and are trimmed
                # together, never past it), so one look at its bid tells which of them pops
                if lows:
                    prev = lows[-1].bid
                    if prev >= p:
                        lows.pop()
                        while lows and lows[-1].bid >= p:
                            lows.pop()
                        n = len(lows)
                        if n <= s.lo_top:
                            # a new window low: no up move can fire now, but one from p may later
                            s.lo_top = n
                            if n < s.lo_clamp:
                                s.lo_clamp = n
                            level = p * s.rise_f
                            if level < s.pct_hi:
                                s.pct_hi = level
                    if prev <= p:
                        highs.pop()
                        while highs and highs[-1].bid <= p:
                            highs.pop()
                        n = len(highs)
                        if n <= s.hi_top:
                            s.hi_top = n
                            if n < s.hi_clamp:
                                s.hi_clamp = n
                            level = p * s.fall_f
                            if level > s.pct_lo:
                                s.pct_lo = level
                lows.append(tick)
                highs.append(tick)
                if t >= s.pct_next or p >= s.pct_hi or p <= s.pct_lo:
                    events = self._evaluate(s, t, p, True)
                    if events:
                        if fired is None:
                            fired = []
                        fired += events
                    continue
            if p >= s.up_min or p <= s.down_max:
                events = self._evaluate(s, t, p, False)
                if events:
                    if fired is None:
                        fired = []
                    fired += events
        return _NO_FIRE if fired is None else fired

    def _evaluate(self, s: _Sym, t: int, p: float, windows: bool) -> Sequence[AlertFired]:
        recs = self._recs
        out: list[AlertFired] = []
        if p >= s.up_min:
            up = s.up
            while up and up[0][0] <= p:
                _, rid, gen = heappop(up)
                rec = recs.get(rid)
                if rec is None or rec.gen != gen:
                    s.up_stale -= 1
                    continue
                self._trigger(s, rec, t, p, Direction.UP, out)
            s.up_min = up[0][0] if up else _INF
        if p <= s.down_max:
            down = s.down
            while down and -down[0][0] >= p:
                _, rid, gen = heappop(down)
                rec = recs.get(rid)
                if rec is None or rec.gen != gen:
                    s.down_stale -= 1
                    continue
                self._trigger(s, rec, t, p, Direction.DOWN, out)
            s.down_max = -down[0][0] if down else -_INF
        if windows:
            self._walk_windows(s, t, p, out)
        if not out:
            return _NO_FIRE
        if self._on_fire is not None:
            self._on_fire(out)
        return out

    def _walk_windows(self, s: _Sym, t: int, p: float, out: list[AlertFired]) -> None:
        """Move every window head, fire percent rules, recompute the cached bounds."""
        recs = self._recs
        lows = s.lows
        highs = s.highs
        last_lo = min(len(lows) - 1, s.lo_clamp)  # no head lies beyond the tick just pushed
        last_hi = min(len(highs) - 1, s.hi_clamp)
        s.lo_clamp = s.hi_clamp = _NO_CLAMP
        q = _INF
        pct_hi = _INF
        pct_lo = -_INF
        span = 0
        top_lo = top_hi = 0
        base_lo = last_lo
        base_hi = last_hi
        for w in s.windows:
            lim = t - w.ms
            i = w.lo if w.lo < last_lo else last_lo
            while lows[i].time_msc < lim:
                i += 1
            j = w.hi if w.hi < last_hi else last_hi
            while highs[j].time_msc < lim:
                j += 1
            w.lo = i
            w.hi = j
            mn = lows[i].bid
            mx = highs[j].bid
            heap = w.heap
            d = w.min_pct / 100.0  # pct_rise_level / pct_fall_level, inlined
            if heap and (p >= mn * (1.0 + d) or p <= mx * (1.0 - d)):
                while heap:
                    pct = heap[0][0]
                    if p >= pct_rise_level(mn, pct):
                        direction = Direction.UP
                    elif p <= pct_fall_level(mx, pct):
                        direction = Direction.DOWN
                    else:
                        break
                    _, rid, gen = heappop(heap)
                    rec = recs.get(rid)
                    if rec is None or rec.gen != gen:
                        w.stale -= 1
                        continue
                    self._trigger(s, rec, t, p, direction, out)
                w.min_pct = heap[0][0] if heap else _INF
            if heap:
                if w.min_pct < q:
                    q = w.min_pct
                level = pct_rise_level(mn, w.min_pct)
                if level < pct_hi:
                    pct_hi = level
                level = pct_fall_level(mx, w.min_pct)
                if level > pct_lo:
                    pct_lo = level
            if w.ms > span:
                span = w.ms
            if i > top_lo:
                top_lo = i
            if j > top_hi:
                top_hi = j
            if i < base_lo:
                base_lo = i
            if j < base_hi:
                base_hi = j
        s.pct_hi = pct_hi
        s.pct_lo = pct_lo
        s.rise_f = 1.0 + q / 100.0
        s.fall_f = 1.0 - q / 100.0
        s.pct_next = t + span
        if base_lo > _TRIM_MIN and 2 * base_lo > len(lows):
            del lows[:base_lo]
            for w in s.windows:
                w.lo -= base_lo
            top_lo -= base_lo
        if base_hi > _TRIM_MIN and 2 * base_hi > len(highs):
            del highs[:base_hi]
            for w in s.windows:
                w.hi -= base_hi
            top_hi -= base_hi
        s.lo_top = top_lo
        s.hi_top = top_hi

    # ---- internals ---------------------------------------------------------

    def _sym(self, symbol: str) -> _Sym:
        s = self._syms.get(symbol)
        if s is None:
            s = self._syms[symbol] = _Sym()
        return s

    def _next_gen(self) -> int:
        self._gen += 1
        return self._gen

    def _activate(self, s: _Sym, rec: _Rec, ref: float | None) -> None:
        """Arm a rule, or park it in cooling when its cooldown may not be over."""
        rule = rec.rule
        if rule.repeat and rec.last_t is not None:
            gen = rec.gen = self._next_gen()
            rec.state = _COOLING
            heappush(s.cool, (rec.last_t + rule.cooldown_s * 1000, rule.id, gen))
            s.cool_next = s.cool[0][0]
        else:
            self._arm(s, rec, ref)

    def _arm(self, s: _Sym, rec: _Rec, ref: float | None) -> None:
        rule = rec.rule
        gen = rec.gen = self._next_gen()
        kind = rule.kind
        if kind is AlertKind.PCT_MOVE:
            w = rec.window
            assert w is not None
            heappush(w.heap, (rule.pct, rule.id, gen))
            if rule.pct < w.min_pct:
                w.min_pct = rule.pct
                s.pct_next = 0  # the cached bounds may have narrowed
                if 1.0 + rule.pct / 100.0 < s.rise_f:
                    s.rise_f = 1.0 + rule.pct / 100.0
                    s.fall_f = 1.0 - rule.pct / 100.0
            rec.state = _PCT
            return
        level = rule.threshold
        if kind is AlertKind.ABOVE or (kind is AlertKind.CROSS and not (ref is not None and ref >= level)):
            heappush(s.up, (level, rule.id, gen))
            if level < s.up_min:
                s.up_min = level
            rec.state = _UP
        else:
            key = level if kind is AlertKind.BELOW else cross_down_key(level)
            heappush(s.down, (-key, rule.id, gen))
            if key > s.down_max:
                s.down_max = key
            rec.state = _DOWN

    def _disarm(self, s: _Sym, rec: _Rec) -> None:
        """Invalidate the rule's heap entry; it stays in place until it surfaces."""
        state = rec.state
        rec.gen = 0
        rec.state = _PAUSED
        if state == _UP:
            s.up_stale += 1
            if s.up_stale > _COMPACT_MIN and 2 * s.up_stale > len(s.up):
                self._compact(s.up)
                s.up_stale = 0
                s.up_min = s.up[0][0] if s.up else _INF
        elif state == _DOWN:
            s.down_stale += 1
            if s.down_stale > _COMPACT_MIN and 2 * s.down_stale > len(s.down):
                self._compact(s.down)
                s.down_stale = 0
                s.down_max = -s.down[0][0] if s.down else -_INF
        elif state == _PCT:
            w = rec.window
            assert w is not None
            w.stale += 1
            if w.stale > _COMPACT_MIN and 2 * w.stale > len(w.heap):
                self._compact(w.heap)
                w.stale = 0
                w.min_pct = w.heap[0][0] if w.heap else _INF

    def _compact(self, heap: list[_Entry]) -> None:
        recs = self._recs
        live = [e for e in heap if (r := recs.get(e[1])) is not None and r.gen == e[2]]
        heapify(live)
        heap[:] = live

    def _forget(self, s: _Sym, rec: _Rec) -> None:
        rule = rec.rule
        del self._recs[rule.id]
        left = self._per_user[rule.user_id] - 1
        if left:
            self._per_user[rule.user_id] = left
        else:
            del self._per_user[rule.user_id]
        w = rec.window
        if w is not None:
            w.rules -= 1
            if not w.rules:
                del s.by_window[w.window_s]
                s.windows = tuple(x for x in s.windows if x is not w)
                s.pct_next = 0
                if not s.windows:
                    s.lows = []
                    s.highs = []
                    s.lo_top = s.hi_top = 0
                    s.lo_clamp = s.hi_clamp = _NO_CLAMP
                    s.rise_f = _INF
                    s.fall_f = -_INF
                    s.pct_next = _INF
                    s.pct_hi = _INF
                    s.pct_lo = -_INF

    def _trigger(self, s: _Sym, rec: _Rec, t: int, p: float, direction: Direction,
                 out: list[AlertFired]) -> None:
        rule = rec.rule
        rec.last_t = t
        rec.last_p = p
        if rule.repeat:
            gen = self._gen = self._gen + 1
            rec.gen = gen
            rec.state = _COOLING
            cool = s.cool
            heappush(cool, (t + rule.cooldown_s * 1000, rule.id, gen))
            s.cool_next = cool[0][0]
        else:
            rec.gen = 0
            self._forget(s, rec)
        out.append(_new_fired(AlertFired, (rule, p, t, direction)))  # the named tuple without its Python __new__

    def _rearm(self, s: _Sym, t: int) -> None:
        """Arm the rules whose cooldown ended by ``t``; ``s.p`` is still the previous bid."""
        cool = s.cool
        recs = self._recs
        while cool and cool[0][0] <= t:
            _, rid, gen = heappop(cool)
            rec = recs.get(rid)
            if rec is None or rec.gen != gen:
                continue
            self._arm(s, rec, s.p if s.p is not None else rec.reference_price())
        s.cool_next = cool[0][0] if cool else _INF
