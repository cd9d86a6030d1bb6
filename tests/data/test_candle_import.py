"""Importing files into the store: counts, idempotence, round trip, one transaction per file."""

from __future__ import annotations

import gzip
import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from core.data.importer import import_file
from core.errors import DataError, RadarError
from core.storage.candle_store import WriteCounts, list_funding, list_series, load_candles, load_funding_rates
from core.storage.db import open_sync
from tests.support.shared_data import shared_file

H = 3_600_000
T0 = 1_600_000_000_000 - 1_600_000_000_000 % H
ROWS = [[T0 + i * H, 100.0 + i, 110.0 + i, 90.0 + i, 105.0 + i, 2.0] for i in range(6)]


@pytest.fixture
def conn(db_path: Path):
    c = open_sync(db_path)
    yield c
    c.close()


def _write(path: Path, rows: list) -> Path:
    path.write_text(json.dumps(rows))
    return path


def test_real_file_imports_then_reimport_is_idempotent(conn: sqlite3.Connection) -> None:
    path = shared_file("binance-spot/BTC_USDT-1h.json.gz")
    first = import_file(conn, path)
    assert first.counts == WriteCounts(given=45_024, new=45_024, updated=0, unchanged=0)
    assert (first.first_ms, first.last_ms) == (1_502_942_400_000, 1_665_482_400_000)
    again = import_file(conn, path)
    assert again.counts == WriteCounts(given=45_024, new=0, updated=0, unchanged=45_024)
    [info] = list_series(conn)
    assert (info.symbol, info.market, info.timeframe, info.rows) == ("BTC/USDT", "spot", "1h", 45_024)

    stored = load_candles(conn, "BTC/USDT", "spot", "1h")
    raw = np.array(json.loads(gzip.decompress(path.read_bytes())), dtype=np.float64)
    np.testing.assert_array_equal(stored.ts, raw[:, 0].astype(np.int64))
    for i, col in enumerate(("open", "high", "low", "close", "volume"), start=1):
        np.testing.assert_array_equal(getattr(stored, col), raw[:, i])


def test_changed_and_extra_rows_are_counted(conn: sqlite3.Connection, tmp_path: Path) -> None:
    path = _write(tmp_path / "BTC_USDT-1h.json", ROWS)
    assert import_file(conn, path).counts == WriteCounts(6, 6, 0, 0)
    changed = [r[:] for r in ROWS]
    changed[2][4] = 106.5                                     # a corrected close
    changed.append([T0 + 6 * H, 1.0, 2.0, 0.5, 1.5, 0.0])      # one more candle
    _write(path, changed)
    assert import_file(conn, path).counts == WriteCounts(7, 1, 1, 5)
    stored = load_candles(conn, "BTC/USDT", "spot", "1h")
    assert stored.close.tolist()[2] == 106.5
    assert len(stored) == 7


def test_database_error_rolls_back_the_whole_file(conn: sqlite3.Connection, tmp_path: Path) -> None:
    conn.execute(
        f"CREATE TRIGGER boom BEFORE INSERT ON candles WHEN NEW.ts = {T0 + 4 * H} "
        "BEGIN SELECT RAISE(ABORT, 'boom'); END"
    )
    path = _write(tmp_path / "BTC_USDT-1h.json", ROWS)
    with pytest.raises(RadarError) as exc:
        import_file(conn, path)
    assert not isinstance(exc.value, DataError)
    assert str(exc.value) == f"{path}: database error, nothing imported: boom"
    assert not conn.in_transaction
    assert conn.execute("SELECT COUNT(*) FROM candles").fetchone()[0] == 0
    assert conn.execute("SELECT COUNT(*) FROM candle_series").fetchone()[0] == 0


def test_overrides_name_the_series(conn: sqlite3.Connection, tmp_path: Path) -> None:
    path = _write(tmp_path / "export.json", ROWS)
    res = import_file(conn, path, symbol="ETH/USDT:USDT", timeframe="1h")
    assert (res.spec.symbol, res.spec.market, res.spec.timeframe) == ("ETH/USDT:USDT", "futures", "1h")
    assert len(load_candles(conn, "ETH/USDT:USDT", "futures", "1h")) == 6


def test_real_funding_file_keeps_reported_times(conn: sqlite3.Connection) -> None:
    path = shared_file("binance-futures/ETH_USDT_USDT-8h-funding_rate.json.gz")
    res = import_file(conn, path)
    assert res.spec.kind == "funding"
    assert res.counts == WriteCounts(302, 302, 0, 0)
    assert import_file(conn, path).counts == WriteCounts(302, 0, 0, 302)
    ts, rate = load_funding_rates(conn, "ETH/USDT:USDT")
    assert ts.shape == (302,) and int(ts[-1]) == 1_749_945_600_005   # 5 ms off the grid, as reported
    assert (ts % (8 * H) != 0).any() and (rate < 0).any()
    assert list_funding(conn) == [("ETH/USDT:USDT", int(ts[0]), int(ts[-1]), 302)]
    assert list_series(conn) == []


def test_real_futures_files_import(conn: sqlite3.Connection) -> None:
    one = import_file(conn, shared_file("binance-futures/BTC_USDT_USDT-1m-futures.json.gz"))
    five = import_file(conn, shared_file("binance-futures/BTC_USDT_USDT-5m-futures.json.gz"))
    assert (one.spec.symbol, one.spec.market, one.spec.timeframe, one.counts.new) == (
        "BTC/USDT:USDT", "futures", "1m", 43_199)
    assert (five.spec.timeframe, five.counts.new) == ("5m", 10_906)
