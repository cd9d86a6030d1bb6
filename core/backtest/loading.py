"""Candles for a backtest: from the SQLite store or from one freqtrade-layout file."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from core.errors import DataError
from core.model.candles import Candles


def load_from_store(db: str | Path, symbol: str, market: str, timeframe: str,
                    start_ms: int | None = None, end_ms: int | None = None) -> Candles:
    """The stored candles of one series with `start_ms <= ts < end_ms` (ms UTC; None: unbounded).

    Raises:
        DataError: the database file does not exist, cannot be opened, or holds no such
            series; or no candle lies in the range.
    """
    from core.storage.candle_store import load_candles
    from core.storage.db import open_sync

    path = Path(db)
    if not path.is_file():
        raise DataError(f"no database at {path}: import candles with `radar data import PATH` "
                        "or give a file with --data")
    try:
        conn = open_sync(path)
    except (OSError, sqlite3.Error) as exc:
        raise DataError(f"cannot open database {path}: {exc}") from exc
    try:
        candles = load_candles(conn, symbol, market, timeframe, start_ms, end_ms)
    finally:
        conn.close()
    return _non_empty(candles, f"{symbol} {market} {timeframe} in {path}", start_ms, end_ms)


def load_from_file(path: str | Path, symbol: str | None = None, market: str | None = None,
                   timeframe: str | None = None, start_ms: int | None = None,
                   end_ms: int | None = None) -> Candles:
    """The candles of a freqtrade file (`BTC_USDT-1h.json.gz` → BTC/USDT spot 1h) within
    `start_ms <= ts < end_ms`; symbol/market/timeframe override what the name says.

    Every row is validated (`core.data.freqtrade.read_data_file`).

    Raises:
        DataError: unreadable or invalid file, a funding-rate file, or no candle in range.
    """
    from core.data.freqtrade import read_data_file

    spec, data = read_data_file(path, symbol, market, timeframe)
    if not isinstance(data, Candles):
        raise DataError(f"{path}: holds {spec.kind} rates, not candles")
    return _non_empty(data.between(start_ms, end_ms), str(path), start_ms, end_ms)


def _non_empty(candles: Candles, what: str, start_ms: int | None, end_ms: int | None) -> Candles:
    if len(candles) == 0:
        raise DataError(f"no candles of {what} in the range [{start_ms}, {end_ms}) ms UTC")
    return candles
