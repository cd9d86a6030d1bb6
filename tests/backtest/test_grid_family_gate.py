"""The new-cycle gate holds in the shared matching engine (event backtest) and in the paper
grid runner (the engine replaying candles through the grid executor and the simulated venue),
and the paper runs equal the event backtest (docs/grid_family.md, "The new-cycle gate").

* Matching engine: on real BTC 1h, every grid_rsi / grid_mtf cycle opens on a candle whose
  quote had the gate open; while flat with the gate closed nothing fills although the candle
  reaches level 0; in a position a closed gate changes nothing (levels and exits still work).
* Paper: the in-process engine (`Engine` + `GridRunner`, as `radar run`) on a BTC slice gives
  exactly the event backtest's report; and the headless CLI replay
  `radar run --no-ui --replay FILE --report` with grid_rsi configured gives the event backtest's
  cycles (as tests/engine/test_engine_replay.py for envelope_dca).
* Executor: flat with the gate closed, `sync_orders` places no entry and cancels resting ones.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from core.backtest.event_engine import run_event_backtest
from core.backtest.loading import load_from_file
from core.backtest.report import build_report
from core.engine.engine import CandleSource, Engine, RunnerSpec
from core.model.account import Account
from core.model.candles import Candles
from core.paths import DEFAULT_CONFIG_DIR
from tests.support.shared_data import shared_file

PROJECT = Path(__file__).resolve().parents[2]
BTC_1H = "binance-spot/BTC_USDT-1h.json.gz"


@functools.lru_cache(maxsize=None)
def btc() -> Candles:
    return load_from_file(shared_file(BTC_1H))


@pytest.mark.parametrize("strategy", ("grid_rsi", "grid_rsi_short", "grid_mtf", "grid_mtf_short"))
def test_matching_engine_honours_the_gate(strategy: str) -> None:
    c = btc().between(None, int(btc().ts[15_000]))
    sgn = -1.0 if strategy.endswith("_short") else 1.0
    seen: list[tuple] = []
    prev = {"filled": 0}

    def observer(t, eng):
        st = eng.strategy
        seen.append((t, st.allow_new_cycle, prev["filled"], eng.levels_filled, list(st.levels)))
        prev["filled"] = eng.levels_filled

    res = run_event_backtest(c, strategy, {"envelope_start": 0.02}, observer=observer)
    assert len(res.cycles) > 5
    by_t = {row[0]: row for row in seen}
    ts = c.ts.tolist()
    for cyc in res.cycles:                                   # every cycle opened with the gate open
        assert by_t[ts.index(cyc.open_time)][1] is True
    blocked = carried = 0
    for t, gate, before, after, levels in seen:
        if before == 0 and not gate:
            assert after == 0                                # flat and gated: nothing fills
            reach = c.low[t] <= levels[0] if sgn > 0 else c.high[t] >= levels[0]
            blocked += bool(reach)
        if before > 0 and not gate:
            carried += 1                                     # in a position while the gate is closed
    assert blocked > 0 and carried > 0
    # a cycle went on (level fill or exit) on a candle whose gate was closed
    changed = [row for row in seen if row[2] > 0 and not row[1] and row[3] != row[2]]
    assert changed


def _source(candles: Candles) -> CandleSource:
    from core.data.replay import ReplayFeed

    cols = [a.tolist() for a in (candles.ts, candles.open, candles.high, candles.low, candles.close)]

    def history(up_to, n):
        rows = [r for r in zip(*cols) if up_to is None or r[0] <= up_to]
        return rows[-n:]

    return CandleSource(candles.symbol, candles.timeframe,
                        lambda after: ReplayFeed.from_candles(candles, speed="max", start_after_ts=after), history)


@pytest.mark.parametrize("strategy,params", [
    ("grid_rsi", {"envelope_start": 0.02}), ("grid_mtf_short", {"envelope_start": 0.02}), ("grid_atr", {}),
])
async def test_paper_engine_equals_the_event_backtest(tmp_path: Path, strategy: str, params: dict) -> None:
    full = btc()
    candles = full.between(None, int(full.ts[4000]))
    eng = Engine(tmp_path / "e.db", [_source(candles)], [RunnerSpec(strategy, params, candles.symbol, "1h")],
                 Account(), status_interval=0)
    await eng.run()
    assert eng.finished
    want = run_event_backtest(candles, strategy, params, Account()).to_spec_json()
    assert want["n_cycles"] > 3
    assert build_report(tmp_path / "e.db", Account()) == [want]


def test_headless_replay_cli_equals_the_event_backtest(tmp_path: Path) -> None:
    data = shared_file(BTC_1H)
    cfg = tmp_path / "config"
    shutil.copytree(DEFAULT_CONFIG_DIR, cfg)
    doc = yaml.safe_load((cfg / "strategies.yaml").read_text())
    for name, entry in doc["strategies"].items():
        entry["enabled"] = name == "grid_rsi"
    doc["strategies"]["grid_rsi"]["params"]["envelope_start"] = 0.02
    (cfg / "strategies.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    radar = [sys.executable, "-m", "core.cli.main", "--config-dir", str(cfg)]
    report = tmp_path / "r.json"
    span = ("--from", "2019-01-01", "--to", "2019-07-01")
    run = subprocess.run([*radar, "--db", str(tmp_path / "r.db"), "run", "--no-ui", "--replay", str(data), *span,
                          "--speed", "max", "--report", str(report), "--status-interval", "0"],
                         cwd=PROJECT, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    bt = subprocess.run([*radar, "backtest", "--strategy", "grid_rsi", "--engine", "event", "--data", str(data),
                         *span, "--json"], cwd=PROJECT, env=env, capture_output=True, text=True, timeout=600)
    assert bt.returncode == 0, bt.stderr[-2000:]
    want = json.loads(bt.stdout)
    (got,) = json.loads(report.read_text())
    assert got["strategy"] == "grid_rsi" and want["n_cycles"] > 3
    assert got == want


async def test_executor_places_no_entry_while_flat_and_gated(tmp_path: Path, monkeypatch) -> None:
    """The paper runner on BTC candles where grid_rsi's gate flips: after every candle, while
    flat with the gate closed, the executor holds no entry order (and the simulated venue
    rests none); with the gate open it rests level 0; in a position, entries stay."""
    from core.engine.grid_runner import GridRunner
    from core.executor.grid_executor import PURPOSE

    full = btc()
    candles = full.between(None, int(full.ts[2000]))
    seen = {"gated": 0, "open": 0, "in_position_gated": 0}
    orig = GridRunner.on_candle

    async def on_candle(self, ts, o, h, lo, c):
        await orig(self, ts, o, h, lo, c)
        entries = [r for r in self.executor.orders.values() if r[PURPOSE] == "entry"]
        venue_entries = [x for x in self.venue.quote.levels if x == x]          # NaN: no resting order
        if self.book.levels_filled == 0 and self.strategy.take_profit == self.strategy.take_profit:
            if not self.strategy.allow_new_cycle:
                assert entries == [] and venue_entries == [], ts
                seen["gated"] += 1
            else:
                assert entries and venue_entries, ts
                seen["open"] += 1
        elif self.book.levels_filled and not self.strategy.allow_new_cycle:
            seen["in_position_gated"] += 1

    monkeypatch.setattr(GridRunner, "on_candle", on_candle)
    spec = RunnerSpec("grid_rsi", {"envelope_start": 0.02}, candles.symbol, "1h")
    eng = Engine(tmp_path / "g.db", [_source(candles)], [spec], Account(), status_interval=0)
    await eng.run()
    assert seen["gated"] > 100 and seen["open"] > 10 and seen["in_position_gated"] > 0, seen
    want = run_event_backtest(candles, "grid_rsi", {"envelope_start": 0.02}, Account()).to_spec_json()
    assert build_report(tmp_path / "g.db", Account()) == [want]


async def test_paper_grid_funding_with_its_funding_series_equals_the_event_backtest(tmp_path: Path) -> None:
    """The engine binds the source's funding series to the grid runner (`GridRunner(funding=...)`):
    grid_funding trades exactly as the event backtest; a source without funding keeps the gate
    closed (no cycle)."""
    from core.engine.assembly import funding_beside

    path = Path(shared_file("binance-futures/BTC_USDT_USDT-5m-futures.json.gz"))
    candles, funding = load_from_file(path, resample="1h"), funding_beside(path)
    params = {"ma_period": 5, "num_levels": 2, "envelope_start": 0.01, "envelope_step": 0.01, "sl_percent": 0.1,
              "funding_threshold": 0.000005}
    want = run_event_backtest(candles, "grid_funding_short", params, Account(), funding=funding).to_spec_json()
    assert want["n_cycles"] >= 3
    spec = RunnerSpec("grid_funding_short", params, candles.symbol, "1h")

    eng = Engine(tmp_path / "none.db", [_source(candles)], [spec], Account(), status_interval=0)
    await eng.run()
    assert build_report(tmp_path / "none.db", Account())[0]["n_cycles"] == 0      # fail closed

    src = _source(candles)
    src.funding = funding
    eng = Engine(tmp_path / "f.db", [src], [spec], Account(), status_interval=0)
    await eng.run()
    assert build_report(tmp_path / "f.db", Account()) == [want]


def test_grid_funding_closes_its_gate_on_a_stale_funding_rate() -> None:
    """A rate older than two funding intervals (a live engine whose stored rates stopped at its
    start) closes the gate in both engines; a fresh one of the same value opens it."""
    import numpy as np

    from core.backtest.fast.grid_family import quote_arrays
    from core.strategies.base import CandleHistory
    from core.strategies.grid_funding import MAX_RATE_AGE_MS, GridFundingShort

    hour = 3_600_000
    params = {"ma_period": 2, "funding_threshold": 0.0001}
    ts = np.arange(40, dtype=np.int64) * hour
    c = np.full(40, 100.0)
    funding = (np.array([0], dtype=np.int64), np.array([0.001]))     # one high rate at t=0
    strat = GridFundingShort(params)
    strat.bind_market("1h", funding)
    hist, gates = CandleHistory(), []
    for t in range(40):
        if strat.on_candle_open(hist):
            gates.append((t, strat.allow_new_cycle))
        hist.append(int(ts[t]), 100.0, 100.0, 100.0, 100.0)
    fresh = [t for t, g in gates if g]
    assert fresh and max(fresh) * hour <= MAX_RATE_AGE_MS and all(
        not g for t, g in gates if t * hour > MAX_RATE_AGE_MS)
    m, _, gate = quote_arrays("grid_funding_short", params, ts, c, c, c, c, timeframe="1h", funding=funding)
    assert [t for t in range(40) if gate[t] and np.isfinite(m[t])] == fresh      # m NaN: no quote (t < N)
