"""Single-position strategies in the engine: a paper replay of one equals its event backtest
(the spec JSON of the report); a grid and a single-position strategy on the same symbol never
hold positions at the same time (mutually exclusive per symbol)."""

from __future__ import annotations

import asyncio
import math

from core.backtest.event_engine import run_event_backtest
from core.backtest.loading import load_from_file
from core.backtest.report import build_report
from core.data.replay import ReplayFeed
from core.engine.engine import CandleSource, Engine, RunnerSpec
from core.events.bus import RiskRejection
from core.executor.state_store import StateStore
from core.model.account import Account
from tests.support.shared_data import shared_file


def _candles(n: int):
    c = load_from_file(shared_file("binance-spot/BTC_USDT-1h.json.gz"))
    return c.between(None, int(c.ts[n]))


def _engine(tmp_path, candles, strategies: list[str], name: str) -> Engine:
    cols = [a.tolist() for a in (candles.ts, candles.open, candles.high, candles.low, candles.close, candles.volume)]
    src = CandleSource(candles.symbol, candles.timeframe,
                       lambda after: ReplayFeed.from_candles(candles, speed="max", start_after_ts=after),
                       lambda up_to, n: [r for r in zip(*cols) if up_to is None or r[0] <= up_to][-n:], replay=True)
    return Engine(tmp_path / name, [src], [RunnerSpec(s, {}, candles.symbol, candles.timeframe) for s in strategies],
                  Account(), status_interval=0)


def test_single_position_replay_equals_its_backtest(tmp_path) -> None:
    candles = _candles(3000)
    for strategy in ("vwap_rsi", "donchian_breakout"):
        eng = _engine(tmp_path, candles, [strategy], f"{strategy}.db")
        asyncio.run(eng.run())
        assert eng.finished
        got = build_report(tmp_path / f"{strategy}.db", Account())[0]
        want = run_event_backtest(candles, strategy, {}, Account()).to_spec_json()
        assert got["n_cycles"] == want["n_cycles"] and want["n_cycles"] > 0, strategy
        assert got["final_equity"] == want["final_equity"]
        assert [c["exit_reason"] for c in got["cycles"]] == [c["exit_reason"] for c in want["cycles"]]


def _open_intervals(db, runner_id: int) -> list[tuple[int, int]]:
    store = StateStore(db)
    rows = store.conn.execute("SELECT ts, qty FROM trading_positions WHERE runner_id=? ORDER BY id",
                              (runner_id,)).fetchall()
    store.close()
    out, start = [], None
    for ts, qty in rows:
        if qty > 0 and start is None:
            start = ts
        elif qty == 0 and start is not None:
            out.append((start, ts))
            start = None
    if start is not None:
        out.append((start, math.inf))
    return out


def test_grid_and_single_position_are_exclusive_per_symbol(tmp_path) -> None:
    candles = _candles(3000)
    eng = _engine(tmp_path, candles, ["envelope_dca", "donchian_breakout"], "both.db")
    sub = eng.bus.subscribe([RiskRejection])
    asyncio.run(eng.run())
    busy = 0
    while len(sub):
        busy += sub.get_nowait().reason == "symbol_busy"
    assert busy > 0
    grid, single = (_open_intervals(tmp_path / "both.db", r.runner_id) for r in eng.runners)
    assert grid and single
    for a0, a1 in grid:
        for b0, b1 in single:
            assert a1 <= b0 or b1 <= a0, ((a0, a1), (b0, b1))
