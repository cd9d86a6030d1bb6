"""1m -> higher timeframe aggregation of closed candles (core.data.aggregate)."""

from __future__ import annotations

import math

import numpy as np

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.data.aggregate import Aggregator, aggregate
from core.data.feed import ClosedCandle
from core.errors import DataError

M = 60_000
T0 = 1_704_067_200_000  # 2024-01-01T00:00Z, on every grid up to 1d
SYM = "BTC/USDT:USDT"


def c1m(i: int, o: float, h: float, low: float, c: float, v: float, source: str = "live") -> ClosedCandle:
    return ClosedCandle(SYM, "1m", T0 + i * M, o, h, low, c, v, source)


def test_five_minutes_by_hand():
    rows = [c1m(0, 10, 12, 9, 11, 1), c1m(1, 11, 15, 10, 14, 2), c1m(2, 14, 14, 7, 8, 3),
            c1m(3, 8, 9, 8, 9, 4), c1m(4, 9, 10, 8.5, 9.5, 5, "backfill")]
    agg = Aggregator(SYM, "1m", "5m")
    out = [o for r in rows for o in agg.push(r)]
    assert out == [ClosedCandle(SYM, "5m", T0, 10, 15, 7, 9.5, 15, "backfill", True)]


def test_bucket_is_emitted_only_when_its_last_minute_closes():
    agg = Aggregator(SYM, "1m", "5m")
    assert [agg.push(c1m(i, 10, 11, 9, 10, 1)) for i in range(4)] == [[], [], [], []]
    assert len(agg.push(c1m(4, 10, 11, 9, 10, 1))) == 1


def test_one_hour_from_sixty_minutes():
    candles = [c1m(i, 100 + i, 101 + i, 99 + i, 100.5 + i, 1.0) for i in range(120)]
    out = aggregate(candles, "1h")
    assert [c.ts for c in out] == [T0, T0 + 60 * M]
    first = out[0]
    assert (first.open, first.high, first.low, first.close, first.volume) == (100, 160, 99, 159.5, 60.0)
    assert all(c.complete and c.timeframe == "1h" for c in out)


def test_bucket_with_a_missing_minute_is_emitted_flagged_when_its_period_passed():
    # minute 2 never came; minute 5 (next bucket) proves the 00:00 bucket's period passed
    rows = [c1m(i, 10, 10 + i, 5, 10, 1) for i in (0, 1, 3, 4)]
    agg = Aggregator(SYM, "1m", "5m")
    out = [o for r in rows for o in agg.push(r)]
    # the last slot (minute 4) arrived: emitted at once, flagged incomplete
    assert out == [ClosedCandle(SYM, "5m", T0, 10, 14, 5, 10, 4, "live", False)]

    agg = Aggregator(SYM, "1m", "5m")
    assert [o for r in [c1m(0, 10, 11, 9, 10, 1), c1m(1, 10, 12, 9, 10, 1)] for o in agg.push(r)] == []
    # minutes 2..4 missing; the next bucket's first minute closes the pending one
    out = agg.push(c1m(5, 20, 21, 19, 20, 1))
    assert out == [ClosedCandle(SYM, "5m", T0, 10, 12, 9, 10, 2, "live", False)]
    assert agg.flush() == [ClosedCandle(SYM, "5m", T0 + 5 * M, 20, 21, 19, 20, 1, "live", False)]
    assert agg.flush() == []


def test_a_whole_missing_bucket_is_not_invented():
    rows = [c1m(i, 10, 11, 9, 10, 1) for i in list(range(5)) + list(range(10, 15))]
    assert [c.ts for c in aggregate(rows, "5m")] == [T0, T0 + 10 * M]


def test_rejects_bad_input():
    with pytest.raises(ValueError, match="whole multiple"):
        Aggregator(SYM, "5m", "7m")
    with pytest.raises(ValueError, match="whole multiple"):
        Aggregator(SYM, "5m", "5m")
    agg = Aggregator(SYM, "1m", "5m")
    agg.push(c1m(1, 10, 11, 9, 10, 1))
    with pytest.raises(DataError, match="not after"):
        agg.push(c1m(1, 10, 11, 9, 10, 1))
    with pytest.raises(ValueError, match="got a"):
        agg.push(ClosedCandle("ETH/USDT", "1m", T0 + 9 * M, 1, 1, 1, 1, 1, "live"))


def test_weekly_buckets_open_on_monday():
    # 2024-01-01 is a Monday; daily candles Mon..Sun make one complete week
    days = [ClosedCandle(SYM, "1d", T0 + i * 86_400_000, 10, 11, 9, 10, 1, "replay") for i in range(7)]
    out = aggregate(days, "1w")
    assert [(c.ts, c.complete, c.volume) for c in out] == [(T0, True, 7.0)]


@st.composite
def minute_series(draw):
    """Time-ordered 1m candles over up to 3 hours with a few holes: the structure (start, holes, sources)
    is drawn by hypothesis, the prices come from a drawn seed (fast to generate)."""
    n = draw(st.integers(min_value=1, max_value=180))
    missing = draw(st.sets(st.integers(min_value=0, max_value=n - 1), max_size=12))  # a few holes, like real data
    present = [i not in missing for i in range(n)]
    sources = draw(st.lists(st.sampled_from(["live", "backfill"]), min_size=len(present), max_size=len(present)))
    start = draw(st.integers(min_value=0, max_value=59))
    rng = np.random.default_rng(draw(st.integers(min_value=0, max_value=2**32 - 1)))
    a, b = rng.uniform(1, 1e5, len(present)), rng.uniform(1, 1e5, len(present))
    up, down, vol = rng.uniform(0, 100, len(present)), rng.uniform(0, 0.99, len(present)), rng.exponential(50, len(present))
    return [
        c1m(start + i, float(a[i]), float(max(a[i], b[i]) + up[i]), float(min(a[i], b[i]) * (1 - down[i])),
            float(b[i]), float(vol[i]), sources[i])
        for i, keep in enumerate(present) if keep
    ]


def _same(a: list[ClosedCandle], b: list[ClosedCandle]) -> None:
    assert [(c.ts, c.open, c.high, c.low, c.close, c.complete, c.source, c.timeframe) for c in a] == \
           [(c.ts, c.open, c.high, c.low, c.close, c.complete, c.source, c.timeframe) for c in b]
    for x, y in zip(a, b):
        assert math.isclose(x.volume, y.volume, rel_tol=1e-9, abs_tol=1e-6)


@settings(max_examples=150, deadline=None)
@given(minute_series())
def test_aggregate_of_aggregate_equals_direct_aggregate(candles):
    _same(aggregate(aggregate(candles, "5m", flush=True), "15m", flush=True), aggregate(candles, "15m", flush=True))
    _same(aggregate(aggregate(candles, "15m", flush=True), "1h", flush=True), aggregate(candles, "1h", flush=True))


@settings(max_examples=100, deadline=None)
@given(minute_series())
def test_buckets_are_ohlcv_of_their_minutes(candles):
    for bucket in aggregate(candles, "5m", flush=True):
        inside = [c for c in candles if bucket.ts <= c.ts < bucket.ts + 5 * M]
        assert inside, "no bucket without candles"
        assert bucket.open == inside[0].open and bucket.close == inside[-1].close
        assert bucket.high == max(c.high for c in inside) and bucket.low == min(c.low for c in inside)
        assert math.isclose(bucket.volume, sum(c.volume for c in inside), rel_tol=1e-9, abs_tol=1e-6)
        assert bucket.complete == (len(inside) == 5)
