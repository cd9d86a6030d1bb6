"""`radar optimize --data FINE_FILE --timeframe TF` (issue 13): the walk-forward runs on the
resampled candles; a finer or non-multiple --timeframe is refused."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pytest

from core.backtest.loading import load_from_file
from core.cli.main import main
from core.cli.optimize_cmd import resolve_series
from core.data.aggregate import resample_candles
from core.errors import UsageError
from core.jobs.optimize_job import _load, optimize_params
from tests.support.shared_data import shared_file

FINE = "binance-futures/BTC_USDT_USDT-5m-futures.json.gz"


def _radar(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def test_resolve_series_resamples_into_a_coarser_timeframe(tmp_path: Path) -> None:
    btc = tmp_path / "BTC_USDT_USDT-5m-futures.json.gz"
    eth = tmp_path / "ETH_USDT_USDT-5m-futures.json.gz"
    for p in (btc, eth):
        p.write_bytes(b"")
    tf, series = resolve_series([], "1h", None, [btc])
    assert tf == "1h" and series == [{"symbol": "BTC/USDT:USDT", "market": "futures", "file": str(btc),
                                      "timeframe": "5m"}]
    tf, series = resolve_series(["ETH/USDT:USDT", "BTC/USDT:USDT"], "4h", None, [btc, eth])
    assert tf == "4h" and [s["timeframe"] for s in series] == ["5m", "5m"]
    tf, series = resolve_series([], "5m", None, [btc])
    assert tf == "5m" and "timeframe" not in series[0]
    with pytest.raises(UsageError, match="--timeframe 7m: 7m is not a whole multiple of the data's 5m"):
        resolve_series([], "7m", None, [btc])
    with pytest.raises(UsageError, match="--timeframe 1m: the data holds 5m candles"):
        resolve_series([], "1m", None, [btc, eth])
    with pytest.raises(UsageError, match="finer 1m"):
        optimize_params("envelope_dca", "1m", [{"symbol": "X/USDT", "market": "spot", "file": None,
                                                 "timeframe": "5m"}])


def test_job_loads_the_resampled_candles(tmp_path: Path) -> None:
    src = shared_file(FINE)
    _, series = resolve_series([], "1h", None, [src])
    params = optimize_params("envelope_dca", "1h", series)
    assert params["series"][0]["timeframe"] == "5m"
    got = _load(params, params["series"][0], tmp_path / "none.db")
    want = resample_candles(load_from_file(src), "1h")
    assert got.timeframe == "1h" and np.array_equal(got.ts, want.ts) and np.array_equal(got.close, want.close)


def test_optimize_runs_on_the_resampled_candles(tmp_path: Path) -> None:
    code, out, err = _radar("--db", str(tmp_path / "r.db"), "optimize", "--strategy", "envelope_dca",
                            "--data", str(shared_file(FINE)), "--timeframe", "1h", "--is-days", "15",
                            "--oos-days", "5", "--step-days", "5", "--max-points", "20", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert doc["timeframe"] == "1h"
    (r,) = doc["results"]
    assert r["symbol"] == "BTC/USDT:USDT" and r["windows"] >= 3
    code, out, err = _radar("--db", str(tmp_path / "r.db"), "optimize", "results", "--json")
    assert code == 0 and json.loads(out)["results"][0]["timeframe"] == "1h"
