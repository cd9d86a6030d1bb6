"""Acceptance of issue 14: "A replay of five symbols under each allocation policy ends with the
weights the policy says (tested against the library's own result on the same covariance)."

Each test replays BTC ETH SOL DOGE LINK 1h spot over two weeks (`--from/--to`): risk parity
through `radar run --no-ui --replay` itself, the other policies through the engine the CLI builds
(`core.engine.assembly.build_engine`, in-process: no second start-up and library import per
policy); it reads the last rebalance the engine applied (table allocation_weights, the
log), rebuilds the returns it must have used from the data files alone (pandas: the last close
of each complete UTC day before the rebalance, common days, the last `lookback_days` simple
returns) and calls skfolio directly on them."""

from __future__ import annotations

import json
import shutil
import sqlite3
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from core.backtest.loading import load_from_file
from core.paths import DEFAULT_CONFIG_DIR
from core.risk.allocation_store import last_weights, transfers
from tests.engine.test_engine_replay import radar
from tests.support.shared_data import shared_file

SYMBOLS = ("BTC", "ETH", "SOL", "DOGE", "LINK")
FROM, TO = "2021-01-01", "2021-01-16"
LOOKBACK, MIN_DAYS = 10, 5
DAY = 86_400_000
FIXED = {"BTC/USDT": 0.3, "ETH/USDT": 0.25, "SOL/USDT": 0.2, "DOGE/USDT": 0.05, "LINK/USDT": 0.1}
SCORES = {"BTC/USDT": 80.0, "ETH/USDT": 60.0, "SOL/USDT": 40.0, "LINK/USDT": 20.0}     # DOGE: no result


def _ms(day: str) -> int:
    return int(datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=timezone.utc).timestamp() * 1000)


def _label(sym: str) -> str:
    return f"envelope_dca@{sym}/USDT@1h"


def _files() -> list[Path]:
    return [shared_file(f"binance-spot/{s}_USDT-1h.json.gz") for s in SYMBOLS]


def allocation_config(tmp: Path, enable: tuple[str, ...] = ("envelope_dca",), **allocation) -> Path:
    """The packaged config with only the `enable` strategies enabled and `allocation:` changed."""
    dst = tmp / "config"
    shutil.copytree(DEFAULT_CONFIG_DIR, dst)
    doc = yaml.safe_load((dst / "strategies.yaml").read_text())
    for name, entry in doc["strategies"].items():
        entry["enabled"] = name in enable
    (dst / "strategies.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    risk = yaml.safe_load((dst / "risk.yaml").read_text())
    risk["allocation"].update(allocation)
    (dst / "risk.yaml").write_text(yaml.safe_dump(risk, sort_keys=False))
    return dst


def run_replay(tmp: Path, cfg: Path, files: list[Path], start: str, end: str, db: Path | None = None,
               cli: bool = False) -> Path:
    """A headless replay of `files` over [start, end): `radar run --no-ui --replay` with `cli`,
    else the engine `radar run` builds (`build_engine`), in-process. Returns the database."""
    db = db or tmp / "state" / "radar.db"
    db.parent.mkdir(exist_ok=True)
    if not cli:
        import asyncio

        from core.config import load_config
        from core.engine.assembly import RunOptions, build_engine

        engine = build_engine(load_config(cfg), RunOptions(db=db, replay=tuple(files), start_ms=_ms(start),
                                                           end_ms=_ms(end), status_interval=0))
        asyncio.run(engine.run())
        assert engine.finished
        return db
    args = ["--config-dir", str(cfg), "--db", str(db), "run", "--no-ui", "--status-interval", "0", "--speed", "max",
            "--from", start, "--to", end]
    for f in files:
        args += ["--replay", str(f)]
    res = radar(*args, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    return db


def returns_from_files(before_ms: int) -> np.ndarray:
    """(T, 5) daily simple returns of the five symbols' closes, rebuilt from the files alone."""
    cols = {}
    for sym, path in zip(SYMBOLS, _files()):
        c = load_from_file(path).between(_ms(FROM), _ms(TO))
        s = pd.Series(c.close, index=c.ts // DAY)
        daily = s.groupby(level=0).last()
        cols[sym] = daily[daily.index < before_ms // DAY]
    frame = pd.DataFrame(cols).dropna().iloc[-(LOOKBACK + 1):]
    return (frame / frame.shift(1) - 1.0).iloc[1:].to_numpy()


def _final(db: Path) -> tuple[dict, list[dict], dict]:
    conn = sqlite3.connect(db)
    try:
        state = json.loads(conn.execute("SELECT state FROM allocation_state").fetchone()[0])
        return last_weights(conn), transfers(conn), state
    finally:
        conn.close()


def _check_run(db: Path, policy: str, log: str) -> tuple[dict, np.ndarray, list[dict]]:
    w, moves, state = _final(db)
    assert w["policy"] == policy
    assert w["ts_ms"] == _ms(TO) - DAY                # the last UTC day every runner entered
    assert set(w["weights"]) == {_label(s) for s in SYMBOLS}
    assert state["weights"] == pytest.approx(w["weights"], abs=0)
    assert f"allocation rebalance ({policy})" in log
    got = np.array([w["weights"][_label(s)] for s in SYMBOLS])
    return w, got, moves


LIBRARY_POLICIES = ["equal", "inverse_volatility", "risk_parity", "kelly"]


def _library_weights(policy: str, r: np.ndarray) -> np.ndarray:
    from skfolio import RiskMeasure
    from skfolio.optimization import EqualWeighted, InverseVolatility, MeanRisk, ObjectiveFunction, RiskBudgeting

    model = {"equal": lambda: EqualWeighted(),
             "inverse_volatility": lambda: InverseVolatility(),
             "risk_parity": lambda: RiskBudgeting(risk_measure=RiskMeasure.VARIANCE),
             "kelly": lambda: MeanRisk(objective_function=ObjectiveFunction.MAXIMIZE_UTILITY,
                                       risk_measure=RiskMeasure.VARIANCE, risk_aversion=1 / (2 * 0.5),
                                       min_weights=0.0, max_weights=0.4, budget=None, max_budget=1.0)}[policy]()
    return np.clip(np.asarray(model.fit(r).weights_), 0.0, 1.0)


@pytest.mark.parametrize("policy", LIBRARY_POLICIES)
def test_replay_ends_with_the_library_weights(tmp_path: Path, policy: str, caplog) -> None:
    cfg = allocation_config(tmp_path, policy=policy, lookback_days=LOOKBACK, min_history_days=MIN_DAYS,
                            kelly_fraction=0.5, kelly_cap=0.4)
    cli = policy == "risk_parity"
    with caplog.at_level("INFO", logger="core.risk.allocation"):
        db = run_replay(tmp_path, cfg, _files(), FROM, TO, cli=cli)
    log = (db.parent / "logs" / "radar-run.jsonl").read_text() if cli else caplog.text
    w, got, moves = _check_run(db, policy, log)
    r = returns_from_files(w["ts_ms"])
    assert r.shape == (LOOKBACK, 5) and w["detail"].get("n_returns", LOOKBACK) == LOOKBACK
    np.testing.assert_allclose(got, _library_weights(policy, r), rtol=0, atol=1e-6)
    if policy == "equal":                             # today's replay: every runner keeps the whole capital
        assert moves == [] and set(w["targets"].values()) == {10_000.0}
    else:                                             # one shared account, cash moved between cycles
        assert moves
        assert_money_conserved(db)


def assert_money_conserved(db: Path, capital: float = 10_000.0) -> None:
    """After the replay (every cycle closed): the runners' cash + the unallocated cash is the
    capital + the cycles' P&L, and each simulated venue holds the cash its book holds."""
    conn = sqlite3.connect(db)
    try:
        total = 0.0
        for (grid,) in conn.execute("SELECT grid FROM trading_state"):
            st = json.loads(grid)
            venue = st.get("venue") or st.get("account")
            assert venue["cash"] == pytest.approx(st["book"]["cash"], abs=1e-9)
            total += st["book"]["cash"]
        pnl = conn.execute("SELECT COALESCE(SUM(pnl), 0) FROM trading_cycles").fetchone()[0]
        pool = json.loads(conn.execute("SELECT state FROM allocation_state").fetchone()[0])["pool"]
    finally:
        conn.close()
    assert total + pool == pytest.approx(capital + pnl, abs=1e-6)


def test_replay_fixed_and_grade_end_with_their_weights(tmp_path: Path, caplog) -> None:
    from tests.support.stored_results import insert_result

    (tmp_path / "a").mkdir()
    cfg = allocation_config(tmp_path / "a", policy="fixed", weights=FIXED)
    with caplog.at_level("INFO", logger="core.risk.allocation"):
        db = run_replay(tmp_path / "a", cfg, _files(), FROM, TO)
    _, got, _ = _check_run(db, "fixed", caplog.text)
    np.testing.assert_allclose(got, [FIXED[f"{s}/USDT"] for s in SYMBOLS], rtol=0, atol=1e-12)
    assert_money_conserved(db)                        # weights sum to 0.9: a tenth stays unallocated

    (tmp_path / "b").mkdir()
    cfg = allocation_config(tmp_path / "b", policy="grade")
    db = tmp_path / "b" / "state" / "radar.db"
    db.parent.mkdir()
    for sym, score in SCORES.items():
        insert_result(db, symbol=sym, score=score, with_job=False)
    with caplog.at_level("INFO", logger="core.risk.allocation"):
        db = run_replay(tmp_path / "b", cfg, _files(), FROM, TO, db=db)
    w, got, _ = _check_run(db, "grade", caplog.text)
    total = sum(SCORES.values())
    np.testing.assert_allclose(got, [SCORES.get(f"{s}/USDT", 0.0) / total for s in SYMBOLS], rtol=0, atol=1e-12)
    assert w["detail"]["scores"][_label("DOGE")] is None           # no stored result: no capital
