"""freqtrade file names and reading rows (core.data.freqtrade)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from core.data.freqtrade import FileSpec, FundingRates, parse_file_name, read_data_file, read_rows
from core.errors import DataError
from core.model.candles import Candles
from tests.support.shared_data import shared_file

H = 3_600_000
ROWS = [[i * H, 100.0, 110.0, 90.0, 105.0, 1.5] for i in range(1, 5)]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("BTC_USDT-1h.json.gz", FileSpec("candles", "BTC/USDT", "spot", "1h")),
        ("BTC_USDT-1h.json", FileSpec("candles", "BTC/USDT", "spot", "1h")),
        ("DOGE_USDT-4h.json.gz", FileSpec("candles", "DOGE/USDT", "spot", "4h")),
        ("1000SHIB_USDT-1d.json.gz", FileSpec("candles", "1000SHIB/USDT", "spot", "1d")),
        ("BTC_USDT_USDT-1m-futures.json.gz", FileSpec("candles", "BTC/USDT:USDT", "futures", "1m")),
        ("ETH_USDT_USDT-5m-futures.json", FileSpec("candles", "ETH/USDT:USDT", "futures", "5m")),
        ("BTC_USDT_USDT-8h-funding_rate.json.gz", FileSpec("funding", "BTC/USDT:USDT", "futures", "8h")),
    ],
)
def test_file_names_parse(name: str, expected: FileSpec) -> None:
    assert parse_file_name(Path("/some/dir") / name) == expected


def test_unparseable_name_is_refused_without_overrides() -> None:
    with pytest.raises(DataError) as exc:
        parse_file_name("btc-hourly.json.gz")
    assert str(exc.value) == (
        "btc-hourly.json.gz: cannot tell symbol and timeframe from the file name: expected "
        "BASE_QUOTE-<tf>.json(.gz), BASE_QUOTE_SETTLE-<tf>-futures.json(.gz) or "
        "BASE_QUOTE_SETTLE-<tf>-funding_rate.json(.gz); or give --symbol and --timeframe"
    )


def test_unparseable_name_with_overrides() -> None:
    assert parse_file_name("btc-hourly.json", symbol="BTC/USDT", timeframe="1h") == FileSpec(
        "candles", "BTC/USDT", "spot", "1h"
    )
    assert parse_file_name("x.json.gz", symbol="BTC/USDT:USDT", timeframe="5m") == FileSpec(
        "candles", "BTC/USDT:USDT", "futures", "5m"
    )


def test_overrides_replace_what_the_name_says() -> None:
    assert parse_file_name("BTC_USDT-1h.json.gz", symbol="ETH/USDT", timeframe="4h") == FileSpec(
        "candles", "ETH/USDT", "spot", "4h"
    )


@pytest.mark.parametrize(
    ("name", "kwargs", "message"),
    [
        ("BTC_USDT-1h.csv", {}, "BTC_USDT-1h.csv: expected a .json or .json.gz file (freqtrade layout)"),
        ("BTC_USDT_USDT-1h.json.gz", {},
         "BTC_USDT_USDT-1h.json.gz: file name pair 'BTC_USDT_USDT' does not fit a spot file: "
         "expected BASE_QUOTE; or give --symbol"),
        ("BTC_USDT-1m-futures.json.gz", {},
         "BTC_USDT-1m-futures.json.gz: file name pair 'BTC_USDT' does not fit a futures file: "
         "expected BASE_QUOTE_SETTLE; or give --symbol"),
        ("x.json", {"symbol": "BTCUSDT", "timeframe": "1h"},
         "x.json: symbol 'BTCUSDT' is not a ccxt unified symbol (BASE/QUOTE or BASE/QUOTE:SETTLE)"),
        ("x.json", {"symbol": "BTC/USDT", "timeframe": "1x"},
         "x.json: unknown timeframe '1x': expected e.g. 1m, 5m, 1h, 4h, 1d, 1w"),
        ("x.json", {"symbol": "BTC/USDT", "timeframe": "1h", "market": "margin"},
         "x.json: market 'margin' is not one of spot, futures"),
        ("BTC_USDT-1h.json", {"market": "futures"},
         "BTC_USDT-1h.json: symbol 'BTC/USDT' does not fit market 'futures': expected BASE/QUOTE:SETTLE"),
        ("BTC_USDT_USDT-8h-funding_rate.json", {"market": "spot"},
         "BTC_USDT_USDT-8h-funding_rate.json: funding rates belong to a futures market, not 'spot'"),
    ],
)
def test_bad_names_and_overrides(name: str, kwargs: dict, message: str) -> None:
    with pytest.raises(DataError) as exc:
        parse_file_name(name, **kwargs)
    assert str(exc.value) == message


def test_reads_plain_and_gzipped_json_alike(tmp_path: Path) -> None:
    plain = tmp_path / "BTC_USDT-1h.json"
    plain.write_text(json.dumps(ROWS))
    gz = tmp_path / "BTC_USDT-1h.json.gz"
    gz.write_bytes(gzip.compress(json.dumps(ROWS).encode()))
    a, b = read_rows(plain), read_rows(gz)
    assert a.dtype == np.float64 and a.shape == (4, 6)
    np.testing.assert_array_equal(a, np.array(ROWS, dtype=np.float64))
    np.testing.assert_array_equal(a, b)


def test_null_reads_as_nan(tmp_path: Path) -> None:
    p = tmp_path / "BTC_USDT-1h.json"
    p.write_text("[[3600000, null, 2, 1, 1.5, 0], [7200000, NaN, 2, 1, 1.5, Infinity]]")
    rows = read_rows(p)
    assert np.isnan(rows[0, 1]) and np.isnan(rows[1, 1]) and np.isinf(rows[1, 5])


def test_read_data_file_returns_candles(tmp_path: Path) -> None:
    p = tmp_path / "ETH_USDT_USDT-1h-futures.json"
    p.write_text(json.dumps(ROWS))
    spec, data = read_data_file(p)
    assert spec == FileSpec("candles", "ETH/USDT:USDT", "futures", "1h")
    assert isinstance(data, Candles)
    assert data.ts.dtype == np.int64 and data.ts.tolist() == [H, 2 * H, 3 * H, 4 * H]
    assert data.close.tolist() == [105.0] * 4 and data.volume.tolist() == [1.5] * 4


def test_read_data_file_returns_funding_rates(tmp_path: Path) -> None:
    p = tmp_path / "BTC_USDT_USDT-8h-funding_rate.json"
    p.write_text(json.dumps([[28_800_000, 0.0001, 0, 0, 0, 0], [57_600_003, -0.00005, 0, 0, 0, 0]]))
    spec, data = read_data_file(p)
    assert spec.kind == "funding"
    assert isinstance(data, FundingRates)
    assert data.symbol == "BTC/USDT:USDT" and data.interval == "8h"
    assert data.ts.tolist() == [28_800_000, 57_600_003]
    assert data.rate.tolist() == [0.0001, -0.00005]


def test_reads_real_btc_hourly_file() -> None:
    spec, data = read_data_file(shared_file("binance-spot/BTC_USDT-1h.json.gz"))
    assert spec == FileSpec("candles", "BTC/USDT", "spot", "1h")
    assert len(data) == 45_024
    assert int(data.ts[0]) == 1_502_942_400_000      # 2017-08-17 04:00 UTC
    assert int(data.ts[-1]) == 1_665_482_400_000     # 2022-10-11 10:00 UTC
