"""liquidation in a headless replay (`radar run --replay`'s assembly): the open interest stored
in the run's database reaches the runner, and the paper replay equals the event backtest; a
perpetual without stored open interest skips the strategy (logged), as `funding` does."""

from __future__ import annotations

import asyncio
import logging
import shutil
from pathlib import Path

import pytest

from core.backtest.event_engine import run_event_backtest
from core.backtest.loading import load_from_file
from core.backtest.report import build_report
from core.config import load_config
from core.engine.assembly import RunOptions, build_engine, plan_engine, stored_open_interest
from core.errors import UsageError
from core.model.account import Account
from core.paths import DEFAULT_CONFIG_DIR
from core.storage.db import open_sync
from core.storage.open_interest_store import write_open_interest
from tests.support.open_interest_data import synthetic_oi
from tests.support.shared_data import shared_file

BTC_5M = "binance-futures/BTC_USDT_USDT-5m-futures.json.gz"
N = 3000


def _config(tmp_path: Path) -> Path:
    cfg = tmp_path / "config"
    shutil.copytree(DEFAULT_CONFIG_DIR, cfg)
    y = cfg / "strategies.yaml"
    text = y.read_text()
    text = text.replace("  envelope_dca:\n    enabled: true", "  envelope_dca:\n    enabled: false")
    start = text.index("  liquidation:")
    text = text[:start] + text[start:].replace("enabled: false", "enabled: true", 1)
    y.write_text(text)
    return cfg


def test_replay_with_stored_open_interest_equals_the_backtest(tmp_path: Path) -> None:
    path = shared_file(BTC_5M)
    whole = load_from_file(path)
    candles = whole.between(None, int(whole.ts[N]))
    oi = synthetic_oi(candles)
    db = tmp_path / "run.db"
    conn = open_sync(db)
    conn.execute("BEGIN IMMEDIATE")
    write_open_interest(conn, candles.symbol, *oi, "test")
    conn.execute("COMMIT")
    conn.close()
    cfg = load_config(_config(tmp_path))
    opts = RunOptions(db=db, replay=(path,), speed="max", status_interval=0, end_ms=int(whole.ts[N]))
    plan = plan_engine(cfg, opts)
    assert [s.strategy for s in plan.specs] == ["liquidation"]
    assert stored_open_interest(db, candles.symbol)[0].tolist() == oi[0].tolist()
    engine = build_engine(cfg, opts, plan=plan)
    asyncio.run(engine.run())
    assert engine.finished
    params = plan.specs[0].params
    got = build_report(db, plan.account)[0]
    want = run_event_backtest(candles, "liquidation", params, Account(), funding=oi).to_spec_json()
    assert got["n_cycles"] == want["n_cycles"] and want["n_cycles"] > 3
    assert got["final_equity"] == pytest.approx(want["final_equity"], rel=1e-12)
    assert [c["exit_reason"] for c in got["cycles"]] == [c["exit_reason"] for c in want["cycles"]]


def test_replay_without_open_interest_skips_the_strategy(tmp_path: Path, caplog) -> None:
    path = shared_file(BTC_5M)
    cfg = load_config(_config(tmp_path))
    opts = RunOptions(db=tmp_path / "bare.db", replay=(path,), speed="max", status_interval=0)
    with caplog.at_level(logging.WARNING), pytest.raises(UsageError, match="no strategy can run"):
        plan_engine(cfg, opts)
    assert "liquidation on BTC/USDT:USDT skipped: it needs the perpetual's open interest" in caplog.text
