"""A stored walk-forward result (and its finished job) written straight into a database, for
tests of applying results that should not depend on running a walk-forward."""

from __future__ import annotations

import json
import time
from pathlib import Path

from core.storage.db import open_sync

ENVELOPE_BEST = {"ma_period": 9, "num_levels": 2, "envelope_start": 0.07, "envelope_step": 0.03, "sl_percent": 0.2}


def insert_result(db: Path, *, strategy: str = "envelope_dca", symbol: str = "BTC/USDT", market: str = "spot",
                  timeframe: str = "1h", grade: str = "B", score: float = 82.5, complete: bool = True,
                  best_params: dict | None = None, with_job: bool = True) -> tuple[int, int | None]:
    """(result id, job id): one `optimization_results` row (two combo rows) and, with `with_job`,
    a done "optimize" job whose result lists it (what `read_job_results` reads)."""
    best = dict(best_params or ENVELOPE_BEST)
    now = int(time.time() * 1000)
    conn = open_sync(db)
    try:
        job_id = None
        if with_job:
            params = {"strategy": strategy, "timeframe": timeframe,
                      "series": [{"symbol": symbol, "market": market, "file": None}]}
            job_id = int(conn.execute(
                "INSERT INTO optimization_jobs (kind, params, state, progress, created_ms, finished_ms) "
                "VALUES ('optimize', ?, 'done', 100, ?, ?)", (json.dumps(params), now, now)).lastrowid)
        if complete:                            # the newest complete one is the latest of its series
            conn.execute("UPDATE optimization_results SET is_latest = 0 WHERE strategy = ? AND symbol = ? "
                         "AND timeframe = ?", (strategy, symbol, timeframe))
        rid = int(conn.execute(
            "INSERT INTO optimization_results (job_id, strategy, symbol, market, timeframe, complete, is_latest, "
            "grade, score, oos_sharpe, consistency, oos_is_ratio, dsr, param_stability, best_params, pbo, psr, "
            "p_value, n_windows, n_combos, is_days, oos_days, step_days, git_rev, data_first_ts, data_last_ts, "
            "created_ms, detail) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (job_id, strategy, symbol, market, timeframe, int(complete), int(complete), grade, score, 1.4, 0.8, 0.7,
             0.9, 0.1, json.dumps(best), 0.2, 0.95, 0.01, 12, 2, 180, 60, 60, None, 0, 1, now, "{}")).lastrowid)
        other = {**best, "ma_period": best.get("ma_period", 7) + 1}
        for i, p in enumerate((best, other)):
            conn.execute("INSERT INTO wfo_combo_results (result_id, combo, params, is_sharpe, is_return, oos_sharpe, "
                         "oos_return, oos_consistency, oos_cycles, times_selected) VALUES (?,?,?,?,?,?,?,?,?,?)",
                         (rid, i, json.dumps(p), 1.5 - i, 0.1, 1.4 - i, 0.05, 0.8, 10, 12 - i))
        if with_job:
            summary = {"symbol": symbol, "result_id": rid, "grade": grade, "score": score}
            conn.execute("UPDATE optimization_jobs SET result = ? WHERE id = ?",
                         (json.dumps({"strategy": strategy, "timeframe": timeframe, "results": [summary]}), job_id))
    finally:
        conn.close()
    return rid, job_id
