"""`radar backtest` end to end: a freqtrade file, the store, --json, --param errors.

The command runs through `core.cli.main.main` with only the backtest subcommand registered,
so these tests do not depend on the other subcommand modules.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

import core.cli.main as cli_main
from core.backtest.event_engine import run_event_backtest
from core.backtest.loading import load_from_file
from core.storage import candle_store
from core.storage.db import open_sync
from tests.support.shared_data import PROJECT_ROOT, shared_file

FROM, TO = "2021-01-01", "2021-04-01"
FROM_MS, TO_MS = 1_609_459_200_000, 1_617_235_200_000
ISOLATED = ("import sys, core.cli.main as m; m.SUBCOMMAND_MODULES[:] = ['core.cli.backtest_cmd']; "
            "sys.exit(m.main(sys.argv[1:]))")


@pytest.fixture(autouse=True)
def only_backtest(monkeypatch):
    monkeypatch.setattr(cli_main, "SUBCOMMAND_MODULES", ["core.cli.backtest_cmd"])


def btc() -> Path:
    return shared_file("binance-spot/BTC_USDT-1h.json.gz")


def run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli_main.main(argv)
    return code, out.getvalue(), err.getvalue()


def test_json_prints_only_the_spec_json():
    """In a real process: stdout is exactly one line of JSON, the spec's document."""
    proc = subprocess.run(
        [sys.executable, "-c", ISOLATED, "backtest", "--strategy", "envelope_dca", "--data", str(btc()),
         "--from", FROM, "--to", TO, "--json"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("\n") == 1 and proc.stdout.endswith("}\n")
    doc = json.loads(proc.stdout)
    candles = load_from_file(btc(), start_ms=FROM_MS, end_ms=TO_MS)
    want = run_event_backtest(candles, "envelope_dca",
                              {"ma_period": 7, "num_levels": 3, "envelope_start": 0.05, "envelope_step": 0.03,
                               "sl_percent": 0.20}).to_spec_json()
    assert doc == json.loads(json.dumps(want))
    assert doc["symbol"] == "BTC/USDT" and doc["timeframe"] == "1h" and doc["n_cycles"] > 0


def test_data_file_human_report():
    code, out, err = run(["backtest", "--strategy", "envelope_dca_short", "--data", str(btc()),
                          "--from", FROM, "--to", TO])
    assert code == 0, err
    # 90 days of 1h, two of them missing in the data (gaps are kept, not filled)
    assert "envelope_dca_short on BTC/USDT spot 1h: 2,158 candles 2021-01-01 00:00 .. 2021-03-31 23:00" in out
    for label in ("Metrics", "final equity (USDT)", "Sortino", "exposure", "Last ", "cycles"):
        assert label in out


def test_param_override_and_range(tmp_path):
    code, out, err = run(["backtest", "--strategy", "envelope_dca", "--data", str(btc()), "--from", FROM,
                          "--to", "2021-01-15T12:00", "--param", "ma_period=10", "--param", "sl_percent=0.1",
                          "--json"])
    assert code == 0, err
    doc = json.loads(out)
    assert doc["params"]["ma_period"] == 10 and doc["params"]["sl_percent"] == 0.1
    assert doc["params"]["num_levels"] == 3                   # from the config / defaults
    assert all(FROM_MS <= c["open_time"] < FROM_MS + 14 * 86_400_000 + 12 * 3_600_000 for c in doc["cycles"])


def test_store_gives_the_same_result_as_the_file(tmp_path):
    db = tmp_path / "radar.db"
    conn = open_sync(db)
    try:
        candle_store.write_candles(conn, load_from_file(btc(), start_ms=FROM_MS - 86_400_000, end_ms=TO_MS))
    finally:
        conn.close()
    args = ["--strategy", "envelope_dca", "--from", FROM, "--to", TO, "--json"]
    code, from_store, err = run(["--db", str(db), "backtest", "--symbol", "BTC/USDT", "--timeframe", "1h", *args])
    assert code == 0, err
    code, from_file, err = run(["backtest", "--data", str(btc()), *args])
    assert code == 0, err
    assert json.loads(from_store) == json.loads(from_file)


def test_engine_fast_agrees_on_the_summary():
    args = ["backtest", "--strategy", "envelope_dca", "--data", str(btc()), "--from", FROM, "--to", TO, "--json"]
    code, ev, err = run(args)
    assert code == 0, err
    code, fa, err = run(args + ["--engine", "fast"])
    assert code == 0, err
    ev, fa = json.loads(ev), json.loads(fa)
    assert ev["n_cycles"] == fa["n_cycles"]
    assert ev["final_equity"] == pytest.approx(fa["final_equity"], rel=1e-9)


def test_engine_fast_missing_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "core.backtest.fast", None)   # makes the import fail
    code, out, err = run(["backtest", "--strategy", "envelope_dca", "--data", str(btc()), "--from", FROM,
                          "--to", TO, "--engine", "fast"])
    assert code == 1 and out == ""
    assert "the fast engine (core.backtest.fast.run_fast) is not available" in err


@pytest.mark.parametrize("param,message", [
    ("foo=1", "unknown parameter(s) 'foo'"),
    ("ma_period", "--param 'ma_period': expected KEY=VALUE"),
    ("=3", "--param '=3': expected KEY=VALUE"),
    ("num_levels=abc", "--param num_levels='abc': expected a number"),
    ("num_levels=0", "num_levels must be >= 1"),
    ("ma_period=2.5", "ma_period must be an integer"),
    ("sl_percent=nan", "sl_percent must be a finite number"),
    ("envelope_start=1.5", "envelope_start must be in (0, 1)"),
])
def test_bad_param_is_exit_2_with_a_clear_message(param, message):
    code, out, err = run(["backtest", "--strategy", "envelope_dca", "--data", str(btc()), "--param", param])
    assert code == 2
    assert out == ""
    assert err.startswith("radar: error: ") and message in err


def test_other_usage_errors():
    code, _, err = run(["backtest", "--strategy", "envelope_dca", "--symbol", "BTC/USDT"])
    assert code == 2 and "give --symbol and --timeframe" in err
    code, _, err = run(["backtest", "--strategy", "envelope_dca", "--data", str(btc()), "--from", "yesterday"])
    assert code == 2 and "--from 'yesterday': expected YYYY-MM-DD" in err
    code, _, err = run(["backtest", "--strategy", "envelope_dca", "--data", str(btc()), "--from", TO, "--to", FROM])
    assert code == 2 and "--to must be after --from" in err
    code, _, err = run(["backtest", "--strategy", "envelope_dca", "--data", str(btc()), "--from", "2030-01-01"])
    assert code == 2 and "no candles of" in err
    with pytest.raises(SystemExit) as exc:          # argparse: not a registered strategy
        run(["backtest", "--strategy", "no_such_strategy", "--data", str(btc())])
    assert exc.value.code == 2


def test_missing_database_or_series(tmp_path):
    code, _, err = run(["--db", str(tmp_path / "none.db"), "backtest", "--strategy", "envelope_dca",
                        "--symbol", "BTC/USDT", "--timeframe", "1h"])
    assert code == 2 and "no database at" in err
    open_sync(tmp_path / "empty.db").close()
    code, _, err = run(["--db", str(tmp_path / "empty.db"), "backtest", "--strategy", "envelope_dca",
                        "--symbol", "ETH/USDT", "--timeframe", "1h"])
    assert code == 2 and "no stored candles for ETH/USDT spot 1h" in err
