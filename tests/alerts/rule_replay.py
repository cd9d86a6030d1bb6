"""Support for the alert-rule tests (`tests/alerts/test_rule_*.py`): an in-process paper engine
replaying a slice of the shared real candles with `AlertRules` on its own AlertEngine, and a
stored research result written as `radar optimize` would store it (the columns the rule reads)."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.alerts.engine import AlertEngine
from core.alerts.rules.service import AlertRules
from core.backtest.loading import load_from_file
from core.config.alert_rules import AlertRulesConfig
from core.engine.engine import Engine, RunnerSpec
from core.model.account import Account
from core.model.candles import Candles
from core.storage.db import open_sync
from tests.engine.test_engine_replay import _source
from tests.support.shared_data import shared_file

DAY_MS = 86_400_000


def real_candles(rel: str, start: int, stop: int) -> Candles:
    """Rows [start, stop) of a shared freqtrade file (e.g. "binance-spot/ETH_USDT-1h.json.gz")."""
    c = load_from_file(shared_file(rel))
    return c.between(int(c.ts[start]), int(c.ts[stop - 1]))


@dataclass
class Replay:
    """What a replay left: the engine, the rules and every alert row (dicts, in id order)."""

    engine: Engine
    rules: AlertRules
    alerts: list[dict] = field(default_factory=list)

    def keyed(self, prefix: str) -> list[dict]:
        """The alert rows whose dedup key starts with `prefix`."""
        return [a for a in self.alerts if a["dedup_key"].startswith(prefix)]

    def actions(self, prefix: str) -> list[tuple[int, Any]]:
        """(candle ts, RuleAlert) of the rules' actions on keys starting with `prefix`."""
        return [(ts, a) for ts, a in self.rules.recent if a.key.startswith(prefix)]


def alert_rows(db: Path) -> list[dict]:
    conn = sqlite3.connect(db)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute("SELECT * FROM alerts ORDER BY id")]
    finally:
        conn.close()


async def replay(db: Path, candles: Candles, config: dict | None = None, *, account: Account = Account(),
                 risk_config: Any = None, strategy: str = "envelope_dca", params: dict | None = None,
                 max_drawdown: float | None = None, hooks: tuple = (), setup: Any = None) -> Replay:
    """Replay `candles` at full speed through an in-process paper Engine with `AlertRules`
    (config: an `alert_rules.yaml` mapping) raising into an AlertEngine on the same database.
    `hooks`: more candle hooks, run after the rules'; `setup(rules)`: called before the start."""
    spec = RunnerSpec(strategy, dict(params or {}), candles.symbol, candles.timeframe)
    eng = Engine(db, [_source(candles)], [spec], account, status_interval=0, risk_config=risk_config)
    alerts = await AlertEngine.open(db)
    try:
        rules = AlertRules(eng, alerts, AlertRulesConfig.model_validate(config or {}), max_drawdown=max_drawdown)
        if setup is not None:
            setup(rules)
        rules.start()
        eng.candle_hooks.extend(hooks)
        try:
            await eng.run()
        finally:
            await rules.close()
        assert eng.finished and eng.error is None
        assert rules.failures == 0
    finally:
        await alerts.close()
    return Replay(eng, rules, alert_rows(db))


def store_result(db: Path, strategy: str, symbol: str, timeframe: str, params: dict, window_returns: list[float],
                 *, oos_days: int = 60, start_ms: int = 1_500_000_000_000) -> int:
    """Write a complete, latest walk-forward result with these OOS window returns (fractions) into
    `optimization_results` (as `core.optimize.results_store.save_result` lays it out); returns its id."""
    windows = [{"index": i, "is_start": start_ms + i * oos_days * DAY_MS - 180 * DAY_MS,
                "is_end": start_ms + i * oos_days * DAY_MS, "oos_start": start_ms + i * oos_days * DAY_MS,
                "oos_end": start_ms + (i + 1) * oos_days * DAY_MS, "chosen": 0, "searched": 1, "is_sharpe": 1.0,
                "oos_return": float(r), "oos_sharpe": 1.0, "oos_cycles": 10} for i, r in enumerate(window_returns)]
    conn = open_sync(db)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("UPDATE optimization_results SET is_latest = 0 WHERE strategy = ? AND symbol = ? "
                     "AND timeframe = ?",
                     (strategy, symbol, timeframe))
        cur = conn.execute(
            "INSERT INTO optimization_results (strategy, symbol, market, timeframe, complete, is_latest, grade, score, "
            "oos_sharpe, consistency, oos_is_ratio, dsr, param_stability, best_params, n_windows, n_combos, is_days, "
            "oos_days, step_days, created_ms, detail) VALUES (?,?,?,?,1,1,'B',70,1,0.8,0.7,0.9,0.8,?,?,10,180,?,?,?,?)",
            (strategy, symbol, "spot", timeframe, json.dumps(params), len(windows), oos_days, oos_days,
             1_700_000_000_000, json.dumps({"windows": windows})))
        conn.execute("COMMIT")
        return int(cur.lastrowid)
    finally:
        conn.close()
