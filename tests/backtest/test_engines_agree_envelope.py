"""The numba fast engine and the event-driven engine agree on envelope_dca, on real data.

For the five real 1h series of binance-spot and both sides: the same n_cycles, and
final_equity, sharpe and max_drawdown within 1e-9 relative, between
`core.backtest.event_engine.run_event_backtest` (metrics from `core.backtest.metrics` on
its per-candle equity curve) and `core.backtest.fast.sweep`. The default suite checks a
fixed sample of 24 combos of the default grid per series and side; the full 324-combo
cross product is marked slow (`make test-full`).

Sharpe is compared with an absolute floor of 1e-12: the daily returns are differences
of equities, so a Sharpe close to 0 cannot be reproduced to 1e-9 *relative* by two
correct engines whose equities differ in the last bit.
"""

from __future__ import annotations

import functools
import gzip
import json
import math
import os

import numpy as np
import pytest

from core.backtest.fast import grid_combos, run_fast, sweep
from core.model.candles import Candles
from tests.support.shared_data import shared_file

SYMBOLS = ("BTC", "ETH", "SOL", "DOGE", "LINK")
STRATEGIES = ("envelope_dca", "envelope_dca_short")
GRID = grid_combos()  # the default 324-combo grid
#: a fixed sample of 24 combos of the grid (seeded, sorted)
SAMPLE = tuple(int(i) for i in np.sort(np.random.default_rng(20_240_611).choice(len(GRID), 24, replace=False)))
REL = 1e-9


def event_engine():
    """`run_event_backtest`, or skip (fail when RADAR_REQUIRE_SHARED_DATA=1) when it is missing."""
    try:
        from core.backtest.event_engine import run_event_backtest
    except ImportError as err:
        msg = f"event engine not importable: {err}"
        if os.environ.get("RADAR_REQUIRE_SHARED_DATA") == "1":
            pytest.fail(msg)
        pytest.skip(msg)
    return run_event_backtest


@functools.lru_cache(maxsize=None)
def real(sym: str) -> Candles:
    path = shared_file(f"binance-spot/{sym}_USDT-1h.json.gz")
    with gzip.open(path, "rt") as f:
        rows = np.asarray(json.load(f), dtype=np.float64)
    return Candles.from_rows(f"{sym}/USDT", "spot", "1h", rows)


@functools.lru_cache(maxsize=None)
def fast_grid(sym: str, strategy: str):
    return sweep(real(sym), strategy, GRID)


def close(a: float, b: float, abs_tol: float = 0.0) -> bool:
    return math.isclose(a, b, rel_tol=REL, abs_tol=abs_tol)


def disagreements(sym: str, strategy: str, indices) -> list[str]:
    """One line per combo where the engines disagree (empty when they all agree)."""
    run_event_backtest = event_engine()
    candles = real(sym)
    fast = fast_grid(sym, strategy)
    bad = []
    for i in indices:
        params = GRID.params(i)
        ev = run_event_backtest(candles, strategy, dict(params))
        spec = ev.to_spec_json()
        diffs = []
        if ev.n_cycles != fast.n_cycles[i]:
            diffs.append(f"n_cycles event {ev.n_cycles} fast {fast.n_cycles[i]}")
        if not close(ev.final_equity, fast.final_equity[i]):
            diffs.append(f"final_equity event {ev.final_equity!r} fast {fast.final_equity[i]!r}")
        if not close(spec["max_drawdown"], fast.max_drawdown[i], 1e-15):
            diffs.append(f"max_drawdown event {spec['max_drawdown']!r} fast {fast.max_drawdown[i]!r}")
        if not close(spec["sharpe"], fast.sharpe[i], 1e-12):
            diffs.append(f"sharpe event {spec['sharpe']!r} fast {fast.sharpe[i]!r}")
        if diffs:
            # name the first cycle where they part, to find a minimal example quickly
            fr = run_fast(candles, strategy, params)
            for k, (a, b) in enumerate(zip(ev.cycles, fr.cycles)):
                if (a.open_time, a.close_time, a.levels_filled, a.exit_reason) != \
                        (b.open_time, b.close_time, b.levels_filled, b.exit_reason) or not close(a.pnl, b.pnl, 1e-9):
                    diffs.append(f"first differing cycle #{k}: event {a} fast {b}")
                    break
            bad.append(f"{sym} {strategy} combo {i} {params}: " + "; ".join(diffs))
    return bad


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("sym", SYMBOLS)
def test_engines_agree_on_a_sample_of_the_grid(sym, strategy):
    bad = disagreements(sym, strategy, SAMPLE)
    assert not bad, "\n".join(bad[:10])


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("sym", SYMBOLS)
def test_engines_agree_cycle_by_cycle_at_the_default_params(sym, strategy):
    """Every cycle of run_fast equals the event engine's (exact times/levels/reason, prices to 1e-9)."""
    run_event_backtest = event_engine()
    params = {"ma_period": 7, "num_levels": 3, "envelope_start": 0.05, "envelope_step": 0.03, "sl_percent": 0.20}
    ev = run_event_backtest(real(sym), strategy, dict(params))
    fr = run_fast(real(sym), strategy, params)
    assert ev.n_cycles == fr.n_cycles
    for a, b in zip(ev.cycles, fr.cycles):
        assert (a.open_time, a.close_time, a.side, a.levels_filled, a.exit_reason) == \
            (b.open_time, b.close_time, b.side, b.levels_filled, b.exit_reason), (a, b)
        for f in ("avg_entry", "exit_price", "qty", "pnl"):
            assert close(getattr(a, f), getattr(b, f), 1e-9), (f, a, b)
    np.testing.assert_array_equal(np.asarray(ev.ts), fr.ts)
    np.testing.assert_allclose(np.asarray(ev.equity), fr.equity, rtol=REL, atol=0)
    ja, jb = ev.to_spec_json(), fr.to_spec_json()
    for k in ("total_return", "win_rate"):
        assert close(ja[k], jb[k], 1e-12), k
    assert (ja["profit_factor"] is None) == (jb["profit_factor"] is None)
    if ja["profit_factor"] is not None:
        assert close(ja["profit_factor"], jb["profit_factor"])


@pytest.mark.slow
@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("sym", SYMBOLS)
def test_engines_agree_on_the_full_grid(sym, strategy):
    bad = disagreements(sym, strategy, range(len(GRID)))
    assert not bad, f"{len(bad)} of {len(GRID)} combos disagree:\n" + "\n".join(bad[:10])
