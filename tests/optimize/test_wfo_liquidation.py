"""Walk-forward of `liquidation` on a perpetual with its open interest (issue 14).

Real BTC/USDT:USDT 5m candles (binance-futures, 2025-03-06 .. 2025-04-13) with the
deterministic synthetic open interest of `tests/support/open_interest_data.py` (no OI
history is stored offline). Checked: the window backtest of the fast kernel equals the
event-driven engine's; a whole walk-forward completes, graded, every window's OOS figures
re-derived by the event engine; `radar optimize --strategy liquidation` on a store holding the
perpetual and its stored open interest, and its refusals.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from core.errors import UsageError
from core.optimize import evaluators as ev
from core.optimize.walk_forward import WalkForwardSettings, annualised_sharpe, walk_forward, window_daily_returns
from core.storage.db import open_sync
from core.storage.open_interest_store import write_open_interest
from tests.optimize.test_wfo_every_strategy import (
    REL, _check_result, _ms, _radar, futures_5m, grids, pick,
)
from tests.support.open_interest_data import synthetic_oi
from tests.support.shared_data import shared_file

SHORT_5M = WalkForwardSettings(is_days=14, oos_days=7, step_days=7, n_boot=200)
#: a smaller grid than the default (216) to keep the suite fast
GRID = {"oi_period": [1, 3], "oi_drop_threshold": [0.01, 0.02], "move_atr": [1.5, 2.5], "sl_atr": [1.5],
        "tp_atr": [2.0], "max_hold_candles": [12]}


def perp():
    c, _ = futures_5m()
    return c, synthetic_oi(c)


def test_warmup_and_refusal_without_open_interest() -> None:
    assert ev.warmup_candles("liquidation", {"oi_period": 3, "atr_period": 14}) == 16
    assert ev.warmup_candles("liquidation", {"oi_period": 30, "atr_period": 14}) == 32
    c, _ = perp()
    with pytest.raises(UsageError, match="needs the perpetual's open-interest history"):
        walk_forward(c, "liquidation", GRID, settings=SHORT_5M)


def test_window_backtest_equals_the_event_engine() -> None:
    c, oi = perp()
    start, end = _ms("2025-03-20"), _ms("2025-03-30")
    e = ev.evaluator_for("liquidation", funding=oi)
    combos = pick("liquidation", 4)
    sharpe, ret = e.is_stats(c, start, end, combos)
    traded = 0
    for i, p in enumerate(combos):
        fast = e.window(c, p, start, end)
        ref, k = ev.event_window_backtest(c, "liquidation", p, start, end, funding=oi)
        assert np.array_equal(fast.ts, ref.ts[k:]) and fast.ts[0] == start
        assert np.allclose(fast.equity, ref.equity[k:], rtol=REL, atol=0.0), p
        assert np.all(ref.equity[:k] == 10_000.0)
        assert [x.pnl for x in ref.cycles] == pytest.approx(fast.pnls.tolist(), rel=REL, abs=1e-9)
        assert all(x.open_time >= start for x in ref.cycles)
        assert math.isclose(ret[i], ref.final_equity / 10_000.0 - 1.0, rel_tol=REL, abs_tol=1e-12)
        r = window_daily_returns(ref.ts[k:], ref.equity[k:], 10_000.0)
        assert math.isclose(sharpe[i], annualised_sharpe(r), rel_tol=1e-9, abs_tol=1e-12), p
        traded += len(ref.cycles)
    assert traded > 0


def test_walk_forward_on_the_perpetual_with_short_windows() -> None:
    c, oi = perp()
    res = walk_forward(c, "liquidation", GRID, settings=SHORT_5M, funding=oi)
    assert len(res.windows) == 3 and res.n_combos == 8
    sides = _check_result(res, "liquidation", c, oi)
    assert sides == {"long", "short"}
    assert set(grids()["liquidation"]) <= set(ev.STRATEGY_PARAMS["liquidation"].model_fields)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database with BTC/USDT:USDT 5m (the shared file, `radar data import`) and its synthetic
    open interest in `open_interest`; ETH/USDT:USDT 5m without open interest."""
    db = tmp_path_factory.mktemp("wfo_liq") / "radar.db"
    for sym in ("BTC", "ETH"):
        code, _, err = _radar("--db", str(db), "data", "import",
                              str(shared_file(f"binance-futures/{sym}_USDT_USDT-5m-futures.json.gz")))
        assert code == 0, err
    _, (ts, oi) = perp()
    conn = open_sync(db)
    try:
        conn.execute("BEGIN IMMEDIATE")
        write_open_interest(conn, "BTC/USDT:USDT", ts, oi, "test")
        conn.execute("COMMIT")
    finally:
        conn.close()
    return db


def _optimize(db: Path, symbol: str, *extra: str) -> tuple[int, str, str]:
    from core.paths import DEFAULT_CONFIG_DIR

    return _radar("--config-dir", str(DEFAULT_CONFIG_DIR), "--db", str(db), "optimize", "--strategy", "liquidation",
                  "--symbols", symbol, "--timeframe", "5m", "--is-days", "14", "--oos-days", "7", "--step-days", "7",
                  "--json", *extra)


def test_cli_optimize_liquidation_on_the_stored_open_interest(store: Path) -> None:
    code, out, err = _optimize(store, "BTC/USDT:USDT", "--max-points", "12")
    assert code == 0, err
    import json

    doc = json.loads(out)
    (r,) = doc["results"]
    assert doc["strategy"] == "liquidation" and r["symbol"] == "BTC/USDT:USDT" and r["complete"] is True
    assert r["windows"] == 3 and r["grade"] in ("A", "B", "C", "D", "F")
    assert set(r["best_params"]) == set(ev.STRATEGY_PARAMS["liquidation"].model_fields)
    code, _, err = _optimize(store, "ETH/USDT:USDT")
    assert code == 1 and "needs the open-interest history of ETH/USDT:USDT: none stored" in err
    code, _, err = _optimize(store, "BTC/USDT")
    assert code == 2 and "is not a perpetual" in err


@pytest.mark.parametrize("engine", ("event", "fast"))
def test_cli_backtest_reads_the_stored_open_interest(store: Path, engine: str) -> None:
    import json

    from core.backtest.event_engine import run_event_backtest

    code, out, err = _radar("--db", str(store), "backtest", "--strategy", "liquidation", "--symbol", "BTC/USDT:USDT",
                            "--timeframe", "5m", "--engine", engine, "--json")
    assert code == 0, err
    c, oi = perp()
    want = run_event_backtest(c, "liquidation", {}, funding=oi)
    doc = json.loads(out)
    assert doc["n_cycles"] == want.n_cycles > 0
    assert doc["final_equity"] == pytest.approx(want.final_equity, rel=1e-9)
    code, _, err = _radar("--db", str(store), "backtest", "--strategy", "liquidation", "--symbol", "ETH/USDT:USDT",
                          "--timeframe", "5m", "--json")
    assert code == 2 and "needs the open interest of ETH/USDT:USDT" in err
