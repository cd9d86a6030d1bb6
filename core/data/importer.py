"""Importing one freqtrade data file into the store, all or nothing.

The file is read and validated completely before the database is touched;
the rows are then written in one `BEGIN IMMEDIATE ... COMMIT` transaction that
is rolled back on any error, so a refused or failed file leaves nothing behind.
Re-importing a file is idempotent: its rows come back as unchanged.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from core.data.freqtrade import FileSpec, read_data_file
from core.errors import RadarError
from core.model.candles import Candles
from core.storage.candle_store import WriteCounts, write_candles, write_funding_rates


@dataclass(frozen=True)
class ImportResult:
    """The outcome of importing one file.

    Attributes:
        path: the file as given.
        spec: kind, symbol, market and timeframe the rows were stored under.
        first_ms, last_ms: first and last time in the file, ms UTC.
        counts: rows read (`given`), new, updated and unchanged.
    """

    path: str
    spec: FileSpec
    first_ms: int
    last_ms: int
    counts: WriteCounts

    def to_dict(self) -> dict:
        """JSON-ready form."""
        return {
            "path": self.path, "kind": self.spec.kind, "symbol": self.spec.symbol,
            "market": self.spec.market, "timeframe": self.spec.timeframe,
            "first_ms": self.first_ms, "last_ms": self.last_ms,
            "rows_read": self.counts.given, "rows_new": self.counts.new,
            "rows_updated": self.counts.updated, "rows_unchanged": self.counts.unchanged,
        }


def import_file(
    conn: sqlite3.Connection,
    path: str | Path,
    symbol: str | None = None,
    market: str | None = None,
    timeframe: str | None = None,
) -> ImportResult:
    """Read, validate and store one `.json`/`.json.gz` file in one transaction.

    `conn` is an autocommit connection from `core.storage.db.open_sync` with
    no transaction open. Overrides as in `core.data.freqtrade.parse_file_name`.

    Raises:
        DataError: the file is unreadable, malformed or has bad rows
            (`core.data.validation.BadRowsError`); nothing is written.
        RadarError: the database refused the write (e.g. locked); rolled back.
    """
    spec, data = read_data_file(path, symbol, market, timeframe)
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as exc:
        raise RadarError(f"{path}: database error, nothing imported: {exc}") from exc
    try:
        if isinstance(data, Candles):
            counts = write_candles(conn, data)
        else:
            counts = write_funding_rates(conn, data.symbol, data.ts, data.rate)
        conn.execute("COMMIT")
    except BaseException as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        if isinstance(exc, sqlite3.Error):
            raise RadarError(f"{path}: database error, nothing imported: {exc}") from exc
        raise
    return ImportResult(str(path), spec, int(data.ts[0]), int(data.ts[-1]), counts)
