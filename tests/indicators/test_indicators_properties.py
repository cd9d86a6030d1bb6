"""Property tests (hypothesis) for core.indicators on generated OHLCV candles.

Candles are valid (low <= open, close <= high, volume >= 0); prices are either arbitrary
floats or small integers (many ties and flat stretches, the edge cases of RSI/ADX/bands).
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from core.indicators import (
    adx, atr, bollinger, donchian, ema, rolling_vwap, rsi, sma, sma_exact, supertrend,
    true_range,
)

SETTINGS = settings(max_examples=60, deadline=None)

_float_price = st.floats(min_value=0.01, max_value=1e6, allow_nan=False, allow_infinity=False)
_int_price = st.integers(min_value=1, max_value=6).map(float)
_spread = st.floats(min_value=0.0, max_value=0.2)


@st.composite
def candles(draw, max_len=80):
    """(high, low, close, volume) float64 arrays of one generated length."""
    price = _int_price if draw(st.booleans()) else _float_price
    m = draw(st.integers(min_value=0, max_value=max_len))
    opens = np.array(draw(st.lists(price, min_size=m, max_size=m)), dtype=np.float64)
    closes = np.array(draw(st.lists(price, min_size=m, max_size=m)), dtype=np.float64)
    up = np.array(draw(st.lists(_spread, min_size=m, max_size=m)), dtype=np.float64)
    dn = np.array(draw(st.lists(_spread, min_size=m, max_size=m)), dtype=np.float64)
    vol = np.array(draw(st.lists(st.one_of(st.just(0.0), st.floats(0.0, 1e4, allow_subnormal=False)),
                                 min_size=m, max_size=m)), dtype=np.float64)
    high = np.maximum(opens, closes) * (1.0 + up)
    low = np.minimum(opens, closes) * (1.0 - dn)
    return high, low, closes, vol


periods = st.integers(min_value=1, max_value=12)


def assert_warmup(out, m, warmup):
    """Length m; NaN exactly on the first `warmup` rows (all NaN when m <= warmup)."""
    assert out.shape == (m,) and out.dtype == np.float64
    assert np.isnan(out[:warmup]).all()
    assert not np.isnan(out[warmup:]).any()


@SETTINGS
@given(candles(), periods)
def test_moving_averages_shape_warmup_and_range(c, n):
    high, low, close, _ = c
    m = close.shape[0]
    for f in (sma, sma_exact, ema):
        out = f(close, n)
        assert_warmup(out, m, n - 1)
        # an average lies within the range of the values it averages, up to rounding:
        # relative to the window for the fresh sum; relative to everything seen so far
        # for the rolling sum (`sma`) and the recursion (`ema`), which carry old rounding.
        for t in range(n - 1, m):
            seen = close[: t + 1]
            lo, hi = (seen.min(), seen.max()) if f is ema else (
                close[t - n + 1: t + 1].min(), close[t - n + 1: t + 1].max())
            tol = (1e-12 if f is sma_exact else 1e-9) * (hi if f is sma_exact else seen.max())
            assert lo - tol <= out[t] <= hi + tol


@SETTINGS
@given(st.lists(_float_price, max_size=60), periods)
def test_sma_exact_equals_fresh_python_sum(xs, n):
    x = np.array(xs, dtype=np.float64)
    expected = [math.nan] * len(xs)
    for t in range(n - 1, len(xs)):
        total = 0.0
        for j in range(t - n + 1, t + 1):
            total += xs[j]
        expected[t] = total / n
    assert np.array_equal(sma_exact(x, n), np.array(expected, dtype=np.float64), equal_nan=True)
    # the rolling sum agrees up to rounding carried from earlier (possibly larger) values
    scale = float(x.max()) if len(xs) else 0.0
    np.testing.assert_allclose(sma(x, n), sma_exact(x, n), rtol=1e-12, atol=1e-12 * n * len(xs) * scale)


@SETTINGS
@given(candles(), st.integers(min_value=2, max_value=12))
def test_rsi_within_0_100(c, n):
    close = c[2]
    out = rsi(close, n)
    assert_warmup(out, close.shape[0], n)
    valid = out[n:]
    assert ((valid >= 0.0) & (valid <= 100.0)).all()
    if close.shape[0] > n and (np.diff(close[: n + 1]) == 0).all():
        assert out[n] == 50.0  # flat start: neutral
    if close.shape[0] > n and (np.diff(close[: n + 1]) > 0).all():
        assert out[n] == 100.0


@SETTINGS
@given(candles(), periods)
def test_atr_and_true_range_non_negative(c, n):
    high, low, close, _ = c
    m = close.shape[0]
    tr = true_range(high, low, close)
    assert_warmup(tr, m, 1)
    assert (tr[1:] >= 0.0).all()
    assert (tr[1:] >= high[1:] - low[1:]).all()
    out = atr(high, low, close, n)
    assert_warmup(out, m, n)
    assert (out[n:] >= 0.0).all()
    if m > n:  # first value: mean of TR[1..n]
        assert math.isclose(out[n], tr[1: n + 1].mean(), rel_tol=1e-12, abs_tol=1e-12)


@SETTINGS
@given(candles(), periods, st.floats(min_value=0.0, max_value=4.0))
def test_bollinger_bands_ordered_and_symmetric(c, n, k):
    close = c[2]
    m = close.shape[0]
    upper, middle, lower = bollinger(close, n, k)
    for a in (upper, middle, lower):
        assert_warmup(a, m, n - 1)
    assert (lower[n - 1:] <= middle[n - 1:]).all() and (middle[n - 1:] <= upper[n - 1:]).all()
    np.testing.assert_allclose(upper - middle, middle - lower, rtol=1e-9, atol=1e-9)
    for t in range(n - 1, m):  # half-width = k * population std of the window
        expected = k * float(np.std(close[t - n + 1: t + 1]))
        assert math.isclose(upper[t] - middle[t], expected, rel_tol=1e-6, abs_tol=1e-9 * close.max())


@SETTINGS
@given(candles(), periods)
def test_donchian_contains_window(c, n):
    high, low, close, _ = c
    m = close.shape[0]
    upper, lower, middle = donchian(high, low, n)
    for a in (upper, lower, middle):
        assert_warmup(a, m, n - 1)
    for t in range(n - 1, m):
        w = slice(t - n + 1, t + 1)
        assert upper[t] == high[w].max() and lower[t] == low[w].min()
        assert (lower[t] <= close[w]).all() and (close[w] <= upper[t]).all()
        assert lower[t] <= middle[t] <= upper[t]


@SETTINGS
@given(candles(), periods, st.floats(min_value=0.0, max_value=5.0))
def test_supertrend_direction_and_side(c, p, mult):
    high, low, close, _ = c
    m = close.shape[0]
    line, direction = supertrend(high, low, close, p, mult)
    assert_warmup(line, m, p)
    assert_warmup(direction, m, p)
    assert np.isin(direction[p:], (-1.0, 1.0)).all()
    if m > p:
        assert direction[p] == -1.0  # first bar: down, as Pine
    for t in range(p + 1, m):
        # staying in a trend means the close did not cross the line (its final band)
        if direction[t] == 1.0 and direction[t - 1] == 1.0:
            assert close[t] >= line[t]
        if direction[t] == -1.0 and direction[t - 1] == -1.0:
            assert close[t] <= line[t]


@SETTINGS
@given(candles(), periods)
def test_rolling_vwap_within_typical_price_range(c, n):
    high, low, close, vol = c
    m = close.shape[0]
    out = rolling_vwap(high, low, close, vol, n)
    assert out.shape == (m,)
    assert np.isnan(out[: n - 1]).all()
    tp = (high + low + close) / 3.0
    for t in range(n - 1, m):
        w = slice(t - n + 1, t + 1)
        if vol[w].sum() == 0.0:
            assert math.isnan(out[t])
        else:
            tol = 1e-12 * tp[w].max()
            assert tp[w].min() - tol <= out[t] <= tp[w].max() + tol


@SETTINGS
@given(candles(), st.integers(min_value=2, max_value=10))
def test_adx_within_0_100(c, n):
    high, low, close, _ = c
    out = adx(high, low, close, n)
    assert_warmup(out, close.shape[0], 2 * n - 1)
    valid = out[2 * n - 1:]
    assert ((valid >= 0.0) & (valid <= 100.0 + 1e-9)).all()


_ALL = {  # every indicator as (high, low, close, volume, n) -> tuple of outputs
    "sma": lambda h, l, c, v, n: (sma(c, n),),
    "sma_exact": lambda h, l, c, v, n: (sma_exact(c, n),),
    "ema": lambda h, l, c, v, n: (ema(c, n),),
    "rsi": lambda h, l, c, v, n: (rsi(c, n + 1),),
    "true_range": lambda h, l, c, v, n: (true_range(h, l, c),),
    "atr": lambda h, l, c, v, n: (atr(h, l, c, n),),
    "bollinger": lambda h, l, c, v, n: bollinger(c, n, 2.0),
    "supertrend": lambda h, l, c, v, n: supertrend(h, l, c, n, 2.0),
    "vwap": lambda h, l, c, v, n: (rolling_vwap(h, l, c, v, n),),
    "adx": lambda h, l, c, v, n: (adx(h, l, c, n + 1),),
}


@SETTINGS
@given(candles(max_len=60), periods, st.data())
def test_nan_row_splits_into_independent_runs(c, n, data):
    """A missing close at row k: output NaN there, and each side computed on its own."""
    high, low, close, vol = c
    m = close.shape[0]
    if m == 0:
        return
    k = data.draw(st.integers(min_value=0, max_value=m - 1))
    bad = data.draw(st.sampled_from((np.nan, np.inf, -np.inf)))
    bad_close = close.copy()
    bad_close[k] = bad
    head = [np.ascontiguousarray(x[:k]) for x in (high, low, close, vol)]
    tail = [np.ascontiguousarray(x[k + 1:]) for x in (high, low, close, vol)]
    for name, f in _ALL.items():
        whole = f(high, low, bad_close, vol, n)
        before = f(*head, n)
        after = f(*tail, n)
        assert len(whole) == len(before) == len(after)
        for w, b, a in zip(whole, before, after):
            assert np.array_equal(w, np.concatenate([b, [np.nan], a]), equal_nan=True), name
