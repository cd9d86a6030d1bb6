"""Alert rule "underperforming the backtest" (`core.alerts.rules.underperformance`): the band is the
Monte Carlo 5th percentile of the cumulative return built from the stored walk-forward result's
out-of-sample windows. Here the windows are the real 60-day returns of envelope_dca's event
backtest on the full shared file; the ETH/USDT 1h crash of 2017 falls below the band, BTC/USDT
1h's first 3,000 candles stay above it."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from core.alerts.rules.underperformance import MonteCarloBand, UnderperformanceRule, expectation_for
from core.backtest.event_engine import run_event_backtest
from core.backtest.loading import load_from_file
from core.config.alert_rules import UnderperformanceRule as UnderperformanceConfig
from core.storage.db import open_sync
from core.strategies import registry
from tests.alerts.rule_replay import real_candles, replay, store_result
from tests.support.shared_data import shared_file

ETH_1H = "binance-spot/ETH_USDT-1h.json.gz"
BTC_1H = "binance-spot/BTC_USDT-1h.json.gz"
WINDOW_DAYS = 60
PARAMS = dict(registry.create("envelope_dca", {}).params)


def backtest_windows(rel: str) -> list[float]:
    """envelope_dca's return over each whole 60-day window of the event backtest on the full file."""
    c = load_from_file(shared_file(rel))
    res = run_event_backtest(c, "envelope_dca", {})
    step = WINDOW_DAYS * 86_400_000
    idx = np.searchsorted(res.ts, np.arange(res.ts[0], res.ts[-1], step))
    eq = np.concatenate([[res.equity[0]], res.equity])
    return [float(eq[b] / eq[a] - 1.0) for a, b in zip(idx[:-1], idx[1:])]


async def test_fires_when_the_return_falls_below_the_monte_carlo_band_on_real_eth(tmp_path: Path) -> None:
    db = tmp_path / "u.db"
    rid = store_result(db, "envelope_dca", "ETH/USDT", "1h", PARAMS, backtest_windows(ETH_1H))
    run = await replay(db, real_candles(ETH_1H, 0, 600))
    rows = run.keyed("rule.underperformance:envelope_dca:ETH/USDT:1h")
    assert len(rows) == 1 and rows[0]["severity"] == "warning" and rows[0]["count"] == 1
    assert "below the backtest's 5% band" in rows[0]["title"]
    assert f"result #{rid} (" in rows[0]["detail"] and "60 days" in rows[0]["detail"]
    (fired_ts,) = [ts for ts, a in run.actions("rule.underperformance:") if a.severity]
    start = int(run.engine.runners[0].history.ts[0])
    assert fired_ts - start >= 7 * 86_400_000                     # no verdict before min_days


async def test_no_alert_while_above_the_band_on_real_btc(tmp_path: Path) -> None:
    db = tmp_path / "b.db"
    store_result(db, "envelope_dca", "BTC/USDT", "1h", PARAMS, backtest_windows(BTC_1H))
    run = await replay(db, real_candles(BTC_1H, 0, 3000))
    assert run.keyed("rule.underperformance:") == []
    band, note = run.rules.underperformance._runners[id(run.engine.runners[0])][:2]
    assert band is not None and "31 OOS windows" in note


def test_no_band_for_other_params_or_without_a_result(tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    cfg = UnderperformanceConfig()
    conn = open_sync(db)
    try:
        none = expectation_for(conn, "envelope_dca", "BTC/USDT", "1h", PARAMS, cfg)
        assert none == (None, "no stored research result")
        store_result(db, "envelope_dca", "BTC/USDT", "1h", {**PARAMS, "num_levels": 4}, [0.1, -0.05, 0.02])
        band, note = expectation_for(conn, "envelope_dca", "BTC/USDT", "1h", PARAMS, cfg)
        assert band is None and "the runner trades" in note
        band, _ = expectation_for(conn, "envelope_dca", "BTC/USDT", "1h", PARAMS,
                                  UnderperformanceConfig(same_params_only=False))
        assert band is not None
    finally:
        conn.close()


def test_band_of_identical_windows_is_their_compounded_return() -> None:
    band = MonteCarloBand([0.05, 0.05, 0.05], 60.0)
    for days in (7.0, 60.0, 95.5, 400.0):
        want = 1.05 ** (math.floor(days) / 60.0) - 1.0
        assert band.band(days) == pytest.approx(want, rel=1e-12, abs=1e-12)


def test_band_is_reproducible_and_ordered_by_percentile() -> None:
    rets = [0.3, -0.2, 0.1, 0.05, -0.1, 0.2, 0.0, -0.05]
    a, b = MonteCarloBand(rets, 60.0, seed=3), MonteCarloBand(rets, 60.0, seed=3)
    assert [a.band(d) for d in (10, 100, 500)] == [b.band(d) for d in (10, 100, 500)]
    low, mid = MonteCarloBand(rets, 60.0, percentile=0.05), MonteCarloBand(rets, 60.0, percentile=0.25)
    assert low.band(120) < mid.band(120) < 0.3
    with pytest.raises(ValueError, match="at least 2 windows"):
        MonteCarloBand([0.1], 60.0)


def test_fires_once_and_resolves_above_the_band_plus_margin() -> None:
    rule = UnderperformanceRule(UnderperformanceConfig(min_days=1, rearm_band=0.01))
    band = MonteCarloBand([0.0, 0.0], 60.0)                     # band 0 % at every horizon
    r = SimpleNamespace(name="envelope_dca", symbol="BTC/USDT", timeframe="1h", equity_last=10_000.0)
    rule._runners[id(r)] = (band, "test result", 0, 10_000.0)
    day = 86_400_000
    out = []
    for i, eq in enumerate([9_000.0, 9_500.0, 9_000.0, 10_050.0, 10_150.0, 9_990.0], start=1):
        r.equity_last = eq
        out.append([a.severity for a in rule.evaluate(r, i * day)])
    # -10 % fires; -5 %, -10 % and +0.5 % (within the 1 % margin) nothing; +1.5 % resolves; -0.1 % fires again
    assert out == [["warning"], [], [], [], [None], ["warning"]]
