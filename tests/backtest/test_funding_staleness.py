"""A funding rate older than two funding intervals gives no `funding` signal, in the backtest's
arrays and in the paper/live runner's stream alike (a live engine's stored rates end at its
start: without this rule it would trade on a days-old rate)."""

from __future__ import annotations

import math

import numpy as np

from core.indicators.signal_streams import funding_lookup
from core.strategies.funding import MAX_RATE_AGE_MS, Funding, rate_at_open

HOUR = 3_600_000


def test_a_stale_rate_is_no_rate_in_both_paths() -> None:
    ts = np.arange(48, dtype=np.int64) * HOUR
    funding = (np.array([0, 8 * HOUR], dtype=np.int64), np.array([0.001, -0.002]))
    arrays = rate_at_open(ts, funding, MAX_RATE_AGE_MS)
    live = funding_lookup(funding, MAX_RATE_AGE_MS)
    for t, r in zip(ts.tolist(), arrays.tolist()):
        assert (math.isnan(r) and math.isnan(live(t))) or r == live(t)
    fresh = [t for t, r in zip(ts.tolist(), arrays.tolist()) if not math.isnan(r)]
    assert fresh == [t for t in ts.tolist() if t - (8 * HOUR if t >= 8 * HOUR else 0) <= MAX_RATE_AGE_MS]
    assert max(fresh) == 8 * HOUR + MAX_RATE_AGE_MS                 # equality still counts as fresh
    # without an age limit (the open-interest lookups) the last rate stays
    assert not np.isnan(rate_at_open(ts, funding)).any()


def test_funding_signals_stop_when_the_rates_stop() -> None:
    p = {"funding_threshold": 0.0005, "sl_percent": 0.02, "tp_percent": 0.02, "max_hold_candles": 8}
    ts = np.arange(48, dtype=np.int64) * HOUR
    c = np.full(48, 100.0)
    funding = (np.array([0], dtype=np.int64), np.array([0.001]))   # one high rate, then nothing
    sig = Funding.signal_arrays(p, ts, c, c, c, c, c, funding=funding).sig
    assert sig[ts <= MAX_RATE_AGE_MS].tolist() == [-1] * int((ts <= MAX_RATE_AGE_MS).sum())
    assert not sig[ts > MAX_RATE_AGE_MS].any()
