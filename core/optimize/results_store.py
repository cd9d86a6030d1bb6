"""Walk-forward results in SQLite: `optimization_results` and `wfo_combo_results` (migration 3).

One `optimization_results` row per (strategy, symbol, timeframe) run, with the grade,
score, the five criteria, best params (JSON), PBO, DSR, PSR, bootstrap p-value, the git
revision of the code and the data range used (open times of the first / last candle, ms
UTC). `is_latest` marks the newest complete run of each (strategy, symbol, timeframe): a
partial unique index keeps it unique, and `save_result` moves the flag in the same
transaction. A partial (cancelled) run is stored with `complete = 0` and never latest.
`wfo_combo_results` holds every tested combo's aggregated IS/OOS figures of a result.

Synchronous (sqlite3): call from the CLI or a worker thread.
"""

from __future__ import annotations

import json
import math
import sqlite3
import subprocess
import time
from dataclasses import dataclass
from typing import Any

from core.errors import UsageError
from core.optimize.walk_forward import WalkForwardResult
from core.paths import PROJECT_ROOT

#: Columns of `optimization_results` read back by `get_result` / `list_results`, in order.
_COLUMNS = ("id", "job_id", "strategy", "symbol", "market", "timeframe", "complete", "is_latest", "grade",
            "score", "oos_sharpe", "consistency", "oos_is_ratio", "dsr", "param_stability", "best_params",
            "pbo", "psr", "p_value", "n_windows", "n_combos", "is_days", "oos_days", "step_days", "git_rev",
            "data_first_ts", "data_last_ts", "created_ms")


@dataclass(frozen=True)
class StoredResult:
    """One `optimization_results` row (detail JSON not included; see `result_detail`).

    Times are ms UTC; criteria as in `core.optimize.grade.Criteria`; `best_params` a dict.
    """

    id: int
    job_id: int | None
    strategy: str
    symbol: str
    market: str
    timeframe: str
    complete: bool
    is_latest: bool
    grade: str
    score: float
    oos_sharpe: float
    consistency: float
    oos_is_ratio: float
    dsr: float
    param_stability: float
    best_params: dict
    pbo: float | None
    psr: float | None
    p_value: float | None
    n_windows: int
    n_combos: int
    is_days: int
    oos_days: int
    step_days: int
    git_rev: str | None
    data_first_ts: int | None
    data_last_ts: int | None
    created_ms: int

    def to_json(self) -> dict:
        """The row as a JSON-able dict (criteria grouped under "criteria")."""
        return {
            "id": self.id, "job_id": self.job_id, "strategy": self.strategy, "symbol": self.symbol,
            "market": self.market, "timeframe": self.timeframe, "complete": self.complete,
            "is_latest": self.is_latest, "grade": self.grade, "score": self.score,
            "criteria": {"oos_sharpe": self.oos_sharpe, "consistency": self.consistency,
                         "oos_is_ratio": self.oos_is_ratio, "dsr": self.dsr,
                         "param_stability": self.param_stability},
            "best_params": self.best_params, "pbo": self.pbo, "psr": self.psr, "p_value": self.p_value,
            "windows": self.n_windows, "combos_evaluated": self.n_combos,
            "is_days": self.is_days, "oos_days": self.oos_days, "step_days": self.step_days,
            "git_rev": self.git_rev, "data_first_ts": self.data_first_ts, "data_last_ts": self.data_last_ts,
            "created_ms": self.created_ms,
        }


def git_revision() -> str | None:
    """`git rev-parse HEAD` of the project checkout, with "-dirty" when tracked files changed; None
    when git or the repository is not there."""
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True,
                             timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=PROJECT_ROOT,
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return (rev + "-dirty") if dirty else (rev or None)


def _finite(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(float(x)) else float(x)


def _detail(result: WalkForwardResult) -> dict[str, Any]:
    return {
        "sub_scores": dict(result.grade.sub_scores),
        "uncapped_grade": result.grade.uncapped_grade,
        "caps_applied": list(result.grade.caps_applied),
        "is_sharpe": result.is_sharpe,
        "bootstrap_underpowered": result.bootstrap_underpowered,
        "oos_cycles": result.n_oos_cycles,
        "evaluations": result.evaluations,
        "n_windows_planned": result.n_windows_planned,
        "settings": {"max_points": result.settings.max_points, "seed": result.settings.seed,
                     "n_boot": result.settings.n_boot, "fractions": list(result.settings.fractions)},
        "windows": [{"index": r.window.index, "is_start": r.window.is_start, "is_end": r.window.is_end,
                     "oos_start": r.window.oos_start, "oos_end": r.window.oos_end, "chosen": r.chosen,
                     "searched": r.searched, "is_sharpe": r.is_sharpe, "oos_return": r.oos_return,
                     "oos_sharpe": r.oos_sharpe, "oos_cycles": r.oos_cycles} for r in result.windows],
        "stability": [{"params": p, "oos_sharpe": m} for p, m in result.stability],
        # which grading profile graded it, the DSR's per-window trials (N_eff, V), how the applied
        # combo was selected, the bootstrap's CI: kept with the result (older rows lack them)
        "grading_profile": getattr(result.grade, "profile", None),
        "caps_binding": list(getattr(result.grade, "caps_binding", []) or []),
        "dsr_detail": {**(getattr(result, "dsr_combined", None) or {}), "windows": getattr(result, "dsr_windows", None)},
        "selection": getattr(result, "selection", None),
        "bootstrap": getattr(result, "bootstrap", None),
    }


def save_result(conn: sqlite3.Connection, result: WalkForwardResult, *, job_id: int | None = None,
                git_rev: str | None = None, now_ms: int | None = None) -> int:
    """Store one walk-forward result and its per-combo rows in one transaction; returns its id.

    A complete result becomes the latest of its (strategy, symbol, timeframe): the previous
    latest loses the flag. A partial one (`result.complete` False) is stored with
    complete = 0, is_latest = 0.

    Raises:
        sqlite3.Error: the database refused the write (the transaction is rolled back).
    """
    now = int(time.time() * 1000) if now_ms is None else int(now_ms)
    c = result.criteria
    latest = 1 if result.complete else 0
    conn.execute("BEGIN IMMEDIATE")
    try:
        if latest:
            conn.execute("UPDATE optimization_results SET is_latest = 0 WHERE strategy = ? AND symbol = ? "
                         "AND timeframe = ? AND is_latest = 1", (result.strategy, result.symbol, result.timeframe))
        cur = conn.execute(
            "INSERT INTO optimization_results (job_id, strategy, symbol, market, timeframe, complete, is_latest, "
            "grade, score, oos_sharpe, consistency, oos_is_ratio, dsr, param_stability, best_params, pbo, psr, "
            "p_value, n_windows, n_combos, is_days, oos_days, step_days, git_rev, data_first_ts, data_last_ts, "
            "created_ms, detail) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (job_id, result.strategy, result.symbol, result.market, result.timeframe, 1 if result.complete else 0,
             latest, result.grade.grade, float(result.grade.score), c.oos_sharpe, c.consistency, c.oos_is_ratio,
             c.dsr, c.param_stability, json.dumps(result.best_params), _finite(result.pbo), _finite(result.psr),
             _finite(result.p_value), len(result.windows), result.n_combos, result.settings.is_days,
             result.settings.oos_days, result.settings.step_days, git_rev, result.data_first_ts,
             result.data_last_ts, now, json.dumps(_detail(result))))
        rid = int(cur.lastrowid)
        conn.executemany(
            "INSERT INTO wfo_combo_results (result_id, combo, params, is_sharpe, is_return, oos_sharpe, oos_return, "
            "oos_consistency, oos_cycles, times_selected) VALUES (?,?,?,?,?,?,?,?,?,?)",
            [(rid, i, json.dumps(p), float(result.combo_is_sharpe[i]), float(result.combo_is_return[i]),
              float(result.combo_oos_sharpe[i]), float(result.combo_oos_return[i]),
              float(result.combo_oos_consistency[i]), int(result.combo_oos_cycles[i]),
              int(result.combo_times_selected[i])) for i, p in enumerate(result.combos)])
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return rid


def _row(r: tuple) -> StoredResult:
    d = dict(zip(_COLUMNS, r))
    d["complete"] = bool(d["complete"])
    d["is_latest"] = bool(d["is_latest"])
    d["best_params"] = json.loads(d["best_params"])
    return StoredResult(**d)


def get_result(conn: sqlite3.Connection, result_id: int) -> StoredResult:
    """The stored result `result_id`.

    Raises:
        UsageError: no such result.
    """
    row = conn.execute(f"SELECT {', '.join(_COLUMNS)} FROM optimization_results WHERE id = ?",
                       (int(result_id),)).fetchone()
    if row is None:
        raise UsageError(f"no optimization result with id {result_id}; list them with `radar optimize results`")
    return _row(row)


def result_detail(conn: sqlite3.Connection, result_id: int) -> dict:
    """The detail JSON of a result (windows, sub-scores, caps, stability rows); {} when missing."""
    row = conn.execute("SELECT detail FROM optimization_results WHERE id = ?", (int(result_id),)).fetchone()
    return json.loads(row[0]) if row else {}


def list_results(conn: sqlite3.Connection, *, strategy: str | None = None, symbol: str | None = None,
                 timeframe: str | None = None, latest_only: bool = False, limit: int = 200) -> list[StoredResult]:
    """Stored results, newest first, filtered by strategy / symbol / timeframe when given."""
    where, args = [], []
    for col, val in (("strategy", strategy), ("symbol", symbol), ("timeframe", timeframe)):
        if val is not None:
            where.append(f"{col} = ?")
            args.append(val)
    if latest_only:
        where.append("is_latest = 1")
    sql = f"SELECT {', '.join(_COLUMNS)} FROM optimization_results"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY created_ms DESC, id DESC LIMIT ?"
    return [_row(r) for r in conn.execute(sql, (*args, int(limit))).fetchall()]


def combo_rows(conn: sqlite3.Connection, result_id: int) -> list[dict]:
    """The `wfo_combo_results` rows of a result, in combo order, params decoded."""
    cols = ("combo", "params", "is_sharpe", "is_return", "oos_sharpe", "oos_return", "oos_consistency",
            "oos_cycles", "times_selected")
    rows = conn.execute(f"SELECT {', '.join(cols)} FROM wfo_combo_results WHERE result_id = ? ORDER BY combo",
                        (int(result_id),)).fetchall()
    out = []
    for r in rows:
        d = dict(zip(cols, r))
        d["params"] = json.loads(d["params"])
        out.append(d)
    return out
