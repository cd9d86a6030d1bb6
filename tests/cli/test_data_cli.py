"""`radar data import|list|check` end to end on the real shared files."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.cli.main import main
from tests.support.shared_data import shared_candles_dir

H = 3_600_000
BTC_1H = {"symbol": "BTC/USDT", "market": "spot", "timeframe": "1h", "first_ms": 1_502_942_400_000,
          "last_ms": 1_665_482_400_000, "rows": 45_024, "gaps": 27}


def _run(argv: list[str]) -> tuple[int, str, str]:
    """main(argv) in-process with stdout/stderr captured (usable outside function-scoped capsys)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A database with the shared spot, futures 5m and funding files imported once: (db path, import stdout).

    (The 1m futures files import in test_candle_import; left out here to keep the suite fast.)
    """
    base = shared_candles_dir()
    files = sorted(str(p) for p in (base / "binance-spot").glob("*.json.gz"))
    files += sorted(str(p) for p in (base / "binance-futures").glob("*.json.gz") if "-1m-" not in p.name)
    db = tmp_path_factory.mktemp("cli") / "radar.db"
    code, out, err = _run(["--db", str(db), "data", "import", *files])
    assert (code, err) == (0, ""), err
    return db, out


def _table_row(text: str, *first_cells: str) -> list[str]:
    """The cells of the one Rich table row starting with `first_cells`."""
    rows = [[c.strip() for c in line.split("│")[1:-1]] for line in text.splitlines() if line.startswith("│")]
    found = [r for r in rows if r[: len(first_cells)] == list(first_cells)]
    assert len(found) == 1, text
    return found[0]


def test_import_prints_one_line_per_file(loaded: tuple[Path, str]) -> None:
    _, out = loaded
    lines = out.splitlines()
    assert len(lines) == 15 + 8 + 1
    base = shared_candles_dir()
    assert f"imported {base}/binance-spot/BTC_USDT-1h.json.gz: BTC/USDT spot 1h: 45024 rows read, 45024 new, " \
           "0 updated, 0 unchanged" in lines
    assert f"imported {base}/binance-futures/BTC_USDT_USDT-8h-funding_rate.json.gz: BTC/USDT:USDT funding 8h: " \
           "266 rows read, 266 new, 0 updated, 0 unchanged" in lines
    assert lines[-1] == "23 imported, 0 refused"


def test_list_table_shows_btc_hourly(loaded: tuple[Path, str], capsys: pytest.CaptureFixture[str]) -> None:
    db, _ = loaded
    assert main(["--db", str(db), "data", "list"]) == 0
    out = capsys.readouterr().out
    assert _table_row(out, "BTC/USDT", "spot", "1h") == [
        "BTC/USDT", "spot", "1h", "2017-08-17 04:00", "2022-10-11 10:00", "45,024", "27"]
    assert _table_row(out, "ETH/USDT:USDT", "futures", "5m")[3:6] == ["2025-03-06 10:30", "2025-04-13 07:15", "10,906"]
    assert _table_row(out, "BTC/USDT:USDT", "8h") == [
        "BTC/USDT:USDT", "8h", "2025-03-06 16:00", "2025-06-03 00:00", "266", "0"]


def test_list_json(loaded: tuple[Path, str], capsys: pytest.CaptureFixture[str]) -> None:
    db, _ = loaded
    assert main(["--db", str(db), "data", "list", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data["candles"]) == 15 + 4 and len(data["funding"]) == 4
    assert BTC_1H in data["candles"]
    sol = [f for f in data["funding"] if f["symbol"] == "SOL/USDT:USDT"]
    assert sol == [{"symbol": "SOL/USDT:USDT", "interval_ms": 8 * H, "first_ms": 1_741_276_800_000,
                    "last_ms": 1_748_908_800_000, "rows": 266, "gaps": 0}]


def test_check_json_reports_the_27_gaps(loaded: tuple[Path, str], capsys: pytest.CaptureFixture[str]) -> None:
    db, _ = loaded
    code = main(["--db", str(db), "data", "check", "--symbol", "BTC/USDT", "--timeframe", "1h", "--json"])
    assert code == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["spike_k"], data["spike_window"], data["funding"]) == (8.0, 48, [])
    [rep] = data["candles"]
    assert (rep["symbol"], rep["market"], rep["timeframe"], rep["rows"]) == ("BTC/USDT", "spot", "1h", 45_024)
    assert rep["gaps"]["count"] == 27 and rep["gaps"]["missing"] == 127
    assert rep["gaps"]["ranges"][0] == {"from_ms": 1_504_717_200_000, "to_ms": 1_504_735_200_000, "missing": 6}
    assert rep["zero_volume"] == {"runs": 3, "candles": 3, "longest": 1, "longest_from_ms": 1_504_713_600_000}
    assert rep["spikes"]["count"] == len(rep["spikes"]["at"]) > 0


def test_check_spike_parameters_change_the_result(loaded: tuple[Path, str], capsys: pytest.CaptureFixture[str]) -> None:
    db, _ = loaded
    counts = []
    for k in ("8", "20"):
        main(["--db", str(db), "data", "check", "--symbol", "BTC/USDT", "--timeframe", "1h", "--json",
              "--spike-k", k, "--spike-window", "24"])
        [rep] = json.loads(capsys.readouterr().out)["candles"]
        assert (rep["spikes"]["k"], rep["spikes"]["window"]) == (float(k), 24)
        counts.append(rep["spikes"]["count"])
    assert counts[0] > counts[1]


def test_check_table(loaded: tuple[Path, str], capsys: pytest.CaptureFixture[str]) -> None:
    db, _ = loaded
    assert main(["--db", str(db), "data", "check", "--symbol", "BTC/USDT", "--limit", "0"]) == 0
    out = capsys.readouterr().out
    row = _table_row(out, "BTC/USDT", "spot", "1h")
    assert row[:8] == ["BTC/USDT", "spot", "1h", "45,024", "27", "127", "3", "1"]
    assert _table_row(out, "2017-09-06 17:00") == ["2017-09-06 17:00", "2017-09-06 22:00", "6"]
    assert "Gaps of BTC/USDT spot 1h (UTC)" in out
    assert "more (--limit 0" not in out
    assert "Funding-rate" not in out
    assert row[9] == "0" and "Open-gap spikes of" not in out


def test_check_json_reports_the_eth_open_gap_spike(loaded: tuple[Path, str], capsys: pytest.CaptureFixture[str]) -> None:
    """The ETH/USDT 1h open of 2017-08-22 04:00 UTC (144.21 after a close of 280.00) is an open-gap spike."""
    db, _ = loaded
    assert main(["--db", str(db), "data", "check", "--symbol", "ETH/USDT", "--timeframe", "1h", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["open_gap_jump"], data["open_gap_close"]) == (0.2, 0.1)
    [rep] = data["candles"]
    og = rep["open_gap_spikes"]
    assert (og["min_jump"], og["max_close_move"], og["count"]) == (0.2, 0.1, 1)
    [at] = og["at"]
    assert at == {"ts_ms": 1_503_374_400_000, "prev_ts_ms": 1_503_370_800_000, "prev_close": 280.0, "open": 144.21,
                  "close": 287.0, "jump": pytest.approx(-0.485, abs=1e-4), "close_move": pytest.approx(0.025)}
    main(["--db", str(db), "data", "check", "--symbol", "ETH/USDT", "--timeframe", "1h", "--json",
          "--open-gap-jump", "0.5", "--open-gap-close", "0.1"])
    [rep] = json.loads(capsys.readouterr().out)["candles"]
    assert (rep["open_gap_spikes"]["min_jump"], rep["open_gap_spikes"]["count"]) == (0.5, 0)


def test_check_table_names_the_open_gap_spike(loaded: tuple[Path, str], capsys: pytest.CaptureFixture[str]) -> None:
    db, _ = loaded
    assert main(["--db", str(db), "data", "check", "--symbol", "ETH/USDT", "--timeframe", "1h"]) == 0
    out = capsys.readouterr().out
    assert _table_row(out, "ETH/USDT", "spot", "1h")[9] == "1"
    assert "open gap: |open/prev close - 1| > 20 % while |close/prev close - 1| < 10 %" in out
    assert "Open-gap spikes of ETH/USDT spot 1h (UTC)" in out
    assert _table_row(out, "2017-08-22 04:00", "280") == ["2017-08-22 04:00", "280", "144.21", "287", "-48.5%", "+2.5%"]


def test_second_import_through_the_console_script_changes_no_row_count(loaded: tuple[Path, str]) -> None:
    db, _ = loaded
    before = _run(["--db", str(db), "data", "list", "--json"])[1]
    files = sorted(str(p) for p in (shared_candles_dir() / "binance-spot").glob("*.json.gz"))
    radar = Path(sys.executable).parent / "radar"
    proc = subprocess.run([str(radar), "--db", str(db), "data", "import", *files],
                          capture_output=True, text=True, timeout=120, env=os.environ.copy())
    assert (proc.returncode, proc.stderr) == (0, "")
    lines = proc.stdout.splitlines()
    assert lines[-1] == "15 imported, 0 refused"
    assert len(lines) == 16 and all(" 0 new, 0 updated, " in ln for ln in lines[:-1])
    assert _run(["--db", str(db), "data", "list", "--json"])[1] == before


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["data", "check", "--spike-k", "0"], "radar: error: --spike-k must be > 0, got 0.0\n"),
        (["data", "check", "--spike-window", "1"], "radar: error: --spike-window must be >= 2, got 1\n"),
        (["data", "check", "--open-gap-close", "0.3"],
         ("radar: error: --open-gap-close must be > 0 and below --open-gap-jump (fractions, 0.2 = 20 %), "
          "got --open-gap-jump 0.2 --open-gap-close 0.3\n")),
        (["data", "check", "--open-gap-jump", "0", "--open-gap-close", "0"],
         ("radar: error: --open-gap-close must be > 0 and below --open-gap-jump (fractions, 0.2 = 20 %), "
          "got --open-gap-jump 0.0 --open-gap-close 0.0\n")),
        (["data", "check", "--timeframe", "1x"],
         "radar: error: --timeframe: unknown timeframe '1x': expected e.g. 1m, 5m, 1h, 4h, 1d, 1w\n"),
        (["data", "import", "a.json", "b.json", "--symbol", "BTC/USDT"],
         "radar: error: --symbol, --market and --timeframe apply to one PATH at a time\n"),
    ],
)
def test_usage_errors(db_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    assert main(["--db", str(db_path), *argv]) == 2
    assert capsys.readouterr().err == message


def test_check_with_nothing_matching(loaded: tuple[Path, str], capsys: pytest.CaptureFixture[str]) -> None:
    db, _ = loaded
    assert main(["--db", str(db), "data", "check", "--symbol", "NOPE/USDT"]) == 2
    assert capsys.readouterr().err == (
        f"radar: error: no stored series in {db} matches --symbol NOPE/USDT: see `radar data list`\n")


def test_list_on_an_empty_database(db_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--db", str(db_path), "data", "list"]) == 0
    assert capsys.readouterr().out == (
        f"no series stored in {db_path}: import some with `radar data import PATH...`\n")
    assert main(["--db", str(db_path), "data", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"candles": [], "funding": []}


def test_import_json_and_overrides(db_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "my-export.json"
    path.write_text(json.dumps([[H * i, 1.0, 2.0, 0.5, 1.5, 3.0] for i in (1, 2, 4)]))
    code = main(["--db", str(db_path), "data", "import", str(path), "--symbol", "ADA/USDT", "--timeframe", "1h",
                 "--json"])
    assert code == 0
    assert json.loads(capsys.readouterr().out) == {"imported": [{
        "path": str(path), "kind": "candles", "symbol": "ADA/USDT", "market": "spot", "timeframe": "1h",
        "first_ms": H, "last_ms": 4 * H, "rows_read": 3, "rows_new": 3, "rows_updated": 0, "rows_unchanged": 0,
    }], "refused": []}
    main(["--db", str(db_path), "data", "list", "--json"])
    assert json.loads(capsys.readouterr().out)["candles"] == [{
        "symbol": "ADA/USDT", "market": "spot", "timeframe": "1h", "first_ms": H, "last_ms": 4 * H,
        "rows": 3, "gaps": 1}]


def test_a_command_imports_only_its_own_module() -> None:
    """`radar data ...` must not pay for the console or the backtest engines (start-up time)."""
    import subprocess
    import sys

    code = ("import sys, core.cli.main as m; m.build_parser(['--db', 'x.db', 'health', '--json']); "
            "print(sorted(k for k in ('ccxt', 'textual', 'numba', 'core.cli.data_download') if k in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    from core.cli.main import COMMAND_MODULES, command_word

    assert command_word(["--db", "x.db", "--config-dir", "c", "-v", "backtest", "--json"]) == "backtest"
    assert command_word(["--help"]) is None
    assert set(COMMAND_MODULES) == {"config", "data", "backtest", "alerts", "optimize", "run", "health",
                                    "status", "ctl", "attach", "risk", "report"}
