"""`radar run --replay FINE_FILE --timeframe TF` (issue 13): the replay trades the resampled
candles, and its report equals `radar backtest --data FINE_FILE --timeframe TF`."""

from __future__ import annotations

import json
from pathlib import Path

from tests.engine.test_engine_replay import assert_same_result, only_envelope_config, radar
from tests.support.shared_data import shared_file

FINE = "binance-futures/BTC_USDT_USDT-5m-futures.json.gz"


def _run(cfg: Path, db: Path, *args: str):
    return radar("--config-dir", str(cfg), "--db", str(db), "run", "--no-ui", "--status-interval", "0",
                 "--speed", "max", *args, timeout=300)


def test_replay_resampled_equals_backtest_resampled(tmp_path: Path) -> None:
    data = shared_file(FINE)
    cfg = only_envelope_config(tmp_path)
    report = tmp_path / "r.json"
    run = _run(cfg, tmp_path / "r.db", "--replay", str(data), "--timeframe", "1h", "--report", str(report))
    assert run.returncode == 0, run.stderr[-3000:]
    bt = radar("--config-dir", str(cfg), "backtest", "--strategy", "envelope_dca", "--data", str(data),
               "--timeframe", "1h", "--json")
    assert bt.returncode == 0, bt.stderr[-2000:]
    (got,) = json.loads(report.read_text())
    want = json.loads(bt.stdout)
    assert got["timeframe"] == "1h" and got["symbol"] == "BTC/USDT:USDT"
    assert_same_result(got, want)


def test_replay_timeframe_errors(tmp_path: Path) -> None:
    cfg = only_envelope_config(tmp_path)
    run = _run(cfg, tmp_path / "x.db", "--timeframe", "1h")
    assert run.returncode == 2 and "--timeframe resamples the replayed files: it goes with --replay" in run.stderr
    run = _run(cfg, tmp_path / "x.db", "--replay", str(shared_file(FINE)), "--timeframe", "1m")
    assert run.returncode == 2, run.stderr[-2000:]
    assert "--timeframe 1m: the data holds 5m candles, which cannot be resampled into the finer 1m" in run.stderr
    assert not (tmp_path / "x.db").exists()
