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
    (
        3,
        "optimization jobs, walk-forward results and per-combo figures",
        """
        CREATE TABLE optimization_jobs (
            id          INTEGER PRIMARY KEY,
            kind        TEXT NOT NULL,               -- e.g. optimize
            params      TEXT NOT NULL,               -- JSON of the job's arguments
            state       TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed', 'cancelled')),
            error       TEXT,                        -- why it failed, e.g. interrupted
            progress    REAL NOT NULL DEFAULT 0,     -- percent 0-100
            phase       TEXT,                        -- last progress phase, e.g. window
            result      TEXT,                        -- JSON summary written when done
            owner       TEXT,                        -- host:pid of the process that runs / queued it
            created_ms  INTEGER NOT NULL,            -- ms UTC
            started_ms  INTEGER,                     -- ms UTC
            finished_ms INTEGER                      -- ms UTC
        );
        CREATE INDEX optimization_jobs_state ON optimization_jobs (state);
        CREATE TABLE optimization_results (
            id              INTEGER PRIMARY KEY,
            job_id          INTEGER REFERENCES optimization_jobs(id),
            strategy        TEXT NOT NULL,
            symbol          TEXT NOT NULL,           -- ccxt unified symbol
            market          TEXT NOT NULL,           -- spot | futures
            timeframe       TEXT NOT NULL,
            complete        INTEGER NOT NULL CHECK (complete IN (0, 1)),  -- 0: cancelled, partial windows
            is_latest       INTEGER NOT NULL DEFAULT 0 CHECK (is_latest IN (0, 1)),
            grade           TEXT NOT NULL,           -- A-F
            score           REAL NOT NULL,           -- 0-100
            oos_sharpe      REAL NOT NULL,           -- annualised (sqrt 365)
            consistency     REAL NOT NULL,           -- fraction of OOS windows with return > 0
            oos_is_ratio    REAL NOT NULL,
            dsr             REAL NOT NULL,           -- probability
            param_stability REAL NOT NULL,           -- 0-1
            best_params     TEXT NOT NULL,           -- JSON
            pbo             REAL,                    -- probability; NULL with < 2 windows
            psr             REAL,
            p_value         REAL,                    -- bootstrap p-value of OOS cycle returns
            n_windows       INTEGER NOT NULL,
            n_combos        INTEGER NOT NULL,        -- combos actually tested (DSR's N)
            is_days         INTEGER NOT NULL,
            oos_days        INTEGER NOT NULL,
            step_days       INTEGER NOT NULL,
            git_rev         TEXT,                    -- commit of the code that produced it
            data_first_ts   INTEGER,                 -- open time (ms UTC) of the first candle used
            data_last_ts    INTEGER,                 -- open time (ms UTC) of the last candle used
            created_ms      INTEGER NOT NULL,        -- ms UTC
            detail          TEXT NOT NULL,           -- JSON: windows, sub-scores, caps, stability rows
            CHECK (is_latest = 0 OR complete = 1)
        );
        CREATE UNIQUE INDEX optimization_results_latest
            ON optimization_results (strategy, symbol, timeframe) WHERE is_latest = 1;
        CREATE INDEX optimization_results_key ON optimization_results (strategy, symbol, timeframe, created_ms);
        CREATE TABLE wfo_combo_results (
            result_id      INTEGER NOT NULL REFERENCES optimization_results(id) ON DELETE CASCADE,
            combo          INTEGER NOT NULL,         -- position in the result's combo list
            params         TEXT NOT NULL,            -- JSON
            is_sharpe      REAL NOT NULL,            -- mean over windows, annualised
            is_return      REAL NOT NULL,            -- mean over windows, fraction
            oos_sharpe     REAL NOT NULL,            -- all OOS windows together, annualised
            oos_return     REAL NOT NULL,            -- mean over windows, fraction
            oos_consistency REAL NOT NULL,           -- fraction of OOS windows with return > 0
            oos_cycles     INTEGER NOT NULL,
            times_selected INTEGER NOT NULL,         -- windows where it was the IS best
            PRIMARY KEY (result_id, combo)
        ) WITHOUT ROWID;
        """,
    ),
    (
        4,
        "health: latest status per subsystem, engine heartbeat, database probe",
        """
        CREATE TABLE health (
            subsystem  TEXT PRIMARY KEY,        -- e.g. feed:BTC/USDT:USDT, executor, gateway, database, loop
            status     TEXT NOT NULL CHECK (status IN ('ok', 'degraded', 'down')),
            reason     TEXT NOT NULL,           -- why, for the operator ('' when ok)
            since_ms   INTEGER NOT NULL,        -- ms UTC the subsystem entered this status
            checked_ms INTEGER NOT NULL,        -- ms UTC of the latest check
            metrics    TEXT NOT NULL            -- JSON object of the check's figures, e.g. {"age_s": 3.2}
        ) WITHOUT ROWID;
        CREATE TABLE heartbeat (
            id          INTEGER PRIMARY KEY CHECK (id = 1),  -- one engine per database
            ts_ms       INTEGER NOT NULL,       -- ms UTC of the latest beat
            pid         INTEGER NOT NULL,       -- engine process id
            host        TEXT NOT NULL,          -- hostname of the engine process
            mode        TEXT NOT NULL,          -- e.g. ui, headless, paper
            started_ms  INTEGER NOT NULL,       -- ms UTC the engine started
            interval_ms INTEGER NOT NULL,       -- beat period, ms
            stopped_ms  INTEGER,                -- ms UTC of a clean stop; NULL while running
            statuses    TEXT NOT NULL           -- JSON object {subsystem: ok|degraded|down}
        );
        CREATE TABLE health_probe (
            id    INTEGER PRIMARY KEY CHECK (id = 1),
            ts_ms INTEGER NOT NULL,             -- ms UTC of the latest database probe write
            token INTEGER NOT NULL              -- value written and read back by the probe
        );
        """,
    ),
    (
        5,
        "trading state: runners, intents, orders, fills, positions, cycles, equity, kill switch",
        """
        CREATE TABLE trading_runners (
            id          INTEGER PRIMARY KEY,
            strategy    TEXT NOT NULL,               -- registry name, e.g. envelope_dca
            symbol      TEXT NOT NULL,               -- ccxt unified symbol
            timeframe   TEXT NOT NULL,
            mode        TEXT NOT NULL,               -- paper | live
            params      TEXT NOT NULL,               -- JSON of the normalised params
            created_ms  INTEGER NOT NULL,            -- ms UTC (wall clock)
            UNIQUE (strategy, symbol, timeframe, mode)
        );
        CREATE TABLE trading_state (
            runner_id   INTEGER PRIMARY KEY REFERENCES trading_runners(id),
            cursor_ts   INTEGER,                     -- open time (ms UTC) of the last processed candle
            n_candles   INTEGER NOT NULL,            -- candles processed so far
            last_close  REAL,                        -- close of the last processed candle
            finished    INTEGER NOT NULL DEFAULT 0,  -- 1: end-of-data exit done (replay)
            grid        TEXT NOT NULL,               -- JSON: account, position, levels, stop, quote
            updated_ms  INTEGER NOT NULL             -- ms UTC (wall clock)
        );
        CREATE TABLE trading_intents (
            id          INTEGER PRIMARY KEY,
            runner_id   INTEGER NOT NULL REFERENCES trading_runners(id),
            ts          INTEGER NOT NULL,            -- candle open time (ms UTC)
            action      TEXT NOT NULL,               -- place | cancel | flatten
            client_id   TEXT NOT NULL,
            price       REAL,
            status      TEXT NOT NULL                -- pending | done | failed
        );
        CREATE TABLE trading_orders (
            client_id   TEXT PRIMARY KEY,            -- deterministic, see core.executor.client_ids
            runner_id   INTEGER NOT NULL REFERENCES trading_runners(id),
            cycle       INTEGER NOT NULL,            -- 0-based cycle number of the runner
            level       INTEGER NOT NULL,            -- level index for entries, -1 for exits
            purpose     TEXT NOT NULL,               -- entry | stop | take_profit | exit
            side        TEXT NOT NULL,               -- buy | sell
            price       REAL,                        -- current limit/trigger price (quote currency)
            status      TEXT NOT NULL,               -- pending | open | filled | cancelled
            created_ts  INTEGER NOT NULL,            -- candle open time (ms UTC) when placed
            updated_ts  INTEGER NOT NULL
        );
        CREATE INDEX trading_orders_runner ON trading_orders (runner_id, status);
        CREATE TABLE trading_fills (
            id          INTEGER PRIMARY KEY,
            runner_id   INTEGER NOT NULL REFERENCES trading_runners(id),
            client_id   TEXT NOT NULL UNIQUE,        -- orders fill whole, once
            ts          INTEGER NOT NULL,            -- candle open time (ms UTC)
            kind        TEXT NOT NULL,               -- entry | exit
            reason      TEXT,                        -- exits: tp | sl | end | kill
            level       INTEGER NOT NULL,
            side        TEXT NOT NULL,
            price       REAL NOT NULL,
            qty         REAL NOT NULL,
            fee         REAL NOT NULL                -- USDT
        );
        CREATE TABLE trading_positions (
            id          INTEGER PRIMARY KEY,         -- history: one row per change
            runner_id   INTEGER NOT NULL REFERENCES trading_runners(id),
            ts          INTEGER NOT NULL,            -- candle open time (ms UTC)
            qty         REAL NOT NULL,               -- base units, 0 when flat
            avg_entry   REAL,
            stop        REAL,                        -- the stop resting with the position
            stop_client_id TEXT,
            levels_filled INTEGER NOT NULL
        );
        CREATE INDEX trading_positions_runner ON trading_positions (runner_id, id);
        CREATE TABLE trading_cycles (
            runner_id   INTEGER NOT NULL REFERENCES trading_runners(id),
            idx         INTEGER NOT NULL,
            open_time   INTEGER NOT NULL,
            close_time  INTEGER NOT NULL,
            side        TEXT NOT NULL,
            levels_filled INTEGER NOT NULL,
            avg_entry   REAL NOT NULL,
            exit_price  REAL NOT NULL,
            exit_reason TEXT NOT NULL,
            qty         REAL NOT NULL,
            pnl         REAL NOT NULL,
            PRIMARY KEY (runner_id, idx)
        ) WITHOUT ROWID;
        CREATE TABLE trading_equity (
            runner_id   INTEGER NOT NULL REFERENCES trading_runners(id),
            ts          INTEGER NOT NULL,            -- candle open time (ms UTC)
            equity      REAL NOT NULL,               -- USDT at the candle's close
            PRIMARY KEY (runner_id, ts)
        ) WITHOUT ROWID;
        CREATE TABLE kill_switch (
            id          INTEGER PRIMARY KEY CHECK (id = 1),
            active      INTEGER NOT NULL CHECK (active IN (0, 1)),
            flatten     INTEGER NOT NULL CHECK (flatten IN (0, 1)),
            actor       TEXT NOT NULL,
            reason      TEXT NOT NULL,
            changed_ms  INTEGER NOT NULL             -- ms UTC (wall clock)
        );
        """,
    ),
    (
        6,
        "risk: persisted equity peak, daily-loss baseline and trip state; rejection counters",
        """
        CREATE TABLE risk_state (
            id               INTEGER PRIMARY KEY CHECK (id = 1),  -- one account per database
            peak_equity      REAL NOT NULL,          -- USDT, highest equity seen (max_drawdown reference)
            peak_ms          INTEGER NOT NULL,       -- ms UTC of the peak
            day_start_ms     INTEGER NOT NULL,       -- 00:00 UTC of the baseline's day, ms UTC
            day_start_equity REAL NOT NULL,          -- USDT, first equity seen that day (daily_loss_limit reference)
            tripped          INTEGER NOT NULL CHECK (tripped IN (0, 1)),  -- a loss limit is breached now
            trip_code        TEXT,                   -- max_drawdown | daily_loss_limit of the latest trip
            trip_reason      TEXT,                   -- sentence of the latest trip
            trip_ms          INTEGER,                -- ms UTC the latest trip started
            updated_ms       INTEGER NOT NULL        -- ms UTC of the last write
        );
        CREATE TABLE risk_rejections (
            code        TEXT PRIMARY KEY,            -- core.risk.rejection.RejectCode value
            count       INTEGER NOT NULL CHECK (count >= 1),
            first_ms    INTEGER NOT NULL,            -- ms UTC of the first rejection
            last_ms     INTEGER NOT NULL,            -- ms UTC of the latest rejection
            last_symbol TEXT NOT NULL,               -- ccxt unified symbol of the latest rejection
            last_reason TEXT NOT NULL                -- sentence of the latest rejection
        ) WITHOUT ROWID;
        """,
    ),
    (
        7,
        "live trading: partial fills (fill seq per order), ordered qty, reconciliation log",
        """
        CREATE TABLE trading_fills_v7 (
            id          INTEGER PRIMARY KEY,
            runner_id   INTEGER NOT NULL REFERENCES trading_runners(id),
            client_id   TEXT NOT NULL,
            seq         INTEGER NOT NULL DEFAULT 0,  -- 0 = first (or whole) fill of the order, 1.. partial fills after it
            ts          INTEGER NOT NULL,            -- candle open time (paper) / report time (live), ms UTC
            kind        TEXT NOT NULL,               -- entry | exit
            reason      TEXT,                        -- exits: tp | sl | end | kill | unprotected
            level       INTEGER NOT NULL,
            side        TEXT NOT NULL,
            price       REAL NOT NULL,
            qty         REAL NOT NULL,
            fee         REAL NOT NULL,               -- USDT
            UNIQUE (client_id, seq)
        );
        INSERT INTO trading_fills_v7 (id, runner_id, client_id, seq, ts, kind, reason, level, side, price, qty, fee)
            SELECT id, runner_id, client_id, 0, ts, kind, reason, level, side, price, qty, fee FROM trading_fills;
        DROP TABLE trading_fills;
        ALTER TABLE trading_fills_v7 RENAME TO trading_fills;
        ALTER TABLE trading_orders ADD COLUMN qty REAL;   -- ordered base units (live), NULL on paper
        CREATE TABLE trading_reconcile (
            id          INTEGER PRIMARY KEY,
            runner_id   INTEGER NOT NULL REFERENCES trading_runners(id),
            ts_ms       INTEGER NOT NULL,            -- wall clock, ms UTC
            action      TEXT NOT NULL,               -- adopted | cancelled_orphan | filled_while_down | ...
            client_id   TEXT,                        -- the order concerned, NULL for positions
            detail      TEXT NOT NULL
        );
        """,
    ),
    (
        8,
        "database epoch in client order ids; kill switch per symbol",
        """
        CREATE TABLE radar_meta (
            key         TEXT PRIMARY KEY,
            value       TEXT NOT NULL
        ) WITHOUT ROWID;
        -- 4 hex digits carried by every client order id of this database (core.executor.client_ids):
        -- two databases of one installation never send the same id
        INSERT INTO radar_meta (key, value) VALUES ('epoch', lower(hex(randomblob(2))));
        CREATE TABLE kill_symbols (
            symbol      TEXT PRIMARY KEY,            -- ccxt unified symbol whose entries are blocked
            actor       TEXT NOT NULL,               -- who tripped it (risk, protection, console, ...)
            reason      TEXT NOT NULL,
            changed_ms  INTEGER NOT NULL             -- wall clock, ms UTC
        ) WITHOUT ROWID;
        """,
    ),
    (
        9,
        "engine API: audit of every operator command received over the API socket",
        """
        CREATE TABLE api_audit (
            id          INTEGER PRIMARY KEY,
            ts_ms       INTEGER NOT NULL,            -- when the command was received, ms UTC
            os_user     TEXT NOT NULL,               -- OS user of the peer credentials (SO_PEERCRED)
            uid         INTEGER,                     -- its uid (NULL when the platform cannot tell)
            source      TEXT NOT NULL,               -- the client's declared source: console | cli | telegram | ...
            origin      TEXT NOT NULL,               -- from where: socket path and peer process
            command     TEXT NOT NULL,               -- as asked, e.g. kill, flatten, snooze (also unknown names)
            args        TEXT NOT NULL,               -- JSON of the arguments (or the malformed body, cut)
            readonly    INTEGER NOT NULL DEFAULT 0,  -- 1: asked on a read-only connection
            outcome     TEXT NOT NULL CHECK (outcome IN ('pending', 'ok', 'refused', 'failed')),
            status      INTEGER,                     -- HTTP status answered
            message     TEXT NOT NULL DEFAULT '',    -- the answer's sentence (or the error)
            done_ms     INTEGER                      -- when the outcome was recorded, ms UTC
        );
        CREATE INDEX api_audit_ts ON api_audit (ts_ms);
        """,
    ),
    (
        10,
        "operator control per runner: paused, parameters pending / applied at runtime",
        """
        CREATE TABLE runner_control (
            strategy        TEXT NOT NULL,           -- the runner's identity, as in trading_runners
            symbol          TEXT NOT NULL,
            timeframe       TEXT NOT NULL,
            mode            TEXT NOT NULL,           -- paper | live
            paused          INTEGER NOT NULL DEFAULT 0 CHECK (paused IN (0, 1)),  -- 1: no new entries
            paused_by       TEXT,                    -- actor of the last pause / resume, e.g. cli:alice
            paused_reason   TEXT,
            paused_ms       INTEGER,                 -- when paused / resumed, ms UTC (wall clock)
            pending_params  TEXT,                    -- JSON of the full params applied at the next flat moment
            pending_by      TEXT,
            pending_ms      INTEGER,                 -- ms UTC (wall clock)
            params          TEXT,                    -- JSON of the params applied at runtime (NULL: none)
            config_params   TEXT,                    -- JSON of the configured params they replaced
            applied_by      TEXT,
            applied_ms      INTEGER,                 -- ms UTC (wall clock)
            updated_ms      INTEGER NOT NULL,        -- ms UTC (wall clock)
            PRIMARY KEY (strategy, symbol, timeframe, mode)
        ) WITHOUT ROWID;
        """,
    ),
    (
        11,
        "open interest of perpetuals (the liquidation strategy's series)",
        """
        CREATE TABLE open_interest (
            symbol TEXT NOT NULL,             -- ccxt unified symbol of the perpetual, e.g. BTC/USDT:USDT
            ts     INTEGER NOT NULL,          -- sample time, ms UTC (a live snapshot: the candle boundary)
            oi     REAL NOT NULL,             -- open interest, contracts in base units (> 0)
            source TEXT NOT NULL,             -- exchange id the sample came from, e.g. bitget
            PRIMARY KEY (symbol, ts)
        ) WITHOUT ROWID;
        """,
    ),
    (
        12,
        "capital allocation across runners: state, weights of every rebalance, transfers",
        """
        CREATE TABLE allocation_state (
            id          INTEGER PRIMARY KEY CHECK (id = 1),   -- one row
            state       TEXT NOT NULL,               -- JSON of core.risk.allocation_runtime.Allocator
            updated_ms  INTEGER NOT NULL             -- ms UTC (wall clock)
        );
        CREATE TABLE allocation_weights (
            ts_ms       INTEGER NOT NULL,            -- open time of the candle that rebalanced, ms UTC
            runner      TEXT NOT NULL,               -- strategy@symbol@timeframe
            policy      TEXT NOT NULL,               -- equal | fixed | grade | inverse_volatility | risk_parity | kelly
            weight      REAL NOT NULL,               -- fraction of the account equity
            target      REAL NOT NULL,               -- USDT: weight x account equity (equal in a replay: the capital)
            capital     REAL NOT NULL,               -- USDT: the runner's cash at the rebalance
            detail      TEXT NOT NULL DEFAULT '{}',  -- JSON: returns window, fallback reason, ...
            PRIMARY KEY (ts_ms, runner)
        ) WITHOUT ROWID;
        CREATE TABLE allocation_transfers (
            id          INTEGER PRIMARY KEY,
            ts_ms       INTEGER NOT NULL,            -- open time of the candle after which it moved, ms UTC
            runner      TEXT NOT NULL,               -- strategy@symbol@timeframe
            amount      REAL NOT NULL,               -- USDT into the runner's cash (negative: out, to the pool)
            cash_after  REAL NOT NULL,               -- the runner's cash after it, USDT
            pool_after  REAL NOT NULL                -- unallocated cash after it, USDT
        );
        """,
    ),
]
