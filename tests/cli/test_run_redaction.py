"""`radar run` masks the secrets' values in every log it writes (the JSON-lines run log, the trade
log) and in its database. A command's reason carrying an API key (an operator pasting the wrong
thing) reaches the logs and the command audit through the engine API; the key must appear in
none of them, "***" in its place."""

from __future__ import annotations

import sqlite3
import subprocess
import time

from core.api.protocol import socket_path_for
from tests.support.shared_data import shared_file
from tests.tui.attach_support import ROOT, env, radar_cmd, status

KEY = "bgkey-7f3a9c0e5d1b"
SECRET = "bgsecret-2e8d4a6c9f01"


def test_secrets_are_masked_in_the_run_log_and_the_trade_log(tmp_path) -> None:
    db = tmp_path / "radar.db"
    e = {**env(), "BITGET_API_KEY": KEY, "BITGET_API_SECRET": SECRET, "BITGET_API_PASSPHRASE": "bgpass-55aa"}
    err = open(tmp_path / "stderr", "w")
    proc = subprocess.Popen(radar_cmd(db, "run", "--no-ui", "--replay", str(shared_file("binance-spot/BTC_USDT-1h.json.gz")),
                                      "--speed", "3600", "--status-interval", "0"),
                            cwd=ROOT, env=e, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
    try:
        deadline = time.monotonic() + 60
        while not (socket_path_for(db).exists() and status(db).get("engine_running")):
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "stderr").read_text()[-2000:]
            time.sleep(0.2)
        run = subprocess.run(radar_cmd(db, "ctl", "kill", "--reason", f"pasted {KEY} by mistake"), cwd=ROOT,
                             env=env(), capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stderr
    finally:
        proc.terminate()
        proc.wait(30)
        err.close()
    logs = tmp_path / "logs"
    run_log = (logs / "radar-run.jsonl").read_text()
    trade_log = (logs / "trades.jsonl").read_text()
    assert "engine API: kill" in run_log and "kill_switch" in trade_log     # the lines are there
    for text in (run_log, trade_log, (tmp_path / "stderr").read_text()):
        assert KEY not in text and SECRET not in text
    assert "pasted *** by mistake" in run_log
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT command, args, message FROM api_audit").fetchall()
    assert rows and any(cmd == "kill" and "pasted *** by mistake" in args for cmd, args, _ in rows), rows
    assert not any(KEY in (args or "") or KEY in (msg or "") for _, args, msg in rows), rows
