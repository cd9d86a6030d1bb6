"""What a performance report is computed from: a backtest's result, or a replay's / the running
engine's database (the runners' per-candle equity `trading_equity` and closed cycles
`trading_cycles`, `core.storage.migrations` version 5, written by `core.executor.state_store`)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from core.data.timeframes import timeframe_ms
from core.errors import UsageError
from core.model.cycle import Cycle
from core.performance.curves import book_equity, check_series


@dataclass
class PerfInput:
    """The inputs of a report.

    title: what it is about. ts: int64 candle open times (ms UTC), shape (n,); equity: float64
    USDT at each candle's close, shape (n,) (a book of runners: their summed equity,
    `curves.book_equity`). start_equity: USDT before the first candle (the account's capital
    for a backtest; the first point for a database). cycles: closed cycles by asset (symbol).
    span_ms: the period observed (first candle open to last candle close). runners: labels
    "strategy symbol timeframe" of what is included.
    """

    title: str
    ts: np.ndarray
    equity: np.ndarray
    start_equity: float
    cycles: dict[str, list[Cycle]] = field(default_factory=dict)
    span_ms: int = 0
    runners: list[str] = field(default_factory=list)


def from_result(result, title: str | None = None) -> PerfInput:
    """The `PerfInput` of a `core.backtest.result.BacktestResult` (start equity: its account's
    initial capital; span: first open to last open + one timeframe)."""
    ts, eq = check_series(result.ts, result.equity, f"{result.strategy} {result.symbol} equity")
    span = int(ts[-1] - ts[0] + timeframe_ms(result.timeframe)) if ts.size else 0
    label = f"{result.strategy} {result.symbol} {result.timeframe}"
    return PerfInput(title=title or f"Backtest {label}", ts=ts, equity=eq,
                     start_equity=float(result.account.initial_capital),
                     cycles={result.symbol: list(result.cycles)} if result.cycles else {result.symbol: []},
                     span_ms=span, runners=[label])


def read_runners(conn: sqlite3.Connection) -> list[dict]:
    """Every stored runner: [{id, strategy, symbol, timeframe, mode}] in id order."""
    cols = ("id", "strategy", "symbol", "timeframe", "mode")
    return [dict(zip(cols, r)) for r in conn.execute(
        "SELECT id, strategy, symbol, timeframe, mode FROM trading_runners ORDER BY id")]


def from_conn(conn: sqlite3.Connection, runners: Sequence[dict], title: str) -> PerfInput:
    """The `PerfInput` of `runners` (rows of `read_runners`) read on `conn`: their book equity
    and their cycles by symbol.

    Raises:
        UsageError: none of them has recorded an equity point yet.
    """
    series, cycles, labels, tf_ms = [], {}, [], []
    for r in runners:
        rows = conn.execute("SELECT ts, equity FROM trading_equity WHERE runner_id=? ORDER BY ts",
                            (r["id"],)).fetchall()
        series.append(([x[0] for x in rows], [x[1] for x in rows]))
        cycles.setdefault(r["symbol"], []).extend(Cycle(*x) for x in conn.execute(
            "SELECT open_time, close_time, side, levels_filled, avg_entry, exit_price, exit_reason, qty, pnl "
            "FROM trading_cycles WHERE runner_id=? ORDER BY idx", (r["id"],)))
        labels.append(f"{r['strategy']} {r['symbol']} {r['timeframe']}")
        tf_ms.append(timeframe_ms(r["timeframe"]))
    ts, eq = book_equity(series)
    if ts.size == 0:
        raise UsageError(f"{title}: no equity recorded yet by {', '.join(labels) or 'any runner'}")
    for cs in cycles.values():
        cs.sort(key=lambda c: (c.close_time, c.open_time))
    span = int(ts[-1] - ts[0] + min(tf_ms))
    return PerfInput(title=title, ts=ts, equity=eq, start_equity=float(eq[0]), cycles=cycles, span_ms=span,
                     runners=labels)


def from_db(db_path: str | Path, mode: str | None = None) -> PerfInput:
    """The `PerfInput` of the runners of `mode` ("paper" | "live"; None: the one mode stored) in
    the database at `db_path` (a replay's, or the running engine's: read while it writes, WAL).

    Raises:
        UsageError: the file does not exist, holds no runner (of `mode`), holds both modes and
            `mode` is None, or no equity point is recorded.
        StorageError: the file is not a readable database (`core.storage.db.open_sync`).
    """
    from core.storage.db import open_sync

    p = Path(db_path)
    if not p.is_file():
        raise UsageError(f"--db {p}: no such database (give the database of a replay or of the engine)")
    conn = open_sync(p)
    try:
        runners = read_runners(conn)
        modes = sorted({r["mode"] for r in runners})
        if not runners:
            raise UsageError(f"{p}: no trading runner in this database (run a replay or the engine on it first)")
        if mode is None:
            if len(modes) > 1:
                raise UsageError(f"{p} holds both {' and '.join(modes)} runners: give --mode paper or --mode live")
            mode = modes[0]
        chosen = [r for r in runners if r["mode"] == mode]
        if not chosen:
            raise UsageError(f"{p}: no {mode} runner (modes stored: {', '.join(modes)})")
        return from_conn(conn, chosen, f"{mode.capitalize()} book {p.name}")
    finally:
        conn.close()
