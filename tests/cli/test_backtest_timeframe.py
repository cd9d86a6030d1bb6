"""`radar backtest --data FINE_FILE --timeframe TF` (issue 13): the backtest of the resampled
candles equals the backtest of an independently aggregated TF file of the same data."""

from __future__ import annotations

import contextlib
import gzip
import io
import json
from pathlib import Path

import pytest

import core.cli.main as cli_main
from core.data.timeframes import timeframe_ms
from tests.support.shared_data import shared_file


@pytest.fixture(autouse=True)
def only_backtest(monkeypatch):
    monkeypatch.setattr(cli_main, "SUBCOMMAND_MODULES", ["core.cli.backtest_cmd"])


def run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli_main.main(argv)
    return code, out.getvalue(), err.getvalue()


def aggregate_independently(src: Path, base_ms: int, target_ms: int) -> list[list]:
    """A plain loop over the file's rows: a bucket [k*T, (k+1)*T) is written only when it holds
    every one of its T/base candles; first open, max high, min low, last close, summed volume."""
    with gzip.open(src, "rt") as f:
        rows = json.load(f)
    need = target_ms // base_ms
    out: list[list] = []
    cur: list | None = None
    count = 0

    def close_bucket() -> None:
        if cur is not None and count == need:
            out.append(cur)

    for ts, o, h, lo, c, v in rows:
        start = int(ts) // target_ms * target_ms
        if cur is None or start != cur[0]:
            close_bucket()
            cur, count = [start, o, h, lo, c, v], 1
        else:
            cur[2] = max(cur[2], h)
            cur[3] = min(cur[3], lo)
            cur[4] = c
            cur[5] += v
            count += 1
    close_bucket()
    return out


def write_freqtrade(path: Path, rows: list[list]) -> Path:
    with gzip.open(path, "wt") as f:
        json.dump(rows, f)
    return path


@pytest.mark.parametrize("fine, base, target, strategy", [
    ("BTC_USDT_USDT-5m-futures.json.gz", "5m", "1h", "envelope_dca"),
    ("BTC_USDT_USDT-5m-futures.json.gz", "5m", "1h", "bollinger_mr"),
    ("ETH_USDT_USDT-1m-futures.json.gz", "1m", "15m", "envelope_dca"),
])
def test_backtest_of_resampled_candles_equals_an_independent_aggregation(tmp_path: Path, fine: str, base: str,
                                                                         target: str, strategy: str) -> None:
    src = shared_file(f"binance-futures/{fine}")
    rows = aggregate_independently(src, timeframe_ms(base), timeframe_ms(target))
    agg = write_freqtrade(tmp_path / fine.replace(f"-{base}-", f"-{target}-"), rows)
    code, out, err = run(["backtest", "--strategy", strategy, "--data", str(src), "--timeframe", target, "--json"])
    assert code == 0, err
    resampled = json.loads(out)
    code, out, err = run(["backtest", "--strategy", strategy, "--data", str(agg), "--json"])
    assert code == 0, err
    independent = json.loads(out)
    assert resampled["timeframe"] == independent["timeframe"] == target
    assert resampled["symbol"] == independent["symbol"]
    assert resampled["n_cycles"] == independent["n_cycles"] > 0
    assert resampled["cycles"] == independent["cycles"]
    assert abs(resampled["final_equity"] - independent["final_equity"]) <= 1e-9
    assert resampled == independent


def test_funding_file_beside_a_resampled_perpetual_still_loads(tmp_path: Path) -> None:
    src = shared_file("binance-futures/BTC_USDT_USDT-5m-futures.json.gz")
    funding = shared_file("binance-futures/BTC_USDT_USDT-8h-funding_rate.json.gz")
    agg = write_freqtrade(tmp_path / "BTC_USDT_USDT-1h-futures.json.gz",
                          aggregate_independently(src, 300_000, 3_600_000))
    code, out, err = run(["--db", str(tmp_path / "none.db"), "backtest", "--strategy", "funding", "--data", str(src),
                          "--timeframe", "1h", "--json"])
    assert code == 0, err                                   # the 8h funding file beside the 5m file
    beside = json.loads(out)
    code, out, err = run(["--db", str(tmp_path / "none.db"), "backtest", "--strategy", "funding", "--data", str(agg),
                          "--funding-data", str(funding), "--json"])
    assert code == 0, err
    assert beside == json.loads(out) and beside["timeframe"] == "1h"


@pytest.mark.parametrize("tf, words", [
    ("1m", "--timeframe 1m: the data holds 5m candles, which cannot be resampled into the finer 1m"),
    ("7m", "--timeframe 7m: 7m is not a whole multiple of the data's 5m candles"),
])
def test_finer_or_non_multiple_timeframe_is_refused(tf: str, words: str) -> None:
    src = shared_file("binance-futures/BTC_USDT_USDT-5m-futures.json.gz")
    code, out, err = run(["backtest", "--strategy", "envelope_dca", "--data", str(src), "--timeframe", tf, "--json"])
    assert code == 2 and out == "" and words in err


def test_store_holding_only_finer_candles_is_resampled(tmp_path: Path) -> None:
    """The store holds BTC/USDT:USDT 5m only: `--symbol ... --timeframe 1h` resamples them, with
    the range applied to the 1h open times, exactly as the same file with --data does."""
    from core.backtest.loading import load_from_file
    from core.storage import candle_store
    from core.storage.db import open_sync

    src = shared_file("binance-futures/BTC_USDT_USDT-5m-futures.json.gz")
    db = tmp_path / "radar.db"
    conn = open_sync(db)
    try:
        candle_store.write_candles(conn, load_from_file(src))
    finally:
        conn.close()
    rng = ["--from", "2025-03-10T07:30", "--to", "2025-04-01"]
    code, out, err = run(["--db", str(db), "backtest", "--strategy", "bollinger_mr", "--symbol", "BTC/USDT:USDT",
                          "--timeframe", "1h", *rng, "--json"])
    assert code == 0, err
    stored = json.loads(out)
    code, out, err = run(["backtest", "--strategy", "bollinger_mr", "--data", str(src), "--timeframe", "1h", *rng,
                          "--json"])
    assert code == 0, err
    assert stored == json.loads(out) and stored["timeframe"] == "1h" and stored["n_cycles"] > 0
    code, out, err = run(["--db", str(db), "backtest", "--strategy", "bollinger_mr", "--symbol", "BTC/USDT:USDT",
                          "--timeframe", "4m", "--json"])
    assert code == 2 and "no stored candles for BTC/USDT:USDT futures 4m" in err     # 5m does not divide 4m
