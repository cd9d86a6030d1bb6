"""Walk-forward, Monte Carlo, DSR, PBO and grading for all eight strategies (issue 13, "Every strategy").

* Engines agree per window: `Evaluator.window` / `Evaluator.is_stats` (the fast kernels the
  walk-forward runs on) equal `evaluators.event_window_backtest` (the event-driven engine on
  the same warm-up + window, warm-up entries masked): same trades, equity to 1e-9, Sharpe of
  the window's daily returns from C0.
* Whole walk-forwards of every strategy on real BTC/USDT 1h (a 2019 slice, short windows):
  complete, graded, with DSR, PBO and the bootstrap; every window's OOS figures re-derived by
  the event engine; long and short trades where the strategy has both sides.
* `funding` on a perpetual with its funding history: the real 2025 5m futures data and its 8h
  funding rates (short windows), and a stand-in perpetual long enough for the default windows
  (real BTC 1h candles with a synthesized, causal 8h funding series).
* The command line: `radar optimize --strategy S --symbols BTC/USDT --timeframe 1h --json` on
  the store (after `radar data import`, as the README says) for the seven candle-only
  strategies, and `--strategy funding --symbols BTC/USDT:USDT` on a store holding the stand-in
  perpetual and its funding rates.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import io
import json
import math
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
import yaml

from core.backtest.metrics import daily_sharpe
from core.cli.main import main
from core.errors import UsageError
from core.model.candles import Candles
from core.optimize import evaluators as ev
from core.optimize.walk_forward import (
    STRATEGIES,
    WalkForwardSettings,
    annualised_sharpe,
    walk_forward,
    window_daily_returns,
)
from core.optimize.windows import windows_for
from core.paths import DEFAULT_CONFIG_DIR
from core.strategies import registry
from core.strategies.params import STRATEGY_PARAMS
from tests.support.shared_data import PROJECT_ROOT, shared_file

SINGLE = ("vwap_rsi", "momentum", "bollinger_mr", "donchian_breakout", "supertrend", "funding")
GRID_FAMILY = tuple(s for s in STRATEGIES if s.startswith("grid_"))  # their own: test_grid_family_wfo.py
CANDLE_ONLY = tuple(s for s in STRATEGIES if s not in ("funding", "liquidation", *GRID_FAMILY))  # liquidation: test_wfo_liquidation.py
CRITERIA = {"oos_sharpe", "consistency", "oos_is_ratio", "dsr", "param_stability"}
REL = 1e-9
SHORT = WalkForwardSettings(is_days=60, oos_days=20, step_days=20, n_boot=200)


def _ms(day: str) -> int:
    return int(datetime.fromisoformat(day).replace(tzinfo=timezone.utc).timestamp() * 1000)


def _rows(path: Path) -> np.ndarray:
    with gzip.open(path, "rt") as f:
        return np.asarray(json.load(f), dtype=np.float64)


@functools.lru_cache(maxsize=None)
def grids() -> dict:
    with open(PROJECT_ROOT / "config" / "param_grids.yaml") as f:
        return yaml.safe_load(f)["param_grids"]


@functools.lru_cache(maxsize=None)
def btc() -> Candles:
    return Candles.from_rows("BTC/USDT", "spot", "1h", _rows(shared_file("binance-spot/BTC_USDT-1h.json.gz")))


def btc_2019() -> Candles:
    return btc().between(_ms("2019-01-01"), _ms("2019-07-01"))


@functools.lru_cache(maxsize=None)
def futures_5m() -> tuple[Candles, tuple[np.ndarray, np.ndarray]]:
    c = Candles.from_rows("BTC/USDT:USDT", "futures", "5m",
                          _rows(shared_file("binance-futures/BTC_USDT_USDT-5m-futures.json.gz")))
    fr = _rows(shared_file("binance-futures/BTC_USDT_USDT-8h-funding_rate.json.gz"))
    return c, (fr[:, 0].astype(np.int64), fr[:, 1].copy())


def stand_in_funding(candles: Candles, seed: int = 13) -> tuple[np.ndarray, np.ndarray]:
    """A causal 8h funding series aligned with `candles` (00/08/16 UTC): the rate at time T is
    1e-4·tanh(r24 / 3 %) + N(0, 3e-5), r24 = the return of the 24 candles that closed before T
    (perpetual funding follows the recent move: longs pay after rallies). Magnitudes as the
    2025 data (|rate| mostly < 1.5e-4), so the default grid's thresholds trade."""
    rng = np.random.default_rng(seed)
    first = (int(candles.ts[0]) // (8 * 3_600_000) + 1) * 8 * 3_600_000
    fts = np.arange(first, int(candles.ts[-1]) + 1, 8 * 3_600_000, dtype=np.int64)
    i = np.searchsorted(candles.ts, fts, "left")               # candles before T: [.. i)
    close = np.asarray(candles.close)
    r24 = np.where(i >= 25, close[np.maximum(i - 1, 0)] / close[np.maximum(i - 25, 0)] - 1.0, 0.0)
    rate = 1e-4 * np.tanh(r24 / 0.03) + rng.normal(0.0, 3e-5, fts.size)
    return fts, rate


def stand_in_perpetual(start: str, end: str) -> tuple[Candles, tuple[np.ndarray, np.ndarray]]:
    """Real BTC/USDT 1h candles of [start, end) standing in for BTC/USDT:USDT, with `stand_in_funding`."""
    s = btc().between(_ms(start), _ms(end))
    c = Candles("BTC/USDT:USDT", "futures", "1h", s.ts, s.open, s.high, s.low, s.close, s.volume)
    return c, stand_in_funding(c)


def pick(strategy: str, n: int) -> list[dict]:
    """n seeded valid combos of the strategy's default grid."""
    space = ev.grid_space(strategy, grids()[strategy])
    model = STRATEGY_PARAMS[strategy]
    rng = np.random.default_rng(sum(map(ord, strategy)))
    out: list[dict] = []
    for f in rng.permutation(space.size).tolist():
        raw = space.params(f)
        p = {k: (int(raw[k]) if model.model_fields[k].annotation is int else float(raw[k])) for k in raw}
        try:
            model.model_validate(p)
        except ValueError:
            continue
        out.append(p)
        if len(out) == n:
            break
    return out


# -- dispatch ------------------------------------------------------------------------------------------
def test_every_strategy_is_supported() -> None:
    assert set(STRATEGIES) == set(registry.names()) and len(STRATEGIES) == len(registry.names())
    assert set(grids()) == set(STRATEGIES)
    import argparse

    from core.cli.optimize_cmd import register

    sub = argparse.ArgumentParser().add_subparsers()
    register(sub)
    help_text = sub.choices["optimize"].format_help().replace("\n", " ")
    for s in STRATEGIES:
        assert s in help_text, s
    with pytest.raises(UsageError, match="unknown strategy 'nope'"):
        walk_forward(btc_2019(), "nope", {}, settings=SHORT)
    with pytest.raises(UsageError, match="needs the perpetual's funding-rate history"):
        walk_forward(btc_2019(), "funding", grids()["funding"], settings=SHORT)
    with pytest.raises(UsageError, match=r"unknown parameters \['ma_period'\]; expected fast_ema"):
        walk_forward(btc_2019(), "momentum", {"ma_period": [5]}, settings=SHORT)


def test_grid_space_takes_base_params_and_model_types() -> None:
    space = ev.grid_space("momentum", grids()["momentum"], {"atr_period": 21, "fast_ema": 3})
    assert space.names == tuple(STRATEGY_PARAMS["momentum"].model_fields)
    assert dict(zip(space.names, space.axes))["atr_period"] == (21,)        # outside the grid: base
    assert dict(zip(space.names, space.axes))["fast_ema"] == (8, 12, 20)     # in the grid: the grid
    e = ev.evaluator_for("vwap_rsi")
    p = e.coerce(ev.grid_space("vwap_rsi", grids()["vwap_rsi"]).params(0))
    assert isinstance(p["rsi_oversold"], float) and isinstance(p["vwap_period"], int)


def test_warmup_is_the_longest_lookback_plus_two() -> None:
    assert ev.warmup_candles("momentum", {"fast_ema": 12, "slow_ema": 50, "atr_period": 14}) == 52
    assert ev.warmup_candles("donchian_breakout", {"channel_period": 55, "atr_period": 14}) == 57
    assert ev.warmup_candles("vwap_rsi", {"vwap_period": 12, "rsi_period": 14}) == 16
    assert ev.warmup_candles("supertrend", {"atr_period": 7}) == 9
    assert ev.warmup_candles("funding", {"funding_threshold": 1e-4}) == 0
    assert ev.warmup_candles("envelope_dca", {"ma_period": 7}) == 7
    for s in SINGLE:   # the table lists exactly the integer *_period / *_ema parameters
        fields = STRATEGY_PARAMS[s].model_fields
        assert set(ev.LOOKBACK_PARAMS[s]) == {n for n, f in fields.items() if f.annotation is int
                                              and n.endswith(("_period", "_ema"))}


@pytest.mark.parametrize("strategy", [s for s in SINGLE if s != "funding"])
def test_indicators_are_ready_at_the_window_start(strategy: str) -> None:
    """With the warm-up, the signal arrays at the window's first candle are those of the whole
    series for the finite-memory indicators (Bollinger, Donchian) and defined for all: an
    ATR/line exit reference is a number there, as on the whole series."""
    c = btc()
    cls = registry.STRATEGIES[strategy]
    start = _ms("2020-03-01")
    f = np.ascontiguousarray
    at = int(np.searchsorted(c.ts, start))
    for p in pick(strategy, 6):
        w = ev.warmup_candles(strategy, p)
        sl = slice(at - w, at + 200)
        a = cls.signal_arrays(p, f(c.ts[sl]), f(c.open[sl]), f(c.high[sl]), f(c.low[sl]), f(c.close[sl]),
                              f(c.volume[sl]))
        whole = cls.signal_arrays(p, f(c.ts), f(c.open), f(c.high), f(c.low), f(c.close), f(c.volume))
        for arr, ref in ((a.sref, whole.sref), (a.tref, whole.tref)):
            assert np.isfinite(arr[w]) == np.isfinite(ref[at]), (strategy, p)
        if strategy in ("bollinger_mr", "donchian_breakout"):
            assert np.array_equal(a.sig[w:], whole.sig[at:at + 200]), (strategy, p)


# -- both engines, window by window --------------------------------------------------------------------
def _series(strategy: str):
    if strategy == "funding":
        c, fund = futures_5m()
        return c, fund, _ms("2025-03-20"), _ms("2025-03-30")
    return btc(), None, _ms("2019-05-01"), _ms("2019-06-30")


@pytest.mark.parametrize("strategy", [s for s in STRATEGIES if s != "liquidation" and s not in GRID_FAMILY])
# liquidation: test_wfo_liquidation.py; the grid family: test_grid_family_wfo.py
def test_window_backtest_equals_the_event_engine(strategy: str) -> None:
    candles, funding, start, end = _series(strategy)
    e = ev.evaluator_for(strategy, funding=funding)
    combos = pick(strategy, 4) if strategy != "funding" else [
        {"funding_threshold": t, "sl_percent": 0.01, "tp_percent": 0.01, "max_hold_candles": 96}
        for t in (0.00003, 0.00005, 0.0001)]
    sharpe, ret = e.is_stats(candles, start, end, combos)
    traded = 0
    for i, p in enumerate(combos):
        fast = e.window(candles, p, start, end)
        ref, k = ev.event_window_backtest(candles, strategy, p, start, end, funding=funding)
        assert np.array_equal(fast.ts, ref.ts[k:]) and fast.ts[0] == start
        assert np.allclose(fast.equity, ref.equity[k:], rtol=REL, atol=0.0), (strategy, p)
        assert np.all(ref.equity[:k] == 10_000.0)                         # flat through the warm-up
        assert [c.pnl for c in ref.cycles] == pytest.approx(fast.pnls.tolist(), rel=REL, abs=1e-9)
        assert all(c.open_time >= start for c in ref.cycles)              # every trade inside the window
        assert math.isclose(fast.final_equity, ref.final_equity, rel_tol=REL)
        assert math.isclose(ret[i], ref.final_equity / 10_000.0 - 1.0, rel_tol=REL, abs_tol=1e-12)
        r = window_daily_returns(ref.ts[k:], ref.equity[k:], 10_000.0)
        if strategy in SINGLE:   # the IS score is the Sharpe of the window's daily returns from C0
            assert math.isclose(sharpe[i], annualised_sharpe(r), rel_tol=1e-9, abs_tol=1e-12), (p, sharpe[i])
            assert math.isclose(sharpe[i], daily_sharpe(ref.ts[k - 1:], ref.equity[k - 1:]), rel_tol=1e-9,
                                abs_tol=1e-12)
        else:                    # envelope: the spec's daily Sharpe over warm-up + window
            assert math.isclose(sharpe[i], daily_sharpe(ref.ts, ref.equity), rel_tol=1e-9, abs_tol=1e-12)
        traded += len(ref.cycles)
    assert traded > 0, strategy


# -- whole walk-forwards on real data -----------------------------------------------------------------
def _check_result(res, strategy: str, candles: Candles, funding=None) -> set[str]:
    """Common checks; re-derives every window's OOS figures with the event engine; returns the sides traded."""
    s = res.summary()
    assert res.complete and len(res.windows) == res.n_windows_planned >= 3
    assert s["grade"] in ("A", "B", "C", "D", "F") and 0.0 <= s["score"] <= 100.0
    assert CRITERIA <= set(s["criteria"]) and all(v is None or math.isfinite(v) for v in s["criteria"].values())
    assert res.pbo is not None and 0.0 <= res.pbo <= 1.0
    assert 0.0 <= s["dsr"] <= 1.0 and (res.psr is None or 0.0 <= res.psr <= 1.0)
    assert res.p_value is None or 0.0 < res.p_value <= 1.0
    assert set(res.best_params) == set(STRATEGY_PARAMS[strategy].model_fields)
    STRATEGY_PARAMS[strategy].model_validate(res.best_params)
    assert len(res.stability) >= 2                                    # the best + perturbations
    sides: set[str] = set()
    for rec in res.windows:
        w = rec.window
        ref, k = ev.event_window_backtest(candles, strategy, rec.chosen, w.oos_start, w.oos_end, funding=funding)
        assert rec.oos_cycles == ref.n_cycles, (strategy, rec)
        assert math.isclose(rec.oos_return, ref.final_equity / 10_000.0 - 1.0, rel_tol=REL, abs_tol=1e-12)
        r = window_daily_returns(ref.ts[k:], ref.equity[k:], 10_000.0)
        assert math.isclose(rec.oos_sharpe, annualised_sharpe(r), rel_tol=1e-9, abs_tol=1e-12)
        sides |= {c.side for c in ref.cycles}
    return sides


@pytest.mark.parametrize("strategy", CANDLE_ONLY)
def test_walk_forward_every_strategy_on_btc(strategy: str) -> None:
    c = btc_2019()
    res = walk_forward(c, strategy, grids()[strategy], settings=SHORT)
    sides = _check_result(res, strategy, c)
    want = {"envelope_dca": {"long"}, "envelope_dca_short": {"short"}}.get(strategy, {"long", "short"})
    assert sides == want, (strategy, sides)
    space = ev.grid_space(strategy, grids()[strategy])
    assert res.n_combos <= space.size and res.n_combos >= min(space.size, 27)


def test_funding_on_the_real_perpetual_with_short_windows() -> None:
    c, fund = futures_5m()                                   # 2025-03-06 .. 2025-04-13, 5m
    grid = {"funding_threshold": [0.00003, 0.00005, 0.0001], "sl_percent": [0.01, 0.03],
            "tp_percent": [0.01, 0.03], "max_hold_candles": [48, 288]}
    settings = WalkForwardSettings(is_days=14, oos_days=7, step_days=7, n_boot=200)
    res = walk_forward(c, "funding", grid, settings=settings, funding=fund)
    assert len(res.windows) == len(windows_for(c, 300_000, 14, 7, 7)) == 3
    sides = _check_result(res, "funding", c, fund)
    assert sides                                             # it trades
    assert res.n_combos == 24


def test_funding_default_windows_on_a_stand_in_perpetual() -> None:
    """Default windows (IS 180 / OOS 60 / step 60) need 240+ days: real BTC 1h candles
    2019-2021 as the perpetual, with the synthesized causal funding series."""
    c, fund = stand_in_perpetual("2019-01-01", "2021-01-01")
    res = walk_forward(c, "funding", grids()["funding"], settings=WalkForwardSettings(n_boot=200), funding=fund)
    assert len(res.windows) == (731 - 240) // 60 + 1
    sides = _check_result(res, "funding", c, fund)
    assert sides == {"long", "short"}
    # the funding series matters: without its extremes there is no trade at all
    flat = (fund[0], np.zeros_like(fund[1]))
    quiet = walk_forward(c, "funding", grids()["funding"], settings=WalkForwardSettings(n_boot=200), funding=flat)
    assert quiet.n_oos_cycles == 0 and res.n_oos_cycles > 0


# -- the command line ---------------------------------------------------------------------------------
def _radar(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def _write_freqtrade(path: Path, rows: np.ndarray) -> Path:
    with gzip.open(path, "wt") as f:
        json.dump(rows.tolist(), f)
    return path


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database holding BTC/USDT 1h (the shared file, `radar data import`) and the stand-in
    perpetual BTC/USDT:USDT 1h 2019-01 .. 2019-10 with its 8h funding rates (and the same candles as
    ETH/USDT:USDT, without funding rates)."""
    root = tmp_path_factory.mktemp("wfo_every")
    db = root / "radar.db"
    code, _, err = _radar("--db", str(db), "data", "import", str(shared_file("binance-spot/BTC_USDT-1h.json.gz")))
    assert code == 0, err
    c, (fts, rate) = stand_in_perpetual("2019-01-01", "2019-11-01")
    rows = np.column_stack([c.ts, c.open, c.high, c.low, c.close, c.volume])
    perp = _write_freqtrade(root / "BTC_USDT_USDT-1h-futures.json.gz", rows)
    zeros = np.zeros(fts.size)
    fund = _write_freqtrade(root / "BTC_USDT_USDT-8h-funding_rate.json.gz",
                            np.column_stack([fts, rate, zeros, zeros, zeros, zeros]))
    code, _, err = _radar("--db", str(db), "data", "import", str(perp), str(fund))
    assert code == 0, err
    (root / "bare").mkdir()                                  # a perpetual without funding rates
    bare = _write_freqtrade(root / "bare" / "ETH_USDT_USDT-1h-futures.json.gz", rows)
    code, _, err = _radar("--db", str(db), "data", "import", str(bare))
    assert code == 0, err
    return db


def _optimize(db: Path, strategy: str, symbol: str, start: str, end: str, *extra: str) -> tuple[int, str, str]:
    return _radar("--config-dir", str(DEFAULT_CONFIG_DIR), "--db", str(db), "optimize", "--strategy", strategy,
                  "--symbols", symbol, "--timeframe", "1h", "--from", start, "--to", end, "--is-days", "60",
                  "--oos-days", "20", "--step-days", "20", "--json", *extra)


def _check_cli(out: str, strategy: str, symbol: str) -> dict:
    doc = json.loads(out)
    assert doc["strategy"] == strategy and doc["timeframe"] == "1h"
    (r,) = doc["results"]
    assert r["symbol"] == symbol and r["complete"] is True and r["windows"] >= 3
    assert r["grade"] in ("A", "B", "C", "D", "F")
    assert CRITERIA <= set(r["criteria"])
    assert set(r["best_params"]) == set(STRATEGY_PARAMS[strategy].model_fields)
    profile = r.get("grading_profile", r.get("profile"))      # which grading profile graded
    assert isinstance(profile, str) and profile, sorted(r)
    assert all(v is None or math.isfinite(v) for v in r["criteria"].values())
    return r


@pytest.mark.parametrize("strategy", CANDLE_ONLY)
def test_cli_optimize_every_candle_strategy(store: Path, strategy: str) -> None:
    code, out, err = _optimize(store, strategy, "BTC/USDT", "2019-01-01", "2019-05-01")
    assert code == 0, err
    _check_cli(out, strategy, "BTC/USDT")


def test_cli_optimize_funding_on_the_stored_perpetual(store: Path) -> None:
    code, out, err = _optimize(store, "funding", "BTC/USDT:USDT", "2019-01-01", "2019-11-01")
    assert code == 0, err
    r = _check_cli(out, "funding", "BTC/USDT:USDT")
    assert r["market"] == "futures" and r["oos_cycles"] > 0
    code, _, err = _optimize(store, "funding", "BTC/USDT", "2019-01-01", "2019-05-01")
    assert code == 2 and "is not a perpetual" in err
    code, _, err = _optimize(store, "funding", "ETH/USDT:USDT", "2019-01-01", "2019-05-01")
    assert code == 1 and "needs the funding-rate history of ETH/USDT:USDT: none stored" in err


def test_cli_funding_with_the_rates_beside_the_data_file(store: Path, tmp_path: Path) -> None:
    perp = store.parent / "BTC_USDT_USDT-1h-futures.json.gz"
    code, out, err = _radar("--config-dir", str(DEFAULT_CONFIG_DIR), "--db", str(tmp_path / "r.db"), "optimize",
                            "--strategy", "funding", "--data", str(perp), "--is-days", "60", "--oos-days", "20",
                            "--step-days", "20", "--json")
    assert code == 0, err
    _check_cli(out, "funding", "BTC/USDT:USDT")
    alone = tmp_path / "alone"
    alone.mkdir()
    lone = alone / perp.name
    lone.write_bytes(perp.read_bytes())
    code, _, err = _radar("--db", str(tmp_path / "r.db"), "optimize", "--strategy", "funding", "--data", str(lone),
                          "--json")
    assert code != 0 and "funding-rate history" in err


def test_cli_apply_a_single_position_result(store: Path, tmp_path: Path) -> None:
    """A single-position strategy's result applies like an envelope one: its best params become the
    symbol's override in strategies.yaml (valid for the strategy's model)."""
    import shutil

    from core.config import load_config, strategy_params

    code, out, err = _optimize(store, "supertrend", "BTC/USDT", "2019-01-01", "2019-05-01")
    assert code == 0, err
    r = _check_cli(out, "supertrend", "BTC/USDT")
    cfg = tmp_path / "config"
    shutil.copytree(DEFAULT_CONFIG_DIR, cfg)
    assets = cfg / "assets.yaml"
    assets.write_text(assets.read_text() + "  - symbol: BTC/USDT\n    market: spot\n    timeframes: [\"1h\"]\n")
    code, _, err = _radar("--config-dir", str(cfg), "--db", str(store), "optimize", "--apply", str(r["result_id"]),
                          "--force", "--json")
    assert code == 0, err
    got = strategy_params(load_config(cfg), "supertrend", "BTC/USDT").model_dump()
    assert got == r["best_params"]
