"""A headless replay of the real BTC 1h file raises one data-quality alert per real gap in it
(27), each with the gap's time range (as `core.data.quality` finds it) in its detail."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from core.backtest.loading import load_from_file
from core.data.quality import check_candles
from tests.engine.test_engine_replay import only_envelope_config, radar
from tests.support.shared_data import shared_file

BTC_1H = "binance-spot/BTC_USDT-1h.json.gz"


def test_replay_raises_one_alert_per_gap_with_its_range(tmp_path: Path) -> None:
    data = shared_file(BTC_1H)
    want = check_candles(load_from_file(data)).gaps
    assert len(want) == 27
    cfg = only_envelope_config(tmp_path)
    db = tmp_path / "r.db"
    run = radar("--config-dir", str(cfg), "--db", str(db), "run", "--no-ui", "--replay", str(data),
                "--speed", "max", "--status-interval", "0")
    assert run.returncode == 0, run.stderr[-3000:]
    conn = sqlite3.connect(db)
    try:
        rows = conn.execute("SELECT dedup_key, severity, source, title, detail FROM alerts "
                            "WHERE dedup_key LIKE 'data.gap:%' ORDER BY id").fetchall()
    finally:
        conn.close()
    assert len(rows) == len(want) == 27
    for (key, severity, source, title, detail), gap in zip(rows, want):
        assert key == f"data.gap:BTC/USDT:1h:{gap.from_ms}"
        assert severity == "warning" and source == "data"
        assert f"from_ms={gap.from_ms} to_ms={gap.to_ms}" in detail, detail
        assert f"{gap.missing} missing" in detail, detail
