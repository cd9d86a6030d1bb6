"""Aggregation of closed candles into a higher timeframe (1m -> 5m, 15m, 1h, ...).

OHLCV of a bucket: open of its first candle, max high, min low, close of its
last candle, sum of volumes. Buckets are aligned like exchange candles
(`core.data.feed.floor_ts`: the Unix epoch; weeks on Monday 00:00 UTC).

When a bucket is emitted (always as a CLOSED candle, never a forming one):
* as soon as the base candle filling its LAST slot arrives -> `complete=True`
  when every slot was filled by a complete candle, else `complete=False`;
* when a base candle of a LATER bucket arrives while a bucket is pending (its
  period has passed in data time, but some base candles never came) -> emitted
  from the candles that exist, flagged `complete=False`.
A bucket whose period has not passed in data time stays pending (`flush()`
emits it on demand). Time is the data's own, never the wall clock, so live and
replay produce the same buckets. The aggregate's `source` is that of the base
candle that closed it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from core.data.feed import ClosedCandle, Source, floor_ts
from core.data.timeframes import timeframe_ms
from core.errors import DataError


@dataclass
class _Bucket:
    ts: int
    open: float
    high: float
    low: float
    close: float
    volume: float
    count: int
    complete: bool
    source: Source


class Aggregator:
    """Builds `target` candles of `symbol` from its closed `base` candles, fed in time order.

    Raises:
        ValueError: `target` is not a whole multiple (> 1) of `base`.
    """

    def __init__(self, symbol: str, base: str, target: str) -> None:
        base_ms, target_ms = timeframe_ms(base), timeframe_ms(target)
        if target_ms <= base_ms or target_ms % base_ms:
            raise ValueError(f"cannot aggregate {base} into {target}: {target} must be a whole multiple of {base}")
        self.symbol, self.base, self.target = symbol, base, target
        self._base_ms, self._target_ms = base_ms, target_ms
        self.slots = target_ms // base_ms
        self._pending: _Bucket | None = None
        self._last_ts: int | None = None

    def push(self, candle: ClosedCandle) -> list[ClosedCandle]:
        """Add one closed base candle; returns the target candles it closes (0, 1 or 2), oldest first.

        Raises:
            ValueError: the candle is of another symbol or timeframe.
            DataError: its open time is not after the previous one's.
        """
        if candle.symbol != self.symbol or candle.timeframe != self.base:
            raise ValueError(
                f"aggregator {self.symbol} {self.base}->{self.target} got a {candle.symbol} {candle.timeframe} candle"
            )
        if self._last_ts is not None and candle.ts <= self._last_ts:
            raise DataError(
                f"{self.symbol} {self.base}->{self.target}: candle {candle.ts} is not after the previous {self._last_ts}"
            )
        self._last_ts = candle.ts
        out: list[ClosedCandle] = []
        start = floor_ts(candle.ts, self.target)
        bucket = self._pending
        if bucket is not None and start > bucket.ts:
            out.append(self._emit(bucket, complete=False))
            bucket = None
        if bucket is None:
            bucket = _Bucket(start, candle.open, candle.high, candle.low, candle.close, candle.volume,
                             1, candle.complete, candle.source)
        else:
            bucket.high = max(bucket.high, candle.high)
            bucket.low = min(bucket.low, candle.low)
            bucket.close = candle.close
            bucket.volume += candle.volume
            bucket.count += 1
            bucket.complete = bucket.complete and candle.complete
            bucket.source = candle.source
        self._pending = bucket
        if candle.ts + self._base_ms >= start + self._target_ms:
            out.append(self._emit(bucket, complete=bucket.count == self.slots and bucket.complete))
        return out

    def flush(self) -> list[ClosedCandle]:
        """Emit the pending (partly filled) bucket now, flagged `complete=False`; [] when none."""
        if self._pending is None:
            return []
        return [self._emit(self._pending, complete=False)]

    def _emit(self, b: _Bucket, complete: bool) -> ClosedCandle:
        self._pending = None
        return ClosedCandle(self.symbol, self.target, b.ts, b.open, b.high, b.low, b.close, b.volume,
                            b.source, complete)


def aggregate(candles: Iterable[ClosedCandle], target: str, flush: bool = False) -> list[ClosedCandle]:
    """Aggregate a time-ordered series of closed candles (one symbol, one timeframe) into `target`.

    With `flush`, a last partly filled bucket is included (flagged incomplete).
    Raises ValueError/DataError as `Aggregator` does; [] for no candles.
    """
    agg: Aggregator | None = None
    out: list[ClosedCandle] = []
    for c in candles:
        if agg is None:
            agg = Aggregator(c.symbol, c.timeframe, target)
        out.extend(agg.push(c))
    if agg is not None and flush:
        out.extend(agg.flush())
    return out


# ------------------------------------------------------------------------------ whole series
def check_resample(base: str, target: str, flag: str = "--timeframe") -> bool:
    """True when `base` candles must be resampled into `target`, False when they are the same.

    Raises:
        UsageError: `target` is finer than `base`, or not a whole multiple of it (the message
            names `flag` and both timeframes). DataError: an unknown timeframe.
    """
    from core.errors import UsageError

    base_ms, target_ms = timeframe_ms(base), timeframe_ms(target)
    if target_ms == base_ms:
        return False
    if target_ms < base_ms:
        raise UsageError(f"{flag} {target}: the data holds {base} candles, which cannot be resampled into the "
                         f"finer {target}; give {flag} {base} or a coarser whole multiple of {base}")
    if target_ms % base_ms:
        raise UsageError(f"{flag} {target}: {target} is not a whole multiple of the data's {base} candles; "
                         f"give a timeframe made of whole {base} candles (e.g. 15m, 1h, 4h, 1d)")
    return True


def resample_candles(candles, target: str, flag: str = "--timeframe"):
    """`candles` (a `core.model.candles.Candles`) resampled into the coarser `target` timeframe.

    Buckets are aligned like exchange candles (`floor_ts`: on the Unix epoch, so 1h/4h/1d
    buckets open at whole UTC hours/days; weeks on Monday 00:00 UTC). A bucket is kept only
    when EVERY one of its base candles is there (target/base of them, e.g. 12 five-minute
    candles for 1h): the first and last buckets when the data starts or ends inside them, and
    any bucket with a missing base candle, are dropped, never emitted from part of their
    candles. OHLCV: open of the first candle, max high, min low, close of the last, sum of
    volumes. Same timeframe: returned unchanged.

    Raises:
        UsageError: as `check_resample`. DataError: a base candle off its timeframe's grid.
    """
    import numpy as np

    from core.model.candles import Candles

    if not check_resample(candles.timeframe, target, flag):
        return candles
    base_ms, target_ms = timeframe_ms(candles.timeframe), timeframe_ms(target)
    slots = target_ms // base_ms
    ts = candles.ts
    if len(ts) == 0:
        return Candles(candles.symbol, candles.market, target, *(a[:0] for a in (
            ts, candles.open, candles.high, candles.low, candles.close, candles.volume)))
    offset = floor_ts(0, target) % target_ms if target.endswith("w") else 0
    off_grid = (ts - offset) % base_ms != 0
    if off_grid.any():
        bad = int(ts[np.flatnonzero(off_grid)[0]])
        raise DataError(f"{candles.symbol} {candles.timeframe}: candle {bad} does not open on the "
                        f"{candles.timeframe} grid: cannot resample into {target}")
    bucket = (ts - offset) // target_ms * target_ms + offset
    starts = np.concatenate(([0], np.flatnonzero(np.diff(bucket)) + 1))
    counts = np.diff(np.concatenate((starts, [len(ts)])))
    ends = starts + counts - 1
    keep = counts == slots
    s, e = starts[keep], ends[keep]
    return Candles(candles.symbol, candles.market, target, bucket[s].astype(np.int64),
                   np.ascontiguousarray(candles.open[s]),
                   np.maximum.reduceat(candles.high, starts)[keep],
                   np.minimum.reduceat(candles.low, starts)[keep],
                   np.ascontiguousarray(candles.close[e]),
                   np.add.reduceat(candles.volume, starts)[keep])
