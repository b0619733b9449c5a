"""Price history as struct-of-arrays, the input of every agent.

``Series`` holds one instrument's bars as numpy arrays (time along the only
axis); ``Panel`` stacks many equal-length windows into 2-D arrays (rows are
instruments or windows, the last axis is time) so indicators and agents can
run over a whole sweep in one vectorized pass. Both expose the same attribute
names, which is all the indicator and agent code relies on (``Bars``).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, UTC
from pathlib import Path
from typing import Protocol

import numpy as np

from domain.market.models import Bar, Timeframe


class Bars(Protocol):
    """What agents read: OHLCV arrays with time on the last axis."""

    time: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray


def _f64(values: object) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(values, dtype=np.float64))


def _check(time: np.ndarray, arrays: Sequence[np.ndarray]) -> None:
    for a in arrays:
        if a.shape != time.shape:
            raise ValueError(f"array shape {a.shape} differs from time shape {time.shape}")
        if not np.all(np.isfinite(a)):
            raise ValueError("prices and volumes must be finite")
    if time.shape[-1] > 1 and not np.all(np.diff(time, axis=-1) > 0):
        raise ValueError("bar times must be strictly increasing")


def _parse_time(text: str) -> int:
    text = text.strip()
    if text.lstrip("-").isdigit():
        return int(text)
    # MT5 exports use "2017.04.19 09:00"; ISO uses "-" and optionally "T".
    date, _, rest = text.replace("T", " ").partition(" ")
    stamp = datetime.fromisoformat(f"{date.replace('.', '-')} {rest}".strip())
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return int(stamp.timestamp())


def infer_timeframe(time: np.ndarray) -> Timeframe | None:
    """The timeframe whose length equals the most common bar spacing."""
    t = np.asarray(time).reshape(-1, np.asarray(time).shape[-1])[0]
    if t.size < 2:
        return None
    gaps, counts = np.unique(np.diff(t), return_counts=True)
    step = int(gaps[np.argmax(counts)])
    return next((tf for tf in Timeframe if tf.seconds == step), None)


@dataclass(frozen=True, slots=True, eq=False)
class Series:
    """One instrument's bars, oldest first. ``series[:t]`` keeps bars before ``t``."""

    time: np.ndarray  # int64 epoch seconds (bar open, UTC)
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    symbol: str = ""
    timeframe: Timeframe | None = None

    def __post_init__(self) -> None:
        if np.asarray(self.time).ndim != 1:
            raise ValueError("Series arrays are 1-D; use Panel for stacked windows")
        _check(self.time, (self.open, self.high, self.low, self.close, self.volume))

    @classmethod
    def from_arrays(
        cls,
        time: object,
        open: object,
        high: object,
        low: object,
        close: object,
        volume: object | None = None,
        *,
        symbol: str = "",
        timeframe: Timeframe | None = None,
    ) -> Series:
        t = np.ascontiguousarray(np.asarray(time, dtype=np.int64))
        c = _f64(close)
        v = np.zeros_like(c) if volume is None else _f64(volume)
        tf = timeframe if timeframe is not None else infer_timeframe(t)
        return cls(t, _f64(open), _f64(high), _f64(low), c, v, symbol, tf)

    @classmethod
    def from_bars(
        cls, bars: Sequence[Bar], *, symbol: str = "", timeframe: Timeframe | None = None
    ) -> Series:
        return cls.from_arrays(
            [b.time for b in bars],
            [b.open for b in bars],
            [b.high for b in bars],
            [b.low for b in bars],
            [b.close for b in bars],
            [b.tick_volume for b in bars],
            symbol=symbol,
            timeframe=timeframe,
        )

    @classmethod
    def from_csv(
        cls, path: str | Path, *, symbol: str = "", timeframe: Timeframe | None = None
    ) -> Series:
        """Read ``time,open,high,low,close[,volume]``; time is UTC text or epoch seconds."""
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            fields = {name.strip().lower(): name for name in reader.fieldnames or ()}
            missing = {"time", "open", "high", "low", "close"} - fields.keys()
            if missing:
                raise ValueError(f"{path}: missing columns {sorted(missing)}")
            cols: dict[str, list[str]] = {k: [] for k in fields}
            for row in reader:
                for key, name in fields.items():
                    cols[key].append(row[name])
        return cls.from_arrays(
            [_parse_time(s) for s in cols["time"]],
            [float(s) for s in cols["open"]],
            [float(s) for s in cols["high"]],
            [float(s) for s in cols["low"]],
            [float(s) for s in cols["close"]],
            [float(s) for s in cols["volume"]] if "volume" in cols else None,
            symbol=symbol or Path(path).stem.split("_")[0],
            timeframe=timeframe,
        )

    def __len__(self) -> int:
        return int(self.time.shape[0])

    def __getitem__(self, key: slice) -> Series:
        if not isinstance(key, slice) or key.step not in (None, 1):
            raise TypeError("Series supports contiguous slices only, e.g. series[:t]")
        return Series(
            self.time[key],
            self.open[key],
            self.high[key],
            self.low[key],
            self.close[key],
            self.volume[key],
            self.symbol,
            self.timeframe,
        )

    def bar(self, i: int) -> Bar:
        return Bar(
            int(self.time[i]),
            float(self.open[i]),
            float(self.high[i]),
            float(self.low[i]),
            float(self.close[i]),
            float(self.volume[i]),
        )


@dataclass(frozen=True, slots=True, eq=False)
class Panel:
    """Equal-length windows stacked row-wise: arrays shaped (rows, bars)."""

    time: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    symbols: tuple[str, ...]
    timeframes: tuple[Timeframe | None, ...]

    def __post_init__(self) -> None:
        if np.asarray(self.time).ndim != 2:
            raise ValueError("Panel arrays are 2-D (rows, bars)")
        _check(self.time, (self.open, self.high, self.low, self.close, self.volume))

    @classmethod
    def stack(cls, series: Sequence[Series]) -> Panel:
        if not series or len({len(s) for s in series}) != 1:
            raise ValueError("Panel.stack needs one or more series of equal length")
        return cls(
            np.stack([s.time for s in series]),
            np.stack([s.open for s in series]),
            np.stack([s.high for s in series]),
            np.stack([s.low for s in series]),
            np.stack([s.close for s in series]),
            np.stack([s.volume for s in series]),
            tuple(s.symbol for s in series),
            tuple(s.timeframe for s in series),
        )

    def __len__(self) -> int:
        return int(self.time.shape[1])

    @property
    def rows(self) -> int:
        return int(self.time.shape[0])

    def row(self, i: int) -> Series:
        return Series(
            self.time[i],
            self.open[i],
            self.high[i],
            self.low[i],
            self.close[i],
            self.volume[i],
            self.symbols[i],
            self.timeframes[i],
        )
