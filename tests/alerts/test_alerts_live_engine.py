"""A running headless engine sees `radar alerts ack` from another process within a second.

`radar run --no-ui --replay <slice of BTC 1h holding a real gap> --speed <paced>` runs as a
subprocess; the engine itself raises the gap's data-quality alert; `radar alerts ack ID` runs
as a separate process; the engine's AlertEngine polls the database (every 0.3 s) and its run
services log every alert an operator changed ("alert #N acknowledged by cli: ...", see
`core.engine.services.log_operator_change`) in the run's JSON-lines log. That log line, written
by the engine process with its own timestamp, is the observable: no extra table or column, and
it is only written once the engine's in-memory view holds the operator's change.
"""

from __future__ import annotations

import gzip
import json
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

from tests.support.shared_data import shared_file
from tests.engine.test_engine_replay import PROJECT, RADAR, only_envelope_config, radar

BTC_1H = "binance-spot/BTC_USDT-1h.json.gz"
#: Rows of BTC 1h around its first real gap (6 candles missing after row 493).
SLICE = (470, 700)


def write_slice(tmp: Path, start: int, stop: int, rel: str = BTC_1H) -> Path:
    """Rows [start, stop) of a shared freqtrade file, as a freqtrade file of the same name in `tmp`."""
    src = shared_file(rel)
    with gzip.open(src, "rt") as f:
        rows = json.load(f)
    out = tmp / "slice" / src.name
    out.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(out, "wt") as f:
        json.dump(rows[start:stop], f)
    return out


def pace_for(path: Path, seconds: float) -> float:
    """The --speed (market seconds per second) that plays the file in about `seconds`."""
    with gzip.open(path, "rt") as f:
        rows = json.load(f)
    return (rows[-1][0] - rows[0][0]) / 1000.0 / seconds


def start_engine(tmp: Path, data: Path, speed: float) -> tuple[subprocess.Popen, Path, Path]:
    """`radar run --no-ui` on a tmp database and config; returns (process, db, JSON-lines log)."""
    cfg = only_envelope_config(tmp)
    db = tmp / "run.db"
    log = tmp / "logs" / "radar-run.jsonl"
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    for var in ("TELEGRAM_BOT_TOKEN", "TELEGRAM_ALLOWED_CHAT_IDS"):
        env.pop(var, None)
    err = open(tmp / "engine.stderr", "w")    # a file, not a pipe: a full pipe would block the engine
    proc = subprocess.Popen([*RADAR, "--config-dir", str(cfg), "--db", str(db), "run", "--no-ui",
                             "--replay", str(data), "--speed", f"{speed:.0f}", "--status-interval", "0"],
                            cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=err, text=True)
    err.close()
    proc.stderr_path = tmp / "engine.stderr"  # type: ignore[attr-defined]
    return proc, db, log


def stop_engine(proc: subprocess.Popen, timeout: float = 30) -> tuple[int, str]:
    """SIGINT (graceful stop) if still running; returns (exit code, stderr)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    return proc.returncode, engine_stderr(proc)


def engine_stderr(proc: subprocess.Popen) -> str:
    return Path(proc.stderr_path).read_text(errors="replace")  # type: ignore[attr-defined]


def query(db: Path, sql: str, *params) -> list[tuple]:
    """A read of the engine's database (None-safe while it is being created)."""
    if not db.exists():
        return []
    conn = sqlite3.connect(db, timeout=5)
    try:
        return conn.execute(sql, params).fetchall()
    except sqlite3.OperationalError:      # table not created yet
        return []
    finally:
        conn.close()


def wait_for(pred, timeout: float, what: str, proc: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while True:
        got = pred()
        if got:
            return got
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the engine exited ({proc.returncode}) before {what}: {engine_stderr(proc)[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def log_records(log: Path) -> list[dict]:
    if not log.exists():
        return []
    out = []
    for line in log.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:                 # a line being written
            pass
    return out


def test_engine_sees_cli_ack_from_another_process_within_a_second(tmp_path: Path) -> None:
    data = write_slice(tmp_path, *SLICE)
    proc, db, log = start_engine(tmp_path, data, pace_for(data, 10.0))
    try:
        # the engine raises the gap alert itself (about 1 s into the replay)
        ((alert_id, key, state),) = wait_for(
            lambda: query(db, "SELECT id, dedup_key, state FROM alerts WHERE dedup_key LIKE 'data.gap:%'"),
            20, "the engine's gap alert", proc)
        assert key == "data.gap:BTC/USDT:1h:1504717200000" and state == "active"

        ack = radar("--db", str(db), "alerts", "ack", str(alert_id), timeout=60)
        assert ack.returncode == 0, ack.stderr
        assert f"acknowledged alert {alert_id}" in ack.stdout
        ((changed_ms, changed_by, state),) = query(db, "SELECT changed_ms, changed_by, state FROM alerts "
                                                       "WHERE id = ?", alert_id)
        assert (changed_by, state) == ("cli", "acknowledged")

        want = f"alert #{alert_id} acknowledged by cli"
        seen = wait_for(lambda: [r for r in log_records(log) if r["msg"].startswith(want)], 5,
                        "the engine's log line about the ack")
        assert proc.poll() is None, "the engine must still be running when it sees the change"
        (rec,) = seen
        lag_ms = rec["ts"] - changed_ms
        print(f"\nengine saw the CLI ack {lag_ms} ms after it was committed")
        assert rec["logger"] == "core.engine.services"
        assert 0 <= lag_ms <= 1000, lag_ms
    finally:
        code, err = stop_engine(proc)
    assert code == 0, err[-3000:]
    # the engine never overwrote the operator's change
    assert query(db, "SELECT state, changed_by FROM alerts WHERE id = ?", alert_id) == [("acknowledged", "cli")]
