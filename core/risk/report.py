"""The risk report of a book: VaR/CVaR, the worst case, the stress scenarios and the exposure
per correlation group, as one JSON-able dict (what `radar risk --json`, `EngineAPI.risk()` and
the console's Risk screen show).

    book = book_from_db(db, cfg.risk)                    # or book_from_runners(engine.runners)
    series = equity_series(db, book)                     # the runners' equity points
    report = risk_report(book, series, cfg)              # dict, see `risk_report`

Money USDT (positive = a loss), fractions of the book's equity, times ms UTC.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from core.api.protocol import plain
from core.risk.book import Book
from core.risk.scenarios import base_of, run_scenarios
from core.risk.var import book_var, daily_equity_returns
from core.risk.worst_case import total_loss, worst_case


def equity_series(db_path: str | Path, book: Book) -> dict[str, tuple[list[int], list[float]]]:
    """label -> (ts ms UTC, equity USDT) of each runner of `book` with a `runner_id`, from the
    equity points the runners record at every candle close (trading_equity). Runners without
    points are left out.

    Raises:
        sqlite3.Error: the database cannot be read.
    """
    from core.storage.db import open_sync

    out: dict[str, tuple[list[int], list[float]]] = {}
    conn = open_sync(Path(db_path))
    try:
        for r in book.runners:
            if r.runner_id is None:
                continue
            rows = conn.execute("SELECT ts, equity FROM trading_equity WHERE runner_id=? ORDER BY ts",
                                (int(r.runner_id),)).fetchall()
            if rows:
                out[r.label] = ([int(t) for t, _ in rows], [float(e) for _, e in rows])
    finally:
        conn.close()
    return out


def groups_of(symbols: Sequence[str], assets: Sequence[Any]) -> dict[str, str]:
    """symbol -> correlation group (`assets.yaml` `group`): the asset of the same symbol, else an
    asset of the same base currency (BTC/USDT takes BTC/USDT:USDT's group), else "ungrouped"."""
    by_symbol = {a.symbol: a.group for a in assets if a.group}
    by_base = {}
    for a in assets:
        if a.group:
            by_base.setdefault(base_of(a.symbol), a.group)
    return {s: by_symbol.get(s) or by_base.get(base_of(s)) or "ungrouped" for s in symbols}


def risk_report(book: Book, series: Mapping[str, tuple[Sequence[int], Sequence[float]]], cfg: Any, *,
                data_dir: Path | None = None, clock_ms: Any = None) -> dict:
    """The whole report (JSON-able dict):

    {as_of_ms, computed_ms, source, equity, notes[],
     book: [{strategy, symbol, timeframe, kind, side, qty, avg_entry, stop, last_price, notional,
             unrealized, equity, levels_filled, num_levels, unit, resting: [{level, price, qty, resting}]}],
     var: {available, reason, days, equity, mc{method, paths, seed},
           figures: [{method, level, var, cvar, var_fraction, cvar_fraction}]},
     worst_case: {runners: [WorstCase fields], total, total_from_equity, total_fraction},
     scenarios: [{name, start_ms, end_ms, source, available, reason, loss, worst_loss,
                  loss_fraction, worst_loss_fraction, runners: [...]}],
     groups: [{group, symbols, net_notional, gross_notional, gross_fraction, worst_case}]}

    Args:
        book: the book. series: the runners' equity points by label (`equity_series`).
        cfg: the `RadarConfig` (assets for the groups, `scenarios` for VaR settings and scenarios).
        data_dir: the candles folder of the scenarios (default: `cfg.scenarios.data_path(cfg.config_dir)`).

    Raises:
        RadarError: a grid strategy that cannot be rebuilt (to recompute its stop).
    """
    sc = cfg.scenarios
    now = int(time.time() * 1000) if clock_ms is None else int(clock_ms())
    equity = book.equity
    # VaR: runners with equity points, exposure = their equity now
    labels = [r.label for r in book.runners if r.label in series]
    _, rets, cols = daily_equity_returns({k: series[k] for k in labels}, sc.var.lookback_days)
    expo = np.array([next(r.equity for r in book.runners if r.label == k) for k in cols], dtype=np.float64)
    var = book_var(rets, expo, equity, n_paths=sc.var.mc_paths, seed=sc.var.seed) if cols else \
        book_var(np.zeros((0, 0)), np.zeros(0), equity, n_paths=sc.var.mc_paths, seed=sc.var.seed)
    # worst case
    cases = [worst_case(r) for r in book.runners]
    total = total_loss(cases)
    total_eq = None if total is None else float(sum(c.loss_from_equity for c in cases))  # type: ignore[misc]
    # scenarios
    ddir = Path(data_dir) if data_dir is not None else sc.data_path(cfg.config_dir)
    scen = run_scenarios(book, sc.scenarios, ddir)
    # exposure per group
    groups = groups_of([r.symbol for r in book.runners], cfg.assets)
    per: dict[str, dict] = {}
    for r, c in zip(book.runners, cases):
        g = per.setdefault(groups[r.symbol], {"group": groups[r.symbol], "symbols": [], "net_notional": 0.0,
                                              "gross_notional": 0.0, "worst_case": 0.0})
        if r.symbol not in g["symbols"]:
            g["symbols"].append(r.symbol)
        g["net_notional"] += r.notional
        g["gross_notional"] += abs(r.notional)
        g["worst_case"] = None if g["worst_case"] is None or c.loss is None else g["worst_case"] + c.loss
    for g in per.values():
        g["gross_fraction"] = g["gross_notional"] / equity if equity else None
    return plain({
        "as_of_ms": book.as_of_ms, "computed_ms": now, "source": book.source, "equity": equity,
        "notes": list(book.notes),
        "book": [{"strategy": r.strategy, "symbol": r.symbol, "timeframe": r.timeframe, "kind": r.kind,
                  "side": r.side, "qty": r.qty, "avg_entry": r.avg_entry, "stop": r.stop, "last_price": r.last_price,
                  "notional": r.notional, "unrealized": r.unrealized, "equity": r.equity,
                  "levels_filled": r.levels_filled, "num_levels": r.num_levels, "unit": r.unit,
                  "resting": list(r.resting)} for r in book.runners],
        "var": {"available": var.available, "reason": var.reason, "days": var.days, "equity": var.equity,
                "mc": var.mc, "figures": list(var.figures)},
        "worst_case": {"runners": cases, "total": total, "total_from_equity": total_eq,
                       "total_fraction": (total / equity) if total is not None and equity else None},
        "scenarios": scen,
        "groups": sorted(per.values(), key=lambda g: g["group"]),
    })


def report_from_db(db_path: str | Path, cfg: Any, *, data_dir: Path | None = None) -> dict:
    """`risk_report` of the book a run left in `db_path` (`core.risk.book.book_from_db`).

    Raises:
        RadarError: no database or no trading state in it; a strategy that cannot be rebuilt.
    """
    from core.errors import RadarError
    from core.risk.book import book_from_db

    book = book_from_db(db_path, cfg.risk)
    try:
        series = equity_series(db_path, book)
    except sqlite3.Error as exc:
        raise RadarError(f"{db_path}: cannot read the equity points: {exc}") from None
    return risk_report(book, series, cfg, data_dir=data_dir)
