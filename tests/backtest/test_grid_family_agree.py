"""The fast engine and the event engine agree on the grid family, on real data.

BTC/USDT 1h spot (2017–2022) for grid_atr, grid_rsi, grid_mtf, both sides; the real BTC
perpetual (5m 2025, resampled to 1h) with its 8h funding rates for grid_funding, both sides.
Per strategy a few seeded combos of its default grid (`config/param_grids.yaml`) plus the
defaults: the same cycles (every field, bit for bit) and per-candle equity, final equity within
1e-9; the stats kernel (`sweep_grid_stats`) matches the event engine's metrics.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from core.backtest.event_engine import run_event_backtest
from core.backtest.fast import run_fast
from core.backtest.fast.grid_family import sweep_grid_stats
from core.backtest.loading import load_from_file
from core.backtest.metrics import daily_sharpe, max_drawdown
from core.engine.assembly import funding_beside
from core.optimize.evaluators import grid_space
from core.strategies.params import STRATEGY_PARAMS
from tests.support.shared_data import PROJECT_ROOT, shared_file

REL = 1e-9
SPOT = ("grid_atr", "grid_atr_short", "grid_rsi", "grid_rsi_short", "grid_mtf", "grid_mtf_short")


@functools.lru_cache(maxsize=None)
def btc():
    return load_from_file(shared_file("binance-spot/BTC_USDT-1h.json.gz"))


@functools.lru_cache(maxsize=None)
def perp():
    path = Path(shared_file("binance-futures/BTC_USDT_USDT-5m-futures.json.gz"))
    shared_file("binance-futures/BTC_USDT_USDT-8h-funding_rate.json.gz")
    return load_from_file(path, resample="1h"), funding_beside(path)


def combos(strategy: str, n: int) -> list[dict]:
    with open(PROJECT_ROOT / "config" / "param_grids.yaml") as f:
        grid = yaml.safe_load(f)["param_grids"][strategy]
    space = grid_space(strategy, grid)
    model = STRATEGY_PARAMS[strategy]
    rng = np.random.default_rng(sum(map(ord, strategy)))
    out = [model().model_dump()]
    for i in rng.permutation(space.size)[:n].tolist():
        raw = space.params(i)
        out.append({k: (int(v) if model.model_fields[k].annotation is int else float(v)) for k, v in raw.items()})
    return out


def check(candles, strategy: str, params_list: list[dict], funding=None) -> int:
    n_cycles = 0
    stats = sweep_grid_stats(candles, strategy, params_list, funding=funding, workers=1)
    for i, p in enumerate(params_list):
        ev = run_event_backtest(candles, strategy, p, funding=funding)
        fa = run_fast(candles, strategy, p, funding=funding)
        assert ev.cycles == fa.cycles, (strategy, p)          # every field of every cycle, exactly
        assert np.allclose(ev.equity, fa.equity, rtol=REL, atol=0.0), (strategy, p)
        assert math.isclose(ev.final_equity, fa.final_equity, rel_tol=REL), (strategy, p)
        assert math.isclose(stats[i, 0], ev.final_equity, rel_tol=REL)
        assert stats[i, 1] == len(ev.cycles)
        assert math.isclose(stats[i, 2], max_drawdown(ev.equity), rel_tol=REL, abs_tol=1e-12)
        assert math.isclose(stats[i, 3], daily_sharpe(ev.ts, ev.equity), rel_tol=REL, abs_tol=1e-12)
        assert all(c.side == ("short" if strategy.endswith("_short") else "long") for c in ev.cycles)
        n_cycles += len(ev.cycles)
    return n_cycles


@pytest.mark.parametrize("strategy", SPOT)
def test_engines_agree_on_btc_1h(strategy: str) -> None:
    assert check(btc(), strategy, combos(strategy, 2)) > 20


@pytest.mark.parametrize("strategy", ("grid_funding", "grid_funding_short"))
def test_engines_agree_on_the_perpetual_with_funding(strategy: str) -> None:
    candles, funding = perp()
    assert candles.timeframe == "1h" and len(funding[0]) > 100
    ps = [{"ma_period": n, "num_levels": 2, "envelope_start": 0.01, "envelope_step": 0.01, "sl_percent": 0.1,
           "funding_threshold": thr} for n in (5, 10) for thr in (0.000005, 0.00002)]
    assert check(candles, strategy, ps + combos(strategy, 2), funding) >= 3


@pytest.mark.parametrize("strategy", ("grid_atr", "grid_mtf_short"))
def test_cli_backtest_both_engines(strategy: str) -> None:
    """`radar backtest --strategy S --engine event|fast --json` print the same spec JSON."""
    import contextlib
    import io
    import json

    from core.cli.main import main

    data = str(shared_file("binance-spot/BTC_USDT-1h.json.gz"))
    outs = []
    for engine in ("event", "fast"):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["backtest", "--strategy", strategy, "--data", data, "--from", "2020-01-01", "--to",
                         "2021-01-01", "--engine", engine, "--json"])
        assert code == 0, err.getvalue()
        outs.append(json.loads(out.getvalue()))
    assert outs[0] == outs[1] and outs[0]["strategy"] == strategy and outs[0]["n_cycles"] > 5
