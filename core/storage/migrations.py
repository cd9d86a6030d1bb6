"""Versioned schema migrations, applied in order at start.

Append new migrations at the end with the next version number; never edit one
that has shipped. Each entry is `(version, description, sql_script)`.
"""

from __future__ import annotations

MIGRATIONS: list[tuple[int, str, str]] = [
    (
        1,
        "candle series and candles, funding rates",
        """
        CREATE TABLE candle_series (
            id        INTEGER PRIMARY KEY,
            symbol    TEXT NOT NULL,          -- ccxt unified symbol, e.g. BTC/USDT or BTC/USDT:USDT
            market    TEXT NOT NULL,          -- spot | futures
            timeframe TEXT NOT NULL,          -- e.g. 1h
            UNIQUE (symbol, market, timeframe)
        );
        CREATE TABLE candles (
            series_id INTEGER NOT NULL REFERENCES candle_series(id),
            ts        INTEGER NOT NULL,       -- open time, ms UTC
            open      REAL NOT NULL,
            high      REAL NOT NULL,
            low       REAL NOT NULL,
            close     REAL NOT NULL,
            volume    REAL NOT NULL,
            PRIMARY KEY (series_id, ts)
        ) WITHOUT ROWID;
        CREATE TABLE funding_rates (
            symbol TEXT NOT NULL,             -- ccxt unified symbol of the perpetual
            ts     INTEGER NOT NULL,          -- funding time, ms UTC, as the exchange reported it
            rate   REAL NOT NULL,             -- fraction per funding interval (0.0001 = 0.01 %)
            PRIMARY KEY (symbol, ts)
        ) WITHOUT ROWID;
        """,
    ),
]
