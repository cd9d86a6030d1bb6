"""HTML performance reports (issue 14): `radar backtest ... --report-html` and `radar report --html`
write a page that parses, carries the tearsheet's equity / drawdown figures, our curves and our
monthly table, whose values equal an independent pandas computation on the same equity."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.backtest import loading
from core.backtest.event_engine import run_event_backtest
from core.cli.backtest_cmd import _config_defaults
from core.cli.main import main
from core.paths import DEFAULT_CONFIG_DIR
from tests.engine.test_engine_replay import _engine, _slice
from tests.performance.html_support import monthly_cells, parse_report
from tests.support.shared_data import shared_file

BTC_4H = "binance-spot/BTC_USDT-4h.json.gz"


def pandas_monthly_pct(ts, equity, start: float) -> dict[tuple[int, int], float]:
    """Month returns (percent) from pandas: month-end equity over the previous month-end (the
    first month over `start`), and the Year column compounded from them."""
    s = pd.Series(np.asarray(equity, dtype=float), index=pd.to_datetime(np.asarray(ts), unit="ms"))
    end = s.resample("ME").last().dropna()
    ret = end / end.shift(1, fill_value=start) - 1.0
    out = {(d.year, d.month): 100 * r for d, r in ret.items()}
    for year, grp in ret.groupby(ret.index.year):
        out[(int(year), 13)] = 100 * (float(np.prod(1 + grp.to_numpy())) - 1)
    return out


def assert_report(path: Path, want: dict[tuple[int, int], float]) -> None:
    assert path.is_file()
    p = parse_report(path)
    # quantstats' tearsheet: cumulative returns and underwater (drawdown) figures, inline SVG
    assert p.figures.get("log_returns", 0) >= 1 and p.figures.get("dd_plot", 0) >= 1, p.figures
    assert p.figures.get("left", 0) >= 1, p.figures                # the cumulative returns (no id of its own)
    # our per-candle equity / drawdown / rolling Sharpe figure and tables
    assert p.figures.get("radar-curves") == 1
    for section in ("radar-summary", "radar-cycles", "radar-winloss"):
        assert section in p.tables, section
    got = monthly_cells(p)
    assert got.keys() == want.keys()
    for k in want:
        assert got[k] == pytest.approx(want[k], abs=0.005 + 1e-9), k     # printed with 2 decimals


def test_backtest_report_html(tmp_path: Path, capsys) -> None:
    data = shared_file(BTC_4H)
    out = tmp_path / "reports" / "bt.html"
    rc = main(["backtest", "--strategy", "envelope_dca", "--data", str(data), "--from", "2021-01-01",
               "--to", "2021-09-01", "--json", "--report-html", str(out)])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    assert cap.out.startswith("{") and "HTML report written" in cap.err      # stdout stays the JSON

    params, account = _config_defaults(DEFAULT_CONFIG_DIR, "envelope_dca", "BTC/USDT")
    candles = loading.load_from_file(data, None, None, None, 1609459200000, 1630454400000)
    result = run_event_backtest(candles, "envelope_dca", params, account)
    assert f"{result.final_equity}" in cap.out                                  # the same run
    assert_report(out, pandas_monthly_pct(result.ts, result.equity, account.initial_capital))


async def test_radar_report_html_of_a_replay_database(tmp_path: Path, capsys) -> None:
    db = tmp_path / "replay.db"
    eng = _engine(db, _slice(1500))
    await eng.run()
    assert eng.finished
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT ts, equity FROM trading_equity ORDER BY ts").fetchall()
        n_cycles = conn.execute("SELECT COUNT(*) FROM trading_cycles").fetchone()[0]
    ts, eq = zip(*rows)

    out = tmp_path / "book.html"
    assert main(["report", "--html", str(out), "--db", str(db), "--window", "7"]) == 0
    assert "written to" in capsys.readouterr().out
    assert_report(out, pandas_monthly_pct(ts, eq, eq[0]))
    cycles = parse_report(out).tables["radar-cycles"][0]
    assert cycles[1][0] == "BTC/USDT" and int(cycles[1][1]) == n_cycles


def test_radar_report_errors_are_clear(tmp_path: Path, capsys) -> None:
    assert main(["report", "--html", str(tmp_path / "x.html"), "--db", str(tmp_path / "none.db")]) == 2
    assert "no such database" in capsys.readouterr().err
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    assert main(["--db", str(empty), "report", "--html", str(tmp_path / "x.html")]) == 2
    assert "no trading runner" in capsys.readouterr().err
    assert main(["report", "--html", str(tmp_path / "x.html"), "--db", str(empty), "--window", "1"]) == 2
    assert "--window" in capsys.readouterr().err
    assert not (tmp_path / "x.html").exists()
