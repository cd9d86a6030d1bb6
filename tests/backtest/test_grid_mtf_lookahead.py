"""grid_mtf never reads a higher-timeframe candle that has not closed (docs/grid_family.md).

Randomised: on synthetic 1h random walks, the quote of every base candle t (take-profit,
levels, gate, whether it trades) is computed by the event strategy (driven candle by candle
as the engines do) and by the fast engine's arrays; then every candle from a random t0 on —
the rest of t0's HTF bucket included — is replaced by other random candles, and the quotes of
candles 0 … t0 must not change (to the bit). Also: the HTF SMA changes only at the first base
candle of a bucket (when the previous bucket has just completed), a bucket with a missing base
candle is no HTF candle, and the two engines quote identically.
"""

from __future__ import annotations

import numpy as np
import pytest

from core.backtest.fast.grid_family import quote_arrays
from core.model.candles import Candles
from core.strategies import registry
from core.strategies.base import CandleHistory

H = 3_600_000
PARAMS = {"ma_period": 3, "num_levels": 2, "envelope_start": 0.02, "envelope_step": 0.01, "sl_percent": 0.2,
          "htf_hours": 4, "trend_period": 5}


def walk(rng: np.random.Generator, n: int, start_ts: int = 1_600_000_000_000 // (4 * H) * (4 * H),
         price: float = 100.0) -> np.ndarray:
    """n random valid 1h candles [ts, o, h, l, c, v]."""
    c = price * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
    o = np.concatenate([[price], c[:-1]])
    h = np.maximum(o, c) * (1 + rng.uniform(0, 0.005, n))
    lo = np.minimum(o, c) * (1 - rng.uniform(0, 0.005, n))
    ts = start_ts + H * np.arange(n)
    return np.column_stack([ts, o, h, lo, c, np.ones(n)])


def event_quotes(rows: np.ndarray, strategy: str = "grid_mtf", params: dict = PARAMS) -> list[tuple]:
    """(trades, take_profit, levels, gate) of every candle, from the strategy as the engines drive it."""
    strat = registry.create(strategy, params)
    strat.bind_market("1h")
    hist = CandleHistory()
    out = []
    for ts, o, h, lo, c, _ in rows.tolist():
        ok = strat.on_candle_open(hist)
        out.append((ok, strat.take_profit, tuple(strat.levels), strat.allow_new_cycle) if ok else (False,))
        hist.append(int(ts), o, h, lo, c)
    return out


def fast_quotes(rows: np.ndarray, strategy: str = "grid_mtf", params: dict = PARAMS):
    cd = Candles.from_rows("X/USDT", "spot", "1h", rows)
    f = np.ascontiguousarray
    return quote_arrays(strategy, registry.create(strategy, params).params, f(cd.ts), f(cd.open), f(cd.high),
                        f(cd.low), f(cd.close), "1h")


@pytest.mark.parametrize("strategy", ("grid_mtf", "grid_mtf_short"))
@pytest.mark.parametrize("seed", range(4))
def test_future_base_candles_do_not_change_earlier_quotes(strategy: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    rows = walk(rng, 400)
    base_ev = event_quotes(rows, strategy)
    base_m, _, base_gate = fast_quotes(rows, strategy)
    assert sum(q[0] for q in base_ev) > 200
    for t0 in rng.integers(30, 390, 12).tolist():
        alt = rows.copy()
        other = walk(np.random.default_rng(seed * 1000 + t0), 400 - t0, int(rows[t0, 0]), float(rows[t0, 1]) * 1.3)
        alt[t0:] = other
        ev = event_quotes(alt, strategy)
        m, _, gate = fast_quotes(alt, strategy)
        assert ev[: t0 + 1] == base_ev[: t0 + 1], t0                       # event strategy: bit-identical
        assert np.array_equal(m[: t0 + 1], base_m[: t0 + 1], equal_nan=True), t0
        assert np.array_equal(gate[: t0 + 1], base_gate[: t0 + 1]), t0
        assert ev[t0 + 1:] != base_ev[t0 + 1:]                               # (the change is visible later)


def test_htf_value_changes_only_when_a_bucket_completes_and_engines_agree() -> None:
    rows = walk(np.random.default_rng(7), 300)
    ev = event_quotes(rows)
    m, _, gate = fast_quotes(rows)
    for t, q in enumerate(ev):
        if q[0]:
            assert q[1] == m[t] and q[3] == bool(gate[t])
            assert q[2] == tuple(q[1] * f for f in (1 - 0.02, 1 - 0.03))
        else:
            assert np.isnan(m[t])
    first = next(t for t, q in enumerate(ev) if q[0])
    # K = max(N, T) = 5 complete 4h buckets: known from the open of the first candle of the 6th bucket
    assert first == 5 * 4 and int(rows[first, 0]) % (4 * H) == 0
    for t in range(first + 1, len(ev)):
        if int(rows[t, 0]) % (4 * H) != 0:
            assert ev[t][1] == ev[t - 1][1], t          # inside a bucket: the HTF SMA does not move
    # the HTF SMA at a bucket's first candle is the mean of the last 3 bucket closes (last slot closes)
    t = first + 8
    closes = rows[:t, 4]
    last_slots = [closes[j] for j in range(t) if (int(rows[j, 0]) + H) % (4 * H) == 0]
    acc = 0.0
    for x in last_slots[-3:]:
        acc += x
    assert ev[t][1] == acc / 3


def test_a_bucket_with_a_missing_base_candle_is_skipped() -> None:
    rows = walk(np.random.default_rng(3), 120)
    gap = np.delete(rows, 41, axis=0)                   # candle 41 lies in bucket [40h, 44h)
    ev_full, ev_gap = event_quotes(rows), event_quotes(gap)
    m_gap, _, _ = fast_quotes(gap)
    assert [q[1] if q[0] else None for q in ev_gap] == [None if np.isnan(x) else x for x in m_gap]
    strat = registry.create("grid_mtf", PARAMS)
    strat.bind_market("1h")
    hist = CandleHistory()
    for r in gap.tolist():
        hist.append(int(r[0]), *r[1:5])
    strat.on_candle_open(hist)
    full = registry.create("grid_mtf", PARAMS)
    full.bind_market("1h")
    hist2 = CandleHistory()
    for r in rows.tolist():
        hist2.append(int(r[0]), *r[1:5])
    full.on_candle_open(hist2)
    assert len(full.htf_close) == 30 and len(strat.htf_close) == 29
    assert ev_gap[:40] == ev_full[:40]
