"""`radar status [--json]` and `radar ctl ...` against a running engine (in-process, and a
headless `radar run --no-ui` subprocess), and with no engine listening."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import time
from pathlib import Path

import pytest

from core.api import sockets
from core.api.audit import read_audit
from core.api.protocol import PROTOCOL_VERSION
from core.cli.main import main
from tests.alerts.test_alerts_live_engine import pace_for, start_engine, stop_engine, write_slice
from tests.api.conftest import Run
from tests.engine.test_engine_replay import radar


def _run(capsys: pytest.CaptureFixture, argv: list[str]) -> tuple[int, str, str]:
    """`radar ARGV` in this process: (exit code, stdout, stderr)."""
    capsys.readouterr()
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


async def cli(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    """`radar ARGV` in a thread (its own event loop), while the engine runs on this one."""
    return await asyncio.to_thread(_run, capsys, list(argv))


async def test_status_json_and_text_of_a_running_engine(run: Run, capsys: pytest.CaptureFixture) -> None:
    code, out, err = await cli(capsys, "--db", str(run.db), "status", "--json")
    assert (code, err) == (0, "")
    s = json.loads(out)
    r = run.engine.runners[0]
    assert s["engine_running"] is True and s["socket"] == str(run.socket) and s["protocol"] == PROTOCOL_VERSION == "1.2"
    assert s["engine"]["pid"] == os.getpid() and s["engine"]["ui"] == "headless" and s["mode"] == "paper"
    assert abs(s["equity"] - r.equity_last) < 1e-9 and s["kill_switch"]["active"] is False
    (row,) = s["runners"]
    assert (row["strategy"], row["symbol"], row["timeframe"]) == ("envelope_dca", "BTC/USDT", "1h")
    assert row["state"] == "ready"
    pos = r.position()
    assert row["qty"] == pos["qty"] > 0 and row["stop"] == pos["stop"] and row["unrealized"] == pos["unrealized"]
    assert s["positions"] == [row]
    assert {o["client_id"] for o in s["open_orders"]} == {o["client_id"] for o in r.grid_state()["open_orders"]}
    assert any(o["purpose"] == "stop" for o in s["open_orders"]) or row["stop"] is not None

    code, out, err = await cli(capsys, "--db", str(run.db), "status")
    assert code == 0 and err == ""
    assert out.startswith(f"engine running: pid {os.getpid()}, paper (headless), protocol 1.2, socket {run.socket}")
    assert "equity " in out and "USDT, day P&L" in out and "kill switch off" in out
    assert "envelope_dca" in out and "Open orders" in out
    assert read_audit(sqlite3.connect(run.db)) == []                 # queries are not commands


async def test_ctl_commands_are_sent_and_audited_as_cli(run: Run, capsys: pytest.CaptureFixture) -> None:
    db = str(run.db)
    code, out, err = await cli(capsys, "--db", db, "ctl", "cancel-entries", "BTC/USDT")
    assert code == 0 and out.startswith("cancelled ") and "(audit #1)" in out
    code, out, err = await cli(capsys, "--db", db, "ctl", "flatten", "ETH/USDT")
    assert (code, out) == (2, "")
    assert err == ("radar: error: the engine refused (400 bad_symbol): flatten: no strategy runs on 'ETH/USDT'; "
                   "running: BTC/USDT\n")
    code, out, err = await cli(capsys, "--db", db, "ctl", "kill", "--flatten", "--reason", "from the cli")
    assert code == 0 and out.startswith("kill switch ON: ") and "1 position(s) flattened" in out
    assert run.engine.kill_switch.active and run.engine.runners[0].position()["qty"] == 0
    code, out, err = await cli(capsys, "--db", db, "ctl", "--json", "resume")
    assert code == 0 and json.loads(out)["result"] == {"active": False}
    code, out, err = await cli(capsys, "--db", db, "ctl", "ack", "9999")
    assert code == 2 and "no alert with id 9999" in err
    alert = await run.services.alerts.raise_alert("test:cli", "warning", "test", "an alert to snooze")
    code, out, err = await cli(capsys, "--db", db, "ctl", "snooze", str(alert.id), "45")
    assert code == 0 and run.services.alerts.get(alert.id).state.value == "snoozed"
    rows = read_audit(sqlite3.connect(run.db))
    assert [(r.command, r.outcome, r.source) for r in reversed(rows)] == [
        ("cancel_entries", "ok", "cli"), ("flatten", "refused", "cli"), ("kill", "ok", "cli"),
        ("resume", "ok", "cli"), ("ack", "refused", "cli"), ("snooze", "ok", "cli")]
    assert rows[3].args == {"flatten": True, "reason": "from the cli"}


def test_status_with_no_engine_says_so_naming_the_socket(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    db = tmp_path / "radar.db"
    sock = Path(str(db) + ".sock")
    code, out, err = _run(capsys, ["--db", str(db), "status"])
    assert (code, err) == (1, "")
    assert out == f"no engine running: {sock} does not exist (start one with `radar run`, or check --db)\n"
    s, _ = sockets.bind_private(sock)
    s.close()                                                     # a crashed engine's socket file
    code, out, err = _run(capsys, ["--db", str(db), "status", "--json"])
    got = json.loads(out)
    assert code == 1 and got["engine_running"] is False and got["socket"] == str(sock)
    assert got["message"].startswith(f"no engine running: nothing listens on {sock}")
    code, out, err = _run(capsys, ["--db", str(db), "ctl", "resume"])
    assert code == 1 and err.startswith(f"radar: error: no engine running: nothing listens on {sock}")
    assert not db.exists()


def test_status_of_a_headless_radar_run(tmp_path: Path) -> None:
    """`radar run --no-ui` (a subprocess) serves its API; `radar status --json` (another) reads it;
    a clean stop removes the socket."""
    data = write_slice(tmp_path, 470, 700)
    proc, db, _ = start_engine(tmp_path, data, pace_for(data, 60.0))
    sock = Path(str(db) + ".sock")
    try:
        deadline = time.monotonic() + 60
        while not sock.exists():
            assert proc.poll() is None, Path(proc.stderr_path).read_text()[-3000:]
            assert time.monotonic() < deadline, "the engine never opened its API socket"
            time.sleep(0.1)
        run = radar("--db", str(db), "status", "--json", timeout=60)
        assert run.returncode == 0, run.stdout + run.stderr
        s = json.loads(run.stdout)
        assert s["engine"]["pid"] == proc.pid and s["engine"]["ui"] == "headless" and s["mode"] == "paper"
        assert [r["symbol"] for r in s["runners"]] == ["BTC/USDT"]
        assert oct(os.lstat(sock).st_mode & 0o777) == "0o600"
    finally:
        code, err = stop_engine(proc)
    assert code == 0, err[-3000:]
    assert not sock.exists()
