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
    (
        2,
        "alerts",
        """
        CREATE TABLE alerts (
            id                INTEGER PRIMARY KEY,
            dedup_key         TEXT NOT NULL,     -- one unresolved alert per key
            severity          TEXT NOT NULL CHECK (severity IN ('info', 'warning', 'error', 'critical')),
            source            TEXT NOT NULL,     -- what raised it, e.g. feed, risk, reconcile
            title             TEXT NOT NULL,
            detail            TEXT NOT NULL,
            first_seen_ms     INTEGER NOT NULL,  -- ms UTC
            last_seen_ms      INTEGER NOT NULL,  -- ms UTC
            count             INTEGER NOT NULL CHECK (count >= 1),
            state             TEXT NOT NULL CHECK (state IN ('active', 'acknowledged', 'snoozed', 'resolved')),
            snoozed_until_ms  INTEGER,           -- ms UTC, set exactly when state = snoozed
            changed_by        TEXT NOT NULL,     -- actor of the last state change
            changed_ms        INTEGER NOT NULL,  -- ms UTC of the last state change
            last_notified_ms  INTEGER,           -- ms UTC of the last notification sent
            notified_count    INTEGER NOT NULL DEFAULT 0,
            last_escalated_ms INTEGER,           -- ms UTC of the last escalation re-notification
            rev               INTEGER NOT NULL,  -- alert_rev.rev of the last write to this row
            CHECK ((state = 'snoozed') = (snoozed_until_ms IS NOT NULL))
        );
        CREATE UNIQUE INDEX alerts_open_key ON alerts (dedup_key) WHERE state <> 'resolved';
        CREATE INDEX alerts_rev ON alerts (rev);
        CREATE INDEX alerts_key_notified ON alerts (dedup_key, last_notified_ms);
        CREATE TABLE alert_rev (
            id  INTEGER PRIMARY KEY CHECK (id = 1),
            rev INTEGER NOT NULL                 -- bumped by every write to alerts
        );
        INSERT INTO alert_rev (id, rev) VALUES (1, 0);
        """,
    ),
]
