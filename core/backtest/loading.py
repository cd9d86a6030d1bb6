"""Candles for a backtest: from the SQLite store or from one freqtrade-layout file, optionally
resampled into a coarser timeframe (`resample=`, `core.data.aggregate.resample_candles`: UTC-
aligned buckets, only buckets with every base candle kept; the range then applies to the
resampled candles' open times)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from core.errors import DataError
from core.model.candles import Candles


def load_from_store(db: str | Path, symbol: str, market: str, timeframe: str,
                    start_ms: int | None = None, end_ms: int | None = None, *,
                    resample: str | None = None) -> Candles:
    """The stored candles of one series with `start_ms <= ts < end_ms` (ms UTC; None: unbounded);
    with `resample`, the stored `timeframe` candles resampled into that coarser timeframe first.

    When the store holds no `timeframe` candles of the symbol but a finer series whose timeframe
    divides it (e.g. 5m or 1m for 1h), the coarsest such series is resampled into `timeframe`
    (`finer_stored_timeframe`).

    Raises:
        DataError: the database file does not exist, cannot be opened, or holds no such
            series; or no candle lies in the range.
        UsageError: `resample` is finer than, or not a whole multiple of, `timeframe`.
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
        if resample is not None:
            from core.data.aggregate import check_resample

            if not check_resample(timeframe, resample):
                resample = None
        else:
            finer = finer_stored_timeframe(conn, symbol, market, timeframe)
            if finer is not None:
                timeframe, resample = finer, timeframe
        if resample is None:
            candles = load_candles(conn, symbol, market, timeframe, start_ms, end_ms)
        else:                   # whole buckets around the range, then the range on the buckets
            from core.data.timeframes import timeframe_ms

            span = timeframe_ms(resample)
            lo = None if start_ms is None else start_ms // span * span - span
            hi = None if end_ms is None else (end_ms // span + 2) * span
            candles = load_candles(conn, symbol, market, timeframe, lo, hi)
    finally:
        conn.close()
    if resample is not None:
        candles = _resampled(candles, resample, start_ms, end_ms)
    return _non_empty(candles, f"{symbol} {market} {resample or timeframe} in {path}", start_ms, end_ms)


def finer_stored_timeframe(conn: sqlite3.Connection, symbol: str, market: str, timeframe: str) -> str | None:
    """None when the store holds `timeframe` candles of (symbol, market) or no finer series that
    divides `timeframe`; else the coarsest stored timeframe that does (to resample from)."""
    from core.data.timeframes import timeframe_ms

    target = timeframe_ms(timeframe)
    stored = [r[0] for r in conn.execute(
        "SELECT s.timeframe FROM candle_series s WHERE s.symbol = ? AND s.market = ? "
        "AND EXISTS (SELECT 1 FROM candles c WHERE c.series_id = s.id)", (symbol, market))]
    if timeframe in stored:
        return None
    finer = []
    for tf in stored:
        try:
            ms = timeframe_ms(tf)
        except DataError:
            continue
        if ms < target and target % ms == 0:
            finer.append((ms, tf))
    return max(finer)[1] if finer else None


def load_from_file(path: str | Path, symbol: str | None = None, market: str | None = None,
                   timeframe: str | None = None, start_ms: int | None = None,
                   end_ms: int | None = None, *, resample: str | None = None) -> Candles:
    """The candles of a freqtrade file (`BTC_USDT-1h.json.gz` → BTC/USDT spot 1h) within
    `start_ms <= ts < end_ms`; symbol/market/timeframe override what the name says (the
    timeframe is the file's own). With `resample` (e.g. "1h" for a 5m file) the whole file
    is resampled into that timeframe first and the range applies to the resampled candles.

    Every row is validated (`core.data.freqtrade.read_data_file`).

    Raises:
        DataError: unreadable or invalid file, a funding-rate file, or no candle in range.
        UsageError: `resample` is finer than, or not a whole multiple of, the file's timeframe.
    """
    from core.data.freqtrade import read_data_file

    spec, data = read_data_file(path, symbol, market, timeframe)
    if not isinstance(data, Candles):
        raise DataError(f"{path}: holds {spec.kind} rates, not candles")
    if resample is not None:
        return _non_empty(_resampled(data, resample, start_ms, end_ms), f"{path} resampled to {resample}",
                          start_ms, end_ms)
    return _non_empty(data.between(start_ms, end_ms), str(path), start_ms, end_ms)


def _resampled(candles: Candles, target: str, start_ms: int | None, end_ms: int | None) -> Candles:
    from core.data.aggregate import resample_candles

    return resample_candles(candles, target).between(start_ms, end_ms)


def _non_empty(candles: Candles, what: str, start_ms: int | None, end_ms: int | None) -> Candles:
    if len(candles) == 0:
        raise DataError(f"no candles of {what} in the range [{start_ms}, {end_ms}) ms UTC")
    return candles
