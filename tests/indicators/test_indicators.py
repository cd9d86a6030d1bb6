"""core.indicators against TA-Lib and plain-Python references on real BTC/USDT 1h candles.

TA-Lib comparisons: same NaN warm-up positions, values within 1e-9 relative
(observed: ~1e-15 for SMA/EMA/RSI/ATR/ADX, exact for MAX/MIN/TRANGE, ~1e-12 for BBANDS,
whose rolling E[x^2] - E[x]^2 loses digits where ours uses a two-pass sigma).
"""

from __future__ import annotations

import gzip
import json
import math

import numpy as np
import pytest

from core.indicators import (
    adx, atr, bollinger, donchian, ema, rolling_vwap, rsi, sma, sma_exact, supertrend,
    true_range,
)
from tests.support.shared_data import shared_file

talib = pytest.importorskip("talib")

PERIODS = (5, 14, 50)
RTOL = 1e-9
ATOL = 1e-12


@pytest.fixture(scope="module")
def btc():
    """BTC/USDT 1h: dict of contiguous float64 columns ts, open, high, low, close, volume."""
    path = shared_file("binance-spot/BTC_USDT-1h.json.gz")
    with gzip.open(path, "rt") as f:
        rows = np.asarray(json.load(f), dtype=np.float64)
    assert rows.shape == (45_024, 6)
    names = ("ts", "open", "high", "low", "close", "volume")
    return {k: np.ascontiguousarray(rows[:, i]) for i, k in enumerate(names)}


@pytest.fixture(scope="module", autouse=True)
def talib_defaults():
    """Pin TA-Lib's global settings our seeding mirrors: unstable period 0, default mode."""
    names = ("EMA", "RSI", "ATR", "ADX")
    saved = {n: talib.get_unstable_period(n) for n in names}
    saved_compat = talib.get_compatibility()
    for n in names:
        talib.set_unstable_period(n, 0)
    talib.set_compatibility(0)
    yield
    for n, v in saved.items():
        talib.set_unstable_period(n, v)
    talib.set_compatibility(saved_compat)


def assert_matches(ours, ref, warmup):
    """Same NaN positions (leading `warmup` NaNs, none after), values within RTOL."""
    ours_nan = np.isnan(ours)
    assert np.array_equal(ours_nan, np.isnan(ref))
    assert ours_nan[:warmup].all()
    assert not ours_nan[warmup:].any()
    np.testing.assert_allclose(ours[warmup:], ref[warmup:], rtol=RTOL, atol=ATOL)


# --- TA-Lib cross-checks ---------------------------------------------------------------


@pytest.mark.parametrize("n", PERIODS)
def test_sma_matches_talib(btc, n):
    assert_matches(sma(btc["close"], n), talib.SMA(btc["close"], n), n - 1)


@pytest.mark.parametrize("n", PERIODS)
def test_ema_matches_talib(btc, n):
    assert_matches(ema(btc["close"], n), talib.EMA(btc["close"], n), n - 1)


@pytest.mark.parametrize("n", PERIODS)
def test_rsi_matches_talib(btc, n):
    assert_matches(rsi(btc["close"], n), talib.RSI(btc["close"], n), n)


def test_true_range_matches_talib(btc):
    h, l, c = btc["high"], btc["low"], btc["close"]
    assert_matches(true_range(h, l, c), talib.TRANGE(h, l, c), 1)


@pytest.mark.parametrize("n", (1,) + PERIODS)
def test_atr_matches_talib(btc, n):
    h, l, c = btc["high"], btc["low"], btc["close"]
    assert_matches(atr(h, l, c, n), talib.ATR(h, l, c, n), n)


@pytest.mark.parametrize("n", PERIODS + (20,))
@pytest.mark.parametrize("k", (1.0, 2.0, 2.5))
def test_bollinger_matches_talib_bbands(btc, n, k):
    c = btc["close"]
    upper, middle, lower = bollinger(c, n, k)
    ref_u, ref_m, ref_l = talib.BBANDS(c, n, k, k, 0)
    assert_matches(upper, ref_u, n - 1)
    assert_matches(middle, ref_m, n - 1)
    assert_matches(lower, ref_l, n - 1)


@pytest.mark.parametrize("n", PERIODS)
def test_donchian_matches_talib_max_min(btc, n):
    h, l = btc["high"], btc["low"]
    upper, lower, middle = donchian(h, l, n)
    ref_u, ref_l = talib.MAX(h, n), talib.MIN(l, n)
    assert_matches(upper, ref_u, n - 1)
    assert_matches(lower, ref_l, n - 1)
    assert np.array_equal(upper[n - 1:], ref_u[n - 1:])  # a max/min is exact
    assert np.array_equal(lower[n - 1:], ref_l[n - 1:])
    assert_matches(middle, (ref_u + ref_l) / 2.0, n - 1)


@pytest.mark.parametrize("n", PERIODS)
def test_adx_matches_talib(btc, n):
    h, l, c = btc["high"], btc["low"], btc["close"]
    assert_matches(adx(h, l, c, n), talib.ADX(h, l, c, n), 2 * n - 1)


def test_leading_nans_start_like_talib(btc):
    """TA-Lib's wrapper starts at the first all-finite row; so do our finite runs."""
    h, l, c = (btc[k][:3000].copy() for k in ("high", "low", "close"))
    c[:7] = np.nan
    h[:3] = np.nan
    n = 14
    pairs = [
        (sma(c, n), talib.SMA(c, n)),
        (ema(c, n), talib.EMA(c, n)),
        (rsi(c, n), talib.RSI(c, n)),
        (atr(h, l, c, n), talib.ATR(h, l, c, n)),
        (adx(h, l, c, n), talib.ADX(h, l, c, n)),
        (bollinger(c, n, 2.0)[0], talib.BBANDS(c, n, 2.0, 2.0, 0)[0]),
    ]
    for ours, ref in pairs:
        assert np.array_equal(np.isnan(ours), np.isnan(ref))
        np.testing.assert_allclose(ours, ref, rtol=RTOL, atol=ATOL)  # NaNs compare equal
    assert np.isnan(rsi(c, n)[: 7 + n]).all() and not np.isnan(rsi(c, n)[7 + n])


# --- sma_exact: the spec's fresh sum ----------------------------------------------------


def python_fresh_sma(x, n):
    out = [math.nan] * len(x)
    for t in range(n - 1, len(x)):
        total = 0.0
        for j in range(t - n + 1, t + 1):  # oldest first
            total += x[j]
        out[t] = total / n
    return np.array(out)


@pytest.mark.parametrize("n", (1, 7, 50))
def test_sma_exact_is_bit_identical_to_fresh_python_loop(btc, n):
    c = btc["close"]
    ours = sma_exact(c, n)
    ref = python_fresh_sma(c.tolist(), n)
    assert np.array_equal(ours, ref, equal_nan=True)
    assert np.isnan(ours[: n - 1]).all() and not np.isnan(ours[n - 1:]).any()


def test_sma_exact_differs_from_rolling_sma_in_the_last_bits(btc):
    """The reason sma_exact exists: the rolling sum (TA-Lib, `sma`) drifts by ulps."""
    c = btc["close"]
    exact, rolling = sma_exact(c, 7), sma(c, 7)
    assert (exact[6:] != rolling[6:]).any()
    np.testing.assert_allclose(exact[6:], rolling[6:], rtol=1e-12)


def test_sma_exact_does_not_depend_on_where_history_starts(btc):
    c = btc["close"]
    assert np.array_equal(sma_exact(c, 7)[1000:], sma_exact(c[990:], 7)[10:])


# --- SuperTrend -------------------------------------------------------------------------


def python_supertrend(high, low, close, atr_period, mult):
    """Literal transcription of Pine v5 `pine_supertrend` (direction signs flipped to
    +1 = up), on talib.ATR; NaN before the first ATR."""
    a = talib.ATR(high, low, close, atr_period).tolist()
    high, low, close = high.tolist(), low.tolist(), close.tolist()
    m = len(close)
    line = [math.nan] * m
    direction = [math.nan] * m
    up_prev = lo_prev = st_prev = math.nan
    for i in range(m):
        if math.isnan(a[i]):
            continue
        src = (high[i] + low[i]) / 2.0
        up = src + mult * a[i]
        lo = src - mult * a[i]
        prev_lo = 0.0 if math.isnan(lo_prev) else lo_prev  # nz()
        prev_up = 0.0 if math.isnan(up_prev) else up_prev
        lo = lo if (lo > prev_lo or close[i - 1] < prev_lo) else prev_lo
        up = up if (up < prev_up or close[i - 1] > prev_up) else prev_up
        if math.isnan(a[i - 1]):
            d = 1  # Pine: down
        elif st_prev == prev_up:
            d = -1 if close[i] > up else 1
        else:
            d = 1 if close[i] < lo else -1
        st = lo if d == -1 else up
        line[i], direction[i] = st, -d
        up_prev, lo_prev, st_prev = up, lo, st
    return np.array(line), np.array(direction, dtype=np.float64)


def test_supertrend_hand_example():
    # atr_period = 2, multiplier = 1.
    #  t   H   L   C     TR                                  ATR (Wilder, TA-Lib seed)
    #  0  10   8   9     -                                    -
    #  1  11   9  10     max(2, |9-11|, |9-9|)      = 2       -
    #  2  12  10  11     max(2, |10-12|, |10-10|)   = 2       (2+2)/2       = 2
    #  3  14  11  13.5   max(3, |11-14|, |11-11|)   = 3       (2*1+3)/2     = 2.5
    #  4  12   9   9.5   max(3, |13.5-12|, |13.5-9|) = 4.5    (2.5+4.5)/2   = 3.5
    #  5  10   7   7.5   max(3, |9.5-10|, |9.5-7|)  = 3       (3.5+3)/2     = 3.25
    # t=2: hl2 11, basic 13/9 -> first bar: final = basic, direction down, line = 13.
    # t=3: hl2 12.5, basic 15/10. upper: 15 < 13? no; C2=11 > 13? no -> keep 13.
    #      lower: 10 > 9 -> 10. Was down; C3=13.5 > 13 -> up, line = lower = 10.
    # t=4: hl2 10.5, basic 14/7. upper: 14 < 13? no; C3=13.5 > 13 -> reset to 14.
    #      lower: 7 > 10? no; C3 < 10? no -> keep 10. Was up; C4=9.5 < 10 -> down, line 14.
    # t=5: hl2 8.5, basic 11.75/5.25. upper: 11.75 < 14 -> 11.75.
    #      lower: 5.25 > 10? no; C4=9.5 < 10 -> reset to 5.25. Was down; 7.5 > 11.75? no.
    high = np.array([10.0, 11, 12, 14, 12, 10])
    low = np.array([8.0, 9, 10, 11, 9, 7])
    close = np.array([9.0, 10, 11, 13.5, 9.5, 7.5])
    nan = np.nan
    assert np.array_equal(atr(high, low, close, 2), [nan, nan, 2, 2.5, 3.5, 3.25], equal_nan=True)
    line, direction = supertrend(high, low, close, 2, 1.0)
    assert np.array_equal(line, [nan, nan, 13, 10, 14, 11.75], equal_nan=True)
    assert np.array_equal(direction, [nan, nan, -1, 1, -1, -1], equal_nan=True)


@pytest.mark.parametrize("atr_period,mult", [(10, 3.0), (14, 2.0), (7, 1.5)])
def test_supertrend_matches_python_reference(btc, atr_period, mult):
    h, l, c = btc["high"], btc["low"], btc["close"]
    line, direction = supertrend(h, l, c, atr_period, mult)
    ref_line, ref_dir = python_supertrend(h, l, c, atr_period, mult)
    assert_matches(line, ref_line, atr_period)
    assert np.array_equal(direction, ref_dir, equal_nan=True)
    flips = np.count_nonzero(np.diff(direction[atr_period:]))
    assert flips > 100  # the real series really exercises both band rules


# --- rolling VWAP -----------------------------------------------------------------------


def python_vwap(high, low, close, volume, n):
    out = [math.nan] * len(close)
    tp = [(h + l + c) / 3.0 for h, l, c in zip(high, low, close)]
    for t in range(n - 1, len(close)):
        pv = sum(tp[j] * volume[j] for j in range(t - n + 1, t + 1))
        v = sum(volume[j] for j in range(t - n + 1, t + 1))
        if v != 0.0:
            out[t] = pv / v
    return np.array(out)


def test_rolling_vwap_hand_example():
    # n = 2, tp = (H+L+C)/3:
    #  t   H   L   C   V   tp     vwap
    #  0  12   6   9   1    9     - (warm-up)
    #  1  15   9  12   3   12     (9*1 + 12*3) / (1+3) = 45/4 = 11.25
    #  2   9   6   6   0    7     (12*3 + 7*0) / (3+0) = 12
    #  3   9   6   6   0    7     volume sum 0 -> NaN
    #  4  21  15  18   2   18     (7*0 + 18*2) / (0+2) = 18
    high = np.array([12.0, 15, 9, 9, 21])
    low = np.array([6.0, 9, 6, 6, 15])
    close = np.array([9.0, 12, 6, 6, 18])
    volume = np.array([1.0, 3, 0, 0, 2])
    nan = np.nan
    out = rolling_vwap(high, low, close, volume, 2)
    assert np.array_equal(out, [nan, 11.25, 12, nan, 18], equal_nan=True)


@pytest.mark.parametrize("n", (1, 24, 168))
def test_rolling_vwap_matches_python_reference(btc, n):
    h, l, c, v = btc["high"], btc["low"], btc["close"], btc["volume"]
    ours = rolling_vwap(h, l, c, v, n)
    ref = python_vwap(h.tolist(), l.tolist(), c.tolist(), v.tolist(), n)
    assert np.array_equal(np.isnan(ours), np.isnan(ref))
    assert np.isnan(ours[: n - 1]).all()
    np.testing.assert_allclose(ours, ref, rtol=RTOL, atol=ATOL)
    if n == 1:  # the file has zero-volume candles: those windows are NaN
        assert np.isnan(ours).sum() == np.count_nonzero(v == 0.0) > 0


# --- missing data and argument checks --------------------------------------------------


def _all_outputs(h, l, c, v):
    n = 5
    bb = bollinger(c, n, 2.0)
    st = supertrend(h, l, c, n, 3.0)
    return {
        "sma": sma(c, n), "sma_exact": sma_exact(c, n), "ema": ema(c, n), "rsi": rsi(c, n),
        "true_range": true_range(h, l, c), "atr": atr(h, l, c, n),
        "bb_upper": bb[0], "bb_middle": bb[1], "bb_lower": bb[2],
        "st_line": st[0], "st_direction": st[1],
        "vwap": rolling_vwap(h, l, c, v, n), "adx": adx(h, l, c, n),
    }


@pytest.mark.parametrize("bad", (np.nan, np.inf, -np.inf))
def test_missing_row_splits_series_into_independent_runs(btc, bad):
    cols = [btc[k][:400].copy() for k in ("high", "low", "close", "volume")]
    k = 150
    cols[2][k] = bad  # one bad close: the whole row is missing for close-based indicators
    whole = _all_outputs(*cols)
    before = _all_outputs(*(x[:k] for x in cols))
    after = _all_outputs(*(x[k + 1:] for x in cols))
    for name, w in whole.items():
        expected = np.concatenate([before[name], [np.nan], after[name]])
        assert np.array_equal(w, expected, equal_nan=True), name
        assert not np.isnan(w[k + 1 + 2 * 5:]).any(), name  # recovers after its warm-up
    # Donchian reads only high/low: the bad close does not touch it; a bad high does.
    h, l = cols[0], cols[1]
    clean = donchian(h, l, 5)
    h_bad = h.copy()
    h_bad[k] = bad
    for w, b, a, c_ in zip(donchian(h_bad, l, 5), donchian(h[:k], l[:k], 5),
                           donchian(h[k + 1:], l[k + 1:], 5), clean):
        assert np.array_equal(w, np.concatenate([b, [np.nan], a]), equal_nan=True)
        assert np.isnan(w[k:k + 5]).all() and np.array_equal(w[k + 5:], c_[k + 5:])


def test_flat_series_rsi_is_neutral_and_bands_collapse():
    x = np.full(30, 100.0)
    r = rsi(x, 14)
    assert np.isnan(r[:14]).all() and (r[14:] == 50.0).all()
    upper, middle, lower = bollinger(x, 20, 2.0)
    assert (upper[19:] == 100.0).all() and (lower[19:] == 100.0).all()
    assert (adx(x, x, x, 5)[9:] == 0.0).all()


def test_short_inputs_are_all_nan():
    x = np.arange(1.0, 5.0)
    for out in (sma(x, 5), sma_exact(x, 5), ema(x, 5), rsi(x, 4), atr(x, x, x, 4), adx(x, x, x, 3),
                rolling_vwap(x, x, x, x, 5), supertrend(x, x, x, 4, 3.0)[0], donchian(x, x, 5)[0]):
        assert np.isnan(out).all()
    assert sma(np.empty(0), 3).shape == (0,)


@pytest.mark.parametrize("call", [
    lambda x: sma(x, 0), lambda x: sma_exact(x, 0), lambda x: ema(x, 0), lambda x: rsi(x, 1),
    lambda x: atr(x, x, x, 0), lambda x: adx(x, x, x, 1), lambda x: bollinger(x, 5, -1.0),
    lambda x: donchian(x, x, 0), lambda x: supertrend(x, x, x, 0, 3.0),
    lambda x: supertrend(x, x, x, 10, np.nan), lambda x: rolling_vwap(x, x, x, x, 0),
    lambda x: atr(x, x[:-1], x, 3),
])
def test_bad_arguments_raise(call):
    with pytest.raises(ValueError):
        call(np.arange(1.0, 11.0))
