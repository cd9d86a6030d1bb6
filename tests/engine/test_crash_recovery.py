"""Crash recovery: the headless replay killed with SIGKILL at 20 random moments and restarted on
the same database ends with exactly the uninterrupted run's report, orders, fills and positions;
no duplicate order, no lost fill, never an open position without a stop."""

from __future__ import annotations

import gzip
import json
import math
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from core.backtest.loading import load_from_file
from tests.engine.test_engine_replay import PROJECT, only_envelope_config
from tests.support.shared_data import shared_file

N_CANDLES = 8000
N_KILLS = 20


def _write_slice(tmp: Path) -> Path:
    c = load_from_file(shared_file("binance-spot/BTC_USDT-1h.json.gz"))
    rows = [[int(t), o, h, lo, cl, v] for t, o, h, lo, cl, v in zip(
        c.ts[:N_CANDLES].tolist(), c.open[:N_CANDLES].tolist(), c.high[:N_CANDLES].tolist(),
        c.low[:N_CANDLES].tolist(), c.close[:N_CANDLES].tolist(), c.volume[:N_CANDLES].tolist())]
    path = tmp / "data" / "BTC_USDT-1h.json.gz"
    path.parent.mkdir()
    with gzip.open(path, "wt") as f:
        json.dump(rows, f)
    return path


def _cmd(cfg: Path, db: Path, data: Path, report: Path | None = None) -> list[str]:
    cmd = [sys.executable, "-m", "core.cli.main", "--config-dir", str(cfg), "--db", str(db), "run", "--no-ui",
           "--replay", str(data), "--speed", "max", "--status-interval", "0"]
    return cmd + (["--report", str(report)] if report else [])


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(PROJECT)}


def _progress(db: Path) -> int:
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.2)
        try:
            row = conn.execute("SELECT n_candles FROM trading_state").fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return 0
    return row[0] if row else 0


def _tables(db: Path) -> dict:
    """The trading tables, client ids without the database's epoch (each database has its own,
    `core.executor.client_ids`): a crashed run and the reference compare row by row."""
    conn = sqlite3.connect(db)
    try:
        epoch = conn.execute("SELECT value FROM radar_meta WHERE key='epoch'").fetchone()[0]
        return _without_epoch(epoch, {
            "orders": conn.execute("SELECT client_id, cycle, level, purpose, side, price, status, created_ts, "
                                   "updated_ts FROM trading_orders ORDER BY client_id").fetchall(),
            "fills": conn.execute("SELECT client_id, ts, kind, reason, level, side, price, qty, fee "
                                  "FROM trading_fills ORDER BY id").fetchall(),
            "positions": conn.execute("SELECT ts, qty, avg_entry, stop, stop_client_id, levels_filled "
                                      "FROM trading_positions ORDER BY id").fetchall(),
            "cycles": conn.execute("SELECT * FROM trading_cycles ORDER BY idx").fetchall(),
            "equity": conn.execute("SELECT ts, equity FROM trading_equity ORDER BY ts").fetchall(),
            "place_intents": conn.execute("SELECT client_id, count(*), min(status) FROM trading_intents "
                                          "WHERE action='place' GROUP BY client_id ORDER BY client_id").fetchall(),
        })
    finally:
        conn.close()


def _without_epoch(epoch: str, tables: dict) -> dict:
    tag = "rd" + epoch + "-"

    def fix(v):
        return "rd-" + v[len(tag):] if isinstance(v, str) and v.startswith(tag) else v
    return {name: [tuple(fix(v) for v in row) for row in rows] for name, rows in tables.items()}


def test_sigkill_at_random_moments_resumes_exactly(tmp_path: Path) -> None:
    data = _write_slice(tmp_path)
    cfg = only_envelope_config(tmp_path)
    ref_db, ref_report = tmp_path / "ref" / "r.db", tmp_path / "ref.json"
    ref = subprocess.run(_cmd(cfg, ref_db, data, ref_report), cwd=PROJECT, env=_env(), capture_output=True,
                         text=True, timeout=120)
    assert ref.returncode == 0, ref.stderr[-3000:]

    db, report = tmp_path / "crash" / "r.db", tmp_path / "crash.json"
    rng = random.Random(20240607)
    targets = sorted(rng.randrange(0, N_CANDLES) for _ in range(N_KILLS))
    kills = 0
    progress_seen = []
    for target in targets:
        proc = subprocess.Popen(_cmd(cfg, db, data), cwd=PROJECT, env=_env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while proc.poll() is None and _progress(db) < target and time.monotonic() < deadline:
            time.sleep(0.002)
        time.sleep(rng.uniform(0, 0.02))                 # a random instant after the target candle
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(timeout=30)
        progress_seen.append(_progress(db))
    assert kills >= N_KILLS - 2, f"only {kills} kills landed (progress {progress_seen})"
    print(f"\n{kills} SIGKILLs; candles committed after each: {progress_seen}")
    assert len({p for p in progress_seen if 0 < p < N_CANDLES}) >= N_KILLS // 2, progress_seen
    final = subprocess.run(_cmd(cfg, db, data, report), cwd=PROJECT, env=_env(), capture_output=True,
                           text=True, timeout=120)
    assert final.returncode == 0, final.stderr[-3000:]

    assert json.loads(report.read_text()) == json.loads(ref_report.read_text())
    got, want = _tables(db), _tables(ref_db)
    for name in want:
        assert got[name] == want[name], f"{name} differ after {kills} crashes"
    # no duplicate order: one place intent per client id, done
    assert all(n == 1 and status == "done" for _cid, n, status in got["place_intents"])
    # no lost fill: every filled order has its fill and vice versa
    filled = {r[0] for r in got["orders"] if r[6] == "filled"}
    assert filled == {r[0] for r in got["fills"]}
    # never an open position without its stop, at any recorded moment
    orders = {r[0]: r for r in got["orders"]}
    for ts, qty, avg, stop, stop_cid, levels in got["positions"]:
        if qty > 0:
            assert stop is not None and math.isfinite(stop) and stop < avg, (ts, qty, avg, stop)
            assert stop_cid in orders and orders[stop_cid][3] == "stop"
    assert len(got["fills"]) > 50
