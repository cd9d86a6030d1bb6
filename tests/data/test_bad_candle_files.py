"""Bad files are refused whole, with one exact message, and nothing is written."""

from __future__ import annotations

import copy
import gzip
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from core.cli.main import main
from core.data.importer import import_file
from core.data.validation import BadRowsError, RowProblem
from core.errors import DataError
from core.storage.db import open_sync

H = 3_600_000
T0 = 1_600_000_000_000 - 1_600_000_000_000 % H  # on the 1h grid
GOOD = [[T0 + i * H, 100.0, 110.0, 90.0, 105.0, 2.0] for i in range(10)]


def _write(path: Path, rows: Any, raw: str | None = None) -> Path:
    """Write `rows` as freqtrade JSON (gzipped when the name ends in .gz); `raw` text wins."""
    text = raw if raw is not None else json.dumps(rows)
    if path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text)
    return path


def _stored(conn: sqlite3.Connection) -> tuple[int, int, int]:
    """(series, candles, funding rates) rows in the database."""
    return tuple(conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                 for t in ("candle_series", "candles", "funding_rates"))  # type: ignore[return-value]


@pytest.fixture
def conn(db_path: Path):
    c = open_sync(db_path)
    yield c
    c.close()


def _refused(conn: sqlite3.Connection, path: Path) -> str:
    """Import `path`, expect a DataError, check nothing was written; returns the message."""
    with pytest.raises(DataError) as exc:
        import_file(conn, path)
    assert _stored(conn) == (0, 0, 0)
    assert not conn.in_transaction
    return str(exc.value)


def _with(changes: dict[int, dict[int, Any]]) -> list[list[Any]]:
    """GOOD with `{row: {column: value}}` applied."""
    rows = copy.deepcopy(GOOD)
    for r, cols in changes.items():
        for c, v in cols.items():
            rows[r][c] = v
    return rows


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        (_with({3: {1: float("nan")}}), "1 bad row: 1 NaN/null/inf value (first at row 3)"),
        (_with({2: {5: None}, 6: {4: None}}), "2 bad rows: 2 NaN/null/inf value (first at row 2)"),
        (_with({4: {2: float("inf")}}), "1 bad row: 1 NaN/null/inf value (first at row 4)"),
        (_with({5: {0: None}}), "1 bad row: 1 NaN/null/inf value (first at row 5)"),
        (_with({1: {3: 0.0}}), "1 bad row: 1 non-positive price (first at row 1)"),
        (_with({7: {1: -5.0, 3: -10.0}}), "1 bad row: 1 non-positive price (first at row 7)"),
        (_with({2: {5: -1.0}}), "1 bad row: 1 negative volume (first at row 2)"),
        (_with({4: {2: 80.0}, 8: {2: 85.0}}), "2 bad rows: 2 high < low (first at row 4)"),
        (_with({6: {1: 111.0}}), "1 bad row: 1 open/close outside [low, high] (first at row 6)"),
        (_with({3: {4: 89.0}}), "1 bad row: 1 open/close outside [low, high] (first at row 3)"),
        (_with({5: {0: T0 + 4 * H}}), "1 bad row: 1 duplicate timestamp (first at row 5)"),
        (_with({5: {0: T0 + 6 * H}, 6: {0: T0 + 5 * H}}), "1 bad row: 1 out-of-order timestamp (first at row 6)"),
        (_with({7: {0: T0 + 7 * H + 1}}), "1 bad row: 1 off-grid timestamp (first at row 7)"),
        (_with({2: {0: T0 + 2 * H + 0.5}}), "1 bad row: 1 non-integer or out-of-range timestamp (first at row 2)"),
        (_with({0: {0: -H}}), "1 bad row: 1 non-integer or out-of-range timestamp (first at row 0)"),
    ],
)
def test_each_kind_of_bad_row(conn: sqlite3.Connection, tmp_path: Path, rows: list, expected: str) -> None:
    path = _write(tmp_path / "BTC_USDT-1h.json.gz", rows)
    assert _refused(conn, path) == f"{path}: refused, {expected}"


def test_several_kinds_are_counted_and_ordered_by_first_row(conn: sqlite3.Connection, tmp_path: Path) -> None:
    rows = _with({
        9: {3: 0.0},                          # non-positive price, row 9
        4: {2: 80.0}, 8: {2: 85.0},           # high < low, rows 4 and 8
        6: {1: 0.0, 0: T0 + 6 * H + 7},       # row 6: non-positive price and off-grid (one bad row)
        2: {0: T0 + 2 * H + 3},               # off-grid, row 2
    })
    path = _write(tmp_path / "BTC_USDT-1h.json", rows)
    with pytest.raises(BadRowsError) as exc:
        import_file(conn, path)
    assert str(exc.value) == (
        f"{path}: refused, 5 bad rows: 2 off-grid timestamp (first at row 2); "
        "2 high < low (first at row 4); 2 non-positive price (first at row 6)"
    )
    assert exc.value.bad_rows == 5
    assert exc.value.problems[0] == RowProblem("off-grid timestamp", 2, 2)
    assert exc.value.exit_code == 2
    assert _stored(conn) == (0, 0, 0)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("[[1, 2, 3", "invalid JSON at line 1 column 10: Expecting ',' delimiter"),
        ("", "invalid JSON at line 1 column 1: Expecting value"),
        ('{"rows": []}', "expected a JSON list of rows [open_time_ms, open, high, low, close, volume], "
                         "got an object"),
        ("[]", "no rows"),
        (json.dumps(GOOD[:3] + [GOOD[3][:5]] + GOOD[4:]),
         "row 3: expected 6 values [open_time_ms, open, high, low, close, volume], got 5"),
        (json.dumps(GOOD[:1] + [GOOD[1] + [0]] + GOOD[2:]),
         "row 1: expected 6 values [open_time_ms, open, high, low, close, volume], got 7"),
        (json.dumps(GOOD[:2] + [{"ts": 1}]), "row 2: expected a list of 6 values, got an object"),
        (json.dumps(_with({4: {3: "90.0"}})), 'row 4: column low: expected a number, got a string "90.0"'),
        (json.dumps(_with({1: {5: True}})), "row 1: column volume: expected a number, got a boolean true"),
    ],
)
def test_malformed_json_files(conn: sqlite3.Connection, tmp_path: Path, raw: str, expected: str) -> None:
    path = _write(tmp_path / "BTC_USDT-1h.json", None, raw=raw)
    assert _refused(conn, path) == f"{path}: {expected}"


def test_truncated_gzip(conn: sqlite3.Connection, tmp_path: Path) -> None:
    whole = gzip.compress(json.dumps(GOOD).encode())
    path = tmp_path / "BTC_USDT-1h.json.gz"
    path.write_bytes(whole[: len(whole) // 2])
    assert _refused(conn, path) == (
        f"{path}: truncated gzip stream (the file ends before the end-of-stream marker)"
    )


def test_not_gzip_at_all(conn: sqlite3.Connection, tmp_path: Path) -> None:
    path = tmp_path / "BTC_USDT-1h.json.gz"
    path.write_text(json.dumps(GOOD))
    assert _refused(conn, path) == f"{path}: corrupt gzip stream (Not a gzipped file (b'[['))"


def test_missing_file(conn: sqlite3.Connection, tmp_path: Path) -> None:
    path = tmp_path / "BTC_USDT-1h.json.gz"
    assert _refused(conn, path) == f"{path}: no such file"


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({3: {1: None}}, "1 bad row: 1 NaN/null/inf value (first at row 3)"),
        ({2: {0: 57_600_000}}, "1 bad row: 1 duplicate timestamp (first at row 2)"),
        ({2: {0: 1_000}}, "1 bad row: 1 out-of-order timestamp (first at row 2)"),
    ],
)
def test_bad_funding_rows(conn: sqlite3.Connection, tmp_path: Path, changes: dict, expected: str) -> None:
    rows = [[28_800_000 * (i + 1), 0.0001, 0, 0, 0, 0] for i in range(5)]
    for r, cols in changes.items():
        for c, v in cols.items():
            rows[r][c] = v
    path = _write(tmp_path / "BTC_USDT_USDT-8h-funding_rate.json.gz", rows)
    assert _refused(conn, path) == f"{path}: refused, {expected}"


def test_funding_off_grid_times_and_negative_rates_are_valid(conn: sqlite3.Connection, tmp_path: Path) -> None:
    rows = [[28_800_000, -0.0002, 0, 0, 0, 0], [57_600_003, 0.0001, 0, 0, 0, 0], [86_399_998, -0.00001, 0, 0, 0, 0]]
    path = _write(tmp_path / "BTC_USDT_USDT-8h-funding_rate.json.gz", rows)
    res = import_file(conn, path)
    assert res.counts.new == 3
    assert _stored(conn) == (0, 0, 3)


def test_cli_reports_a_bad_file_and_imports_the_others(
    db_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = _write(tmp_path / "ETH_USDT-1h.json", GOOD)
    bad = _write(tmp_path / "BTC_USDT-1h.json", _with({4: {2: 80.0}}))
    also_good = _write(tmp_path / "SOL_USDT-1h.json", GOOD)
    code = main(["--db", str(db_path), "data", "import", str(good), str(bad), str(also_good)])
    out, err = capsys.readouterr()
    assert code == 2
    assert err == f"radar: error: {bad}: refused, 1 bad row: 1 high < low (first at row 4)\n"
    assert out.splitlines()[-1] == "2 imported, 1 refused"
    conn = open_sync(db_path)
    try:
        stored = conn.execute("SELECT symbol FROM candle_series ORDER BY symbol").fetchall()
        assert stored == [("ETH/USDT",), ("SOL/USDT",)]
        assert _stored(conn) == (2, 20, 0)
    finally:
        conn.close()
