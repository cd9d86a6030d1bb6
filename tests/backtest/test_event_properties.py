"""Properties of the event engine and the matching engine on random valid OHLC paths (hypothesis).

Paths come in two kinds: float paths (multiplicative moves), and paths on a grid of 1/4 with
parameters that are multiples of 1/64 and SMA periods of 1, 2 or 4, so that level prices
are exact and equalities between a path point and a level (touches, ties) really happen.
Every candle opens within 20 % of the previous close, and sl_percent <= 0.5.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from core.backtest.event_engine import run_event_backtest
from core.model.candles import Candles
from core.model.fills import ENTRY, STOP, TAKE_PROFIT

T0 = 1_600_000_000_000 // 3_600_000 * 3_600_000
H = 3_600_000
GAP = 0.2
SETTINGS = settings(max_examples=150, deadline=None)


def to_candles(rows) -> Candles:
    arr = np.array([[T0 + i * H, o, h, lo, c, 1.0] for i, (o, h, lo, c) in enumerate(rows)], dtype=np.float64)
    return Candles.from_rows("SYN/USDT", "spot", "1h", arr.reshape(-1, 6))


@st.composite
def float_paths(draw):
    moves = draw(st.lists(st.tuples(st.floats(-GAP, GAP), st.floats(-0.15, 0.15), st.floats(0, 0.08),
                                    st.floats(0, 0.08)), min_size=1, max_size=60))
    prev = draw(st.sampled_from([1.0, 100.0, 31_234.5]))
    rows = []
    for gap, body, up, down in moves:
        o = prev * (1 + gap)
        c = o * (1 + body)
        rows.append((o, max(o, c) * (1 + up), min(o, c) * (1 - down), c))
        prev = c
    return rows


@st.composite
def grid_paths(draw):
    """Prices in ticks of 1/4, never below 50; each move at most 20 % of the previous close."""
    n = draw(st.integers(1, 60))
    floor = 200                                       # ticks = 50.0
    prev = draw(st.integers(300, 500))
    rows = []
    for _ in range(n):
        g = prev // 5
        o = max(floor, prev + draw(st.integers(-g, g)))
        c = max(floor, o + draw(st.integers(-(o // 6), o // 6)))
        h = max(o, c) + draw(st.integers(0, 12))
        lo = max(floor, min(o, c) - draw(st.integers(0, 12)))
        rows.append((o / 4, h / 4, lo / 4, c / 4))
        prev = c
    return rows


@st.composite
def float_params(draw):
    n_lv = draw(st.integers(1, 4))
    start = draw(st.floats(0.001, 0.2))
    step = draw(st.floats(0.0, 0.1))
    assume(start + (n_lv - 1) * step < 1)
    return {"ma_period": draw(st.integers(1, 6)), "num_levels": n_lv, "envelope_start": start,
            "envelope_step": step, "sl_percent": draw(st.floats(0.01, 0.5))}


@st.composite
def grid_params(draw):
    n_lv = draw(st.integers(1, 4))
    start = draw(st.integers(1, 12)) / 64
    step = draw(st.integers(0, 6)) / 64
    assume(start + (n_lv - 1) * step < 1)
    return {"ma_period": draw(st.sampled_from([1, 2, 4])), "num_levels": n_lv, "envelope_start": start,
            "envelope_step": step, "sl_percent": draw(st.integers(1, 32)) / 64}


cases = st.one_of(st.tuples(float_paths(), float_params()), st.tuples(grid_paths(), grid_params()))
sides = st.sampled_from(["envelope_dca", "envelope_dca_short"])


def run_traced(rows, strategy, params):
    """Run with an observer; returns (result, engine, per-candle snapshots)."""
    snaps = []
    box = {}

    def observer(t, eng):
        box["eng"] = eng
        snaps.append({
            "t": t, "cash": eng.cash, "filled": eng.levels_filled, "qty": eng.qty, "avg": eng.avg_entry,
            "stop": eng.stop, "orders": [(o.kind, o.price, o.level) for o in eng.resting_orders()],
            "quote": list(eng.strategy.levels), "n_fills": len(eng.fills),
        })

    res = run_event_backtest(to_candles(rows), strategy, dict(params), observer=observer)
    return res, box.get("eng"), snaps


@SETTINGS
@given(cases, sides)
def test_equity_is_finite_and_cash_never_negative_at_leverage_1(case, strategy):
    """With opens within 20 % of the previous close and p <= 0.5, no exit can lose more than the
    cycle's notional (<= E at leverage 1): the cash stays positive."""
    rows, params = case
    res, _, snaps = run_traced(rows, strategy, params)
    assert res.equity.shape == (len(rows),)
    assert np.all(np.isfinite(res.equity))
    assert all(s["cash"] > 0 for s in snaps) and res.final_equity > 0
    assert res.equity[-1] == res.final_equity


@SETTINGS
@given(cases, sides)
def test_a_stop_rests_whenever_a_position_is_open(case, strategy):
    rows, params = case
    long = strategy == "envelope_dca"
    _, _, snaps = run_traced(rows, strategy, params)
    for s in snaps:
        kinds = [k for k, _, _ in s["orders"]]
        if s["filled"]:
            assert s["qty"] > 0 and math.isfinite(s["stop"])
            assert kinds.count(STOP) == 1 and kinds.count(TAKE_PROFIT) == 1
            stop_price = next(p for k, p, _ in s["orders"] if k == STOP)
            assert stop_price == s["stop"]
            assert (s["stop"] < s["avg"]) if long else (s["stop"] > s["avg"])
        else:
            assert s["qty"] == 0 and STOP not in kinds and TAKE_PROFIT not in kinds
        # the unfilled levels rest as entry orders, at the candle's quote (once there is one)
        entries = [(lvl, p) for k, p, lvl in s["orders"] if k == ENTRY]
        assert [lvl for lvl, _ in entries] == list(range(s["filled"], params["num_levels"]))
        if s["t"] >= params["ma_period"]:
            assert [p for _, p in entries] == s["quote"][s["filled"]:]


@SETTINGS
@given(cases, sides)
def test_levels_fill_in_index_order_at_or_better_than_their_price(case, strategy):
    rows, params = case
    long = strategy == "envelope_dca"
    res, eng, snaps = run_traced(rows, strategy, params)
    if eng is None:
        return
    quotes = {s["t"]: s["quote"] for s in snaps}
    expected_level = 0
    cycles = iter(res.cycles)
    for f in eng.fills:
        if f.kind == ENTRY:
            assert f.level == expected_level
            expected_level += 1
            t = (f.ts - T0) // H
            limit = quotes[t][f.level]
            assert (f.price <= limit) if long else (f.price >= limit)
            o = rows[t][0]
            assert f.price in (o, limit)                  # at the gapped open or at the level
        else:
            assert next(cycles).levels_filled == expected_level >= 1
            expected_level = 0
    assert expected_level == 0


@SETTINGS
@given(cases, sides, st.integers(1, 59))
def test_no_look_ahead(case, strategy, cut):
    """A run on the first k candles equals the full run up to candle k−2 (k−1 differs only by the
    end-of-data exit): nothing of candle t or later influences candle t−1."""
    rows, params = case
    k = min(cut, len(rows))
    full = run_event_backtest(to_candles(rows), strategy, dict(params))
    part = run_event_backtest(to_candles(rows[:k]), strategy, dict(params))
    assert part.equity[: k - 1].tolist() == full.equity[: k - 1].tolist()
    last_open = T0 + (k - 1) * H
    done_full = [c for c in full.cycles if c.close_time < last_open]
    done_part = [c for c in part.cycles if c.close_time < last_open]
    assert done_part == done_full


# ------------------------------------------------------------------ agreement with the reference

def spec_quote(closes: list[float], params: dict, long: bool) -> tuple[float, list[float]] | None:
    """(m, level prices) of the next candle per the spec's arithmetic, None while t < N."""
    n = params["ma_period"]
    if len(closes) < n:
        return None
    total = 0.0
    for x in closes[-n:]:
        total += x
    m = total / n
    out = []
    for i in range(params["num_levels"]):
        off = params["envelope_start"] + i * params["envelope_step"]
        out.append(m * (1 - off) if long else m * (1 + (1 / (1 - off) - 1)))
    return m, out


@st.composite
def snapped_cases(draw):
    """A path of either kind where some candles have their open, high or low moved exactly onto
    the SMA m or a level price of that candle: equality touches on both sides, every rule."""
    rows, params = draw(st.one_of(st.tuples(float_paths(), float_params()), st.tuples(grid_paths(), grid_params())))
    strategy = draw(sides)
    long = strategy == "envelope_dca"
    out, closes = [], []
    for o, h, lo, c in rows:
        q = spec_quote(closes, params, long)
        if q is not None:
            where = draw(st.sampled_from(["none", "open", "high", "low"]))
            target = draw(st.integers(-1, params["num_levels"] - 1))      # -1: m
            v = q[0] if target < 0 else q[1][target]
            if where == "open":
                o, h, lo = v, max(h, v), min(lo, v)
            elif where == "high" and v >= max(o, c):
                h = v
            elif where == "low" and 0 < v <= min(o, c):
                lo = v
        out.append((o, h, lo, c))
        closes.append(c)
    return out, params, strategy


@settings(max_examples=300, deadline=None)
@given(snapped_cases())
def test_agrees_with_the_reference_implementation(case):
    from tests.backtest.test_event_engine import reference

    rows, params, strategy = case
    candles = to_candles(rows)
    ref_cycles, ref_equity, ref_cash = reference(candles, "long" if strategy == "envelope_dca" else "short", params)
    res = run_event_backtest(candles, strategy, dict(params))
    got = [(c.open_time, c.close_time, c.levels_filled, c.avg_entry, c.exit_price, c.exit_reason, c.qty, c.pnl)
           for c in res.cycles]
    assert [(g[0], g[1], g[2], g[5]) for g in got] == [(w[0], w[1], w[2], w[5]) for w in ref_cycles]
    for g, w in zip(got, ref_cycles):
        for i in (3, 4, 6, 7):
            assert math.isclose(g[i], w[i], rel_tol=1e-9, abs_tol=1e-9), (g, w)
    np.testing.assert_allclose(res.equity, ref_equity, rtol=1e-9, atol=0)
    assert math.isclose(res.final_equity, ref_cash, rel_tol=1e-9)
