"""The per-candle quality rules for streams (core.data.candle_guard): same findings as the batch
rules of core.data.quality on the real series, one candle at a time."""

from __future__ import annotations

import math

import numpy as np
import pytest

from core.data.candle_guard import (
    INVALID_OHLC,
    OPEN_GAP_SPIKE,
    PRICE_SPIKE,
    ZERO_VOLUME,
    CandleQualityGuard,
    QualityFinding,
)
from core.data.freqtrade import read_data_file
from core.data.quality import check_candles, find_spikes
from core.model.candles import Candles
from tests.support.shared_data import shared_file

H = 3_600_000
ETH_BAD_OPEN_MS = 1_503_374_400_000          # 2017-08-22 04:00 UTC: open 144.21 after a close of 280.00


def _feed(guard: CandleQualityGuard, c: Candles) -> list[QualityFinding]:
    cols = (c.ts.tolist(), c.open.tolist(), c.high.tolist(), c.low.tolist(), c.close.tolist(), c.volume.tolist())
    return [f for row in zip(*cols) for f in guard.check(*row)]


def _zero_run_starts(c: Candles) -> list[int]:
    zero = (c.volume == 0).astype(np.int8)
    return c.ts[np.flatnonzero(np.diff(np.concatenate(([0], zero))) == 1)].tolist()


@pytest.mark.parametrize("name", ["ETH_USDT-1h.json.gz", "ETH_USDT-4h.json.gz"])
def test_real_eth_series_gives_the_batch_findings(name: str) -> None:
    _, c = read_data_file(shared_file(f"binance-spot/{name}"))
    q = check_candles(c)
    guard = CandleQualityGuard(c.symbol, c.timeframe)
    found = _feed(guard, c)
    by = {k: [f.ts for f in found if f.kind == k] for k in (OPEN_GAP_SPIKE, PRICE_SPIKE, ZERO_VOLUME, INVALID_OHLC)}
    assert by[OPEN_GAP_SPIKE] == [g.ts_ms for g in q.open_gaps] == [ETH_BAD_OPEN_MS]
    assert by[PRICE_SPIKE] == [s.ts_ms for s in q.spikes] and len(q.spikes) > 5
    assert by[ZERO_VOLUME] == _zero_run_starts(c) and len(by[ZERO_VOLUME]) == q.zero_volume.runs > 0
    assert by[INVALID_OHLC] == []
    assert (guard.judged, guard.skipped) == (len(c), 0)
    [og] = [f for f in found if f.kind == OPEN_GAP_SPIKE]
    assert (og.symbol, og.timeframe, og.label) == ("ETH/USDT", c.timeframe, "open-gap spike")
    assert "open 144.21 is -48.5% from the previous close 280" in og.detail, og.detail


def test_real_gap_move_is_not_flagged_but_an_isolated_open_is() -> None:
    g = CandleQualityGuard("X/USDT", "1h", spike_k=None)
    assert g.check(0, 100, 101, 99, 100, 5) == []                       # the first candle: nothing to compare
    assert g.check(H, 130, 132, 129, 131, 5) == []                      # gap move: open and close +30 %
    [f] = g.check(2 * H, 80, 132, 80, 128, 5)                           # open -39 %, close -2 %: bad open
    assert (f.kind, f.ts) == (OPEN_GAP_SPIKE, 2 * H)
    assert "previous close 131 (candle of 1970-01-01 01:00 UTC)" in f.detail
    assert g.check(3 * H, 128, 200, 120, 180, 5) == []                  # close +41 %: no open-gap rule


def test_invalid_candles_are_reported_and_not_used_as_the_previous_one() -> None:
    g = CandleQualityGuard("X/USDT", "1h")
    assert g.check(0, 100, 101, 99, 100, 5) == []
    cases = [
        ((100, 99, 101, 100, 5), "high < low"),
        ((100, 101, 99, 102, 5), "open/close outside [low, high]"),
        ((0, 101, 99, 100, 5), "non-positive price"),
        ((100, 101, 99, 100, -1), "negative volume"),
        ((100, 101, 99, math.nan, 5), "NaN/null/inf value"),
        ((100, math.inf, 99, 100, 5), "NaN/null/inf value"),
    ]
    for i, (row, reason) in enumerate(cases, start=1):
        [f] = g.check(i * H, *row)
        assert f.kind == INVALID_OHLC and f.label == "invalid OHLC" and reason in f.detail, (row, f)
    [f] = g.check(10 * H, 50, 101, 50, 99, 5)        # judged against the close of candle 0 (100), not the bad ones
    assert f.kind == OPEN_GAP_SPIKE and "(candle of 1970-01-01 00:00 UTC)" in f.detail


def test_a_candle_not_after_the_last_one_is_not_judged_again() -> None:
    g = CandleQualityGuard("X/USDT", "1h")
    g.check(0, 100, 101, 99, 100, 5)
    assert [f.kind for f in g.check(H, 60, 101, 60, 100, 5)] == [OPEN_GAP_SPIKE]
    assert g.check(H, 60, 101, 60, 100, 5) == []      # re-delivered
    assert g.check(0, 60, 101, 60, 100, 5) == []      # out of order
    assert (g.judged, g.skipped, g.last_ts) == (2, 2, H)


def test_zero_volume_is_reported_once_per_run() -> None:
    g = CandleQualityGuard("X/USDT", "1h")
    vols = [1, 0, 0, 0, 2, 0, 3]
    found = [f for i, v in enumerate(vols) for f in g.check(i * H, 100, 101, 99, 100, v)]
    assert [(f.kind, f.ts) for f in found] == [(ZERO_VOLUME, H), (ZERO_VOLUME, 5 * H)]
    off = CandleQualityGuard("X/USDT", "1h", zero_volume=False)
    assert [f for i, v in enumerate(vols) for f in off.check(i * H, 100, 101, 99, 100, v)] == []


def test_price_spike_is_judged_like_find_spikes() -> None:
    n, a = 120, 0.001
    r = np.where(np.arange(1, n) % 2 == 0, a, -a)
    r[79] = 0.0085                                     # candle 80: 8.5 sigma
    close = 100.0 * np.exp(np.concatenate(([0.0], np.cumsum(r))))
    ts = np.arange(n, dtype=np.int64) * H
    want = [s.ts_ms for s in find_spikes(ts, close, 8.0, 48)]
    assert want == [80 * H]
    for k, expect in ((8.0, want), (9.0, [])):
        g = CandleQualityGuard("X/USDT", "1h", spike_k=k, spike_window=48)
        got = [f for i in range(n) for f in g.check(int(ts[i]), close[i], close[i], close[i], close[i], 1.0)]
        assert [f.ts for f in got if f.kind == PRICE_SPIKE] == expect
    g = CandleQualityGuard("X/USDT", "1h", spike_k=None)
    assert [f for i in range(n) for f in g.check(int(ts[i]), close[i], close[i], close[i], close[i], 1.0)] == []


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"open_gap_min_jump": 0.1, "open_gap_max_close_move": 0.2}, "0 < max_close_move < min_jump"),
        ({"open_gap_max_close_move": 0.0}, "0 < max_close_move < min_jump"),
        ({"spike_k": 0.0}, "spike k must be > 0"),
        ({"spike_window": 1}, "window >= 2"),
    ],
)
def test_bad_thresholds_are_refused(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        CandleQualityGuard("X/USDT", "1h", **kwargs)
