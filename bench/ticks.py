"""Tick pipeline throughput: bus -> bar aggregation -> alert evaluation.

Usage: python bench/ticks.py [--ticks N] [--alerts N] [--symbols N] [--naive-ticks N] [--seed N]

Runs, in one process and on the same synthetic feed (random walks, 50
symbols, 20-180 ms between ticks):

* pipeline: ``InProcessTickBus.publish_many`` -> ``BarAggregator`` (M1..D1)
  -> ``AlertEvaluator`` holding the alerts (levels, crosses, percent moves,
  one-shot and repeating), fired events queued for the async consumer;
* the same with one ``publish`` call per tick;
* bare: the plain-Python ceiling, a loop doing only an M1 bar update and one
  bisect per tick;
* naive: every alert's condition checked on every tick (fewer ticks).

Tick objects are built outside the timed sections. Prints figures; never
asserts on time.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import resource
import sys
import time
from bisect import bisect_right
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from domain.alerts import AlertEvaluator, AlertKind, AlertRule
from domain.market.bars import BarAggregator
from domain.market.models import Tick
from domain.market.tickbus import InProcessTickBus

CHUNK = 200_000


class Feed:
    """Deterministic random-walk ticks over several symbols, produced in chunks."""

    def __init__(self, symbols: int, seed: int) -> None:
        self.rng = random.Random(seed)
        self.names = [f"SYM{i:02d}" for i in range(symbols)]
        self.start = {n: round(self.rng.uniform(0.5, 2000.0), 5) for n in self.names}
        self.price = dict(self.start)
        self.t = 1_700_000_000_000

    def chunks(self, total: int) -> Iterator[list[Tick]]:
        rng = self.rng
        names = self.names
        price = self.price
        gauss = rng.gauss
        randrange = rng.randrange
        done = 0
        while done < total:
            n = min(CHUNK, total - done)
            out = []
            t = self.t
            for _ in range(n):
                t += randrange(20, 181)
                sym = names[randrange(len(names))]
                p = price[sym] * (1.0 + gauss(0.0, 6e-5))
                price[sym] = p
                out.append(Tick(sym, t, p, p * 1.00002, 1.0))
            self.t = t
            done += n
            yield out


def make_rules(feed: Feed, count: int, seed: int) -> list[AlertRule]:
    rng = random.Random(seed + 1)
    rules = []
    for i in range(1, count + 1):
        sym = feed.names[i % len(feed.names)]
        p0 = feed.start[sym]
        roll = rng.random()
        repeat = rng.random() < 0.15
        cooldown = rng.choice((300, 900, 3600, 14400)) if repeat else 0
        offset = rng.uniform(0.001, 0.05) * rng.choice((-1.0, 1.0))
        if roll < 0.35:
            kind = AlertKind.ABOVE if offset > 0 else AlertKind.BELOW
            rules.append(AlertRule(i, i % 5000, sym, kind, threshold=p0 * (1 + offset),
                                   repeat=repeat, cooldown_s=cooldown, created_price=p0))
        elif roll < 0.8:
            rules.append(AlertRule(i, i % 5000, sym, AlertKind.CROSS, threshold=p0 * (1 + offset),
                                   repeat=repeat, cooldown_s=cooldown, created_price=p0))
        else:
            rules.append(AlertRule(i, i % 5000, sym, AlertKind.PCT_MOVE, pct=rng.uniform(0.3, 3.0),
                                   window_s=rng.choice((300, 900, 3600)), repeat=repeat,
                                   cooldown_s=cooldown, created_price=p0))
    return rules


class _Repo:
    def __init__(self, rules: Sequence[AlertRule]) -> None:
        self.rules = rules
        self.marked = 0

    async def list_active(self, symbols: Collection[str] | None = None) -> Sequence[AlertRule]:
        return self.rules

    async def mark_triggered(self, alert_id: int, time_msc: int, price: float, deactivate: bool) -> bool:
        self.marked += 1
        return True


class Pipeline:
    """Bus -> bars -> alerts, wired as the market-feed worker wires them."""

    def __init__(self, rules: list[AlertRule]) -> None:
        self.bus = InProcessTickBus()
        self.bars = BarAggregator(history=500)
        self.evaluator = AlertEvaluator(_Repo(rules))
        asyncio.run(self.evaluator.load())
        self.bus.add_listener(self.bars.on_tick, many=self.bars.on_ticks)
        self.bus.add_listener(self.evaluator.on_tick, many=self.evaluator.on_ticks)
        self.closed = 0
        self.fired = 0
        self.bars.add_listener(self._count)

    def _count(self, _event: object) -> None:
        self.closed += 1

    def settle(self) -> None:
        """The async consumer's share: persist what fired (outside the timed hot path)."""
        self.fired += self.evaluator.pending
        asyncio.run(self.evaluator.flush())


class Bare:
    """The plain-Python ceiling: an M1 bar update and one bisect per tick."""

    def __init__(self, feed: Feed, levels_per_symbol: int) -> None:
        rng = random.Random(0)
        self.levels = {n: sorted(feed.start[n] * (1 + rng.uniform(-0.05, 0.05)) for _ in range(levels_per_symbol))
                       for n in feed.names}
        self.state: dict[str, list[float]] = {n: [-1.0, 0.0, 0.0, 0.0, 0.0, 0.0] for n in feed.names}
        self.hits = 0

    def run(self, ticks: list[Tick]) -> None:
        state = self.state
        levels = self.levels
        hits = 0
        for tick in ticks:
            st = state[tick.symbol]
            t = tick.time_msc
            p = tick.bid
            if t >= st[0]:
                st[0] = t - t % 60_000 + 60_000
                st[1] = st[2] = st[3] = st[4] = p
                st[5] = 1
            else:
                if p > st[2]:
                    st[2] = p
                elif p < st[3]:
                    st[3] = p
                st[4] = p
                st[5] += 1
            hits += bisect_right(levels[tick.symbol], p)
        self.hits += hits


def run_interleaved(feed: Feed, rules: list[AlertRule], ticks: int) -> tuple[float, float, float, Pipeline]:
    """Chunk by chunk, the same ticks through bare and pipeline, so machine noise hits both alike.

    Each chunk's first half goes through ``publish_many``, its second half through ``publish``.
    """
    pipe = Pipeline(rules)
    bare = Bare(feed, len(rules) // len(feed.names))
    gc.collect()
    gc.freeze()  # the loaded rules are long-lived: keep them out of collections, as the worker should
    many_s = single_s = bare_s = 0.0
    clock = time.perf_counter
    for chunk in feed.chunks(ticks):
        gc.collect()
        t0 = clock()
        bare.run(chunk)
        bare_s += clock() - t0
        half = len(chunk) // 2
        first, second = chunk[:half], chunk[half:]
        t0 = clock()
        pipe.bus.publish_many(first)
        many_s += clock() - t0
        publish = pipe.bus.publish
        t0 = clock()
        for tick in second:
            publish(tick)
        single_s += clock() - t0
        pipe.settle()
    return many_s, single_s, bare_s, pipe


def run_naive(feed: Feed, rules: list[AlertRule], ticks: int) -> float:
    """Every rule checked on every tick (window extremes handed in, so only the scan is measured)."""
    table = [(r.symbol, r.kind, r.threshold, r.pct, (r.created_price or 0.0) >= r.threshold) for r in rules]
    last: dict[str, float] = {}
    above, below, cross = AlertKind.ABOVE, AlertKind.BELOW, AlertKind.CROSS
    hits = 0
    elapsed = 0.0
    for chunk in feed.chunks(ticks):
        t0 = time.perf_counter()
        for tick in chunk:
            sym = tick.symbol
            p = tick.bid
            prev = last.get(sym, p)
            move = abs(p - prev) / prev * 100.0
            for symbol, kind, level, pct, upper in table:
                if symbol != sym:
                    continue
                if kind is above:
                    hit = p >= level
                elif kind is below:
                    hit = p <= level
                elif kind is cross:
                    hit = (p < level) if upper else (p >= level)
                else:
                    hit = move >= pct
                hits += hit
            last[sym] = p
        elapsed += time.perf_counter() - t0
    return elapsed


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ticks", type=int, default=2_000_000)
    ap.add_argument("--alerts", type=int, default=100_000)
    ap.add_argument("--symbols", type=int, default=50)
    ap.add_argument("--naive-ticks", type=int, default=300)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)

    rules = make_rules(Feed(args.symbols, args.seed), args.alerts, args.seed)
    many_s, single_s, bare_s, pipe = run_interleaved(Feed(args.symbols, args.seed), rules, args.ticks)
    naive_s = run_naive(Feed(args.symbols, args.seed), rules, args.naive_ticks)

    n_many = sum(min(CHUNK, args.ticks - i) // 2 for i in range(0, args.ticks, CHUNK))
    n_single = args.ticks - n_many
    pipe_rate = n_many / many_s
    single_rate = n_single / single_s
    bare_rate = args.ticks / bare_s
    naive_rate = args.naive_ticks / naive_s
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    print(f"python {sys.version.split()[0]}, {args.symbols} symbols, {len(rules):,} active alerts, "
          f"{args.ticks:,} ticks (naive: {args.naive_ticks:,})")
    print()
    print(f"{'run':<46}{'ticks':>11}{'seconds':>9}{'ticks/s':>13}{'us/tick':>9}")
    rows = [
        ("pipeline: bus.publish_many -> bars -> alerts", n_many, many_s),
        ("pipeline: bus.publish per tick", n_single, single_s),
        ("bare loop: M1 update + bisect", args.ticks, bare_s),
        ("naive: scan every alert per tick", args.naive_ticks, naive_s),
    ]
    for name, n, secs in rows:
        print(f"{name:<46}{n:>11,}{secs:>9.2f}{n / secs:>13,.0f}{secs / n * 1e6:>9.2f}")
    print()
    print(f"pipeline / bare  : {pipe_rate / bare_rate:.2f}x  (publish per tick: {single_rate / bare_rate:.2f}x)")
    print(f"pipeline / naive : {pipe_rate / naive_rate:,.0f}x")
    print(f"pipeline work    : {pipe.closed:,} bars closed, {pipe.fired:,} alerts fired, "
          f"{len(pipe.evaluator.index):,} alerts left")
    print(f"peak RSS         : {rss_mb:,.0f} MB")

if __name__ == "__main__":
    main()
