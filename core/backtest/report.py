"""Per (strategy, symbol): the spec's backtest JSON (`BacktestResult.to_spec_json()`) built from
what the engine recorded (cycles, per-candle equity, cash), so a paper replay is compared to a
backtest field by field."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from core.backtest.result import BacktestResult
from core.executor.state_store import StateStore
from core.model.account import Account


def runner_result(store: StateStore, runner: dict, account: Account) -> BacktestResult:
    """The BacktestResult of one stored runner (a row of `StateStore.runners()`)."""
    rid = runner["id"]
    st = store.load_state(rid)
    ts, eq = store.load_equity(rid)
    grid = st["grid"] if st else None
    if grid is None:
        cash = float(account.initial_capital)
    else:                                  # a grid runner's book, or a single-position runner's account
        cash = float(grid["book"]["cash"] if "book" in grid else grid["cash"])
    return BacktestResult(strategy=runner["strategy"], symbol=runner["symbol"], timeframe=runner["timeframe"],
                          params=json.loads(runner["params"]), cycles=store.load_cycles(rid), final_equity=cash,
                          ts=np.asarray(ts, dtype=np.int64), equity=np.asarray(eq, dtype=np.float64),
                          account=account)


def build_report(db_path: str | Path, account: Account, keys: list[tuple[str, str, str]] | None = None,
                 mode: str = "paper") -> list[dict]:
    """The spec JSON of every runner of `mode` in the database (or of `keys`: (strategy, symbol,
    timeframe)), in runner order."""
    store = StateStore(db_path)
    try:
        out = []
        for r in store.runners():
            if r["mode"] != mode:
                continue
            if keys is not None and (r["strategy"], r["symbol"], r["timeframe"]) not in keys:
                continue
            out.append(runner_result(store, r, account).to_spec_json())
        return out
    finally:
        store.close()


def write_report(path: str | Path, report: list[dict]) -> None:
    """Write the report as a JSON list (atomically: temp file then rename)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(json.dumps(report, indent=1))
    tmp.replace(p)
