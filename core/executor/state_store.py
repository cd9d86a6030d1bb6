"""The trading state in SQLite (migration 5) and the one-engine-per-database lock.

Tables: trading_runners, trading_state (cursor + grid/account JSON per runner),
trading_intents, trading_orders, trading_fills, trading_positions (history),
trading_cycles, trading_equity, kill_switch. See `core.storage.migrations` version 5;
runner_control (migration 10): an operator's pause and parameters per runner identity.

`StateStore` is synchronous (sqlite3) and used from the event-loop thread: the executor
opens one transaction per candle (`begin()` ... `commit()`), so a candle's records (intents,
orders, fills, positions, cycle, equity, cursor and the paper account) are durable together;
`flush()` commits mid-candle (write-ahead before a call to an external venue).
The database is in WAL mode with synchronous=NORMAL: a process crash (SIGKILL) loses no
committed transaction; only a power loss can lose the last ones.

`EngineLock` is an exclusive `flock` on `<db>.engine.lock` (the holder's pid inside): a
second engine on the same database is refused; the kernel releases it when the holder dies.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from core.errors import RadarError
from core.model.cycle import Cycle
from core.storage.db import open_sync
from core.storage.wal_checkpointer import WalCheckpointer


class EngineLocked(RadarError):
    """Another engine holds the database (exit code 2)."""

    exit_code = 2


class EngineLock:
    """Exclusive lock of one database for one engine process (see the module docstring)."""

    def __init__(self, db_path: str | os.PathLike[str]) -> None:
        self.path = Path(str(db_path) + ".engine.lock")
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock. Raises EngineLocked naming the holder's pid."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            try:
                holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            finally:
                os.close(fd)
            raise EngineLocked(f"another radar engine (pid {holder}) is running on {str(self.path)[:-12]}; "
                               f"stop it first (lock file {self.path})") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            try:
                os.ftruncate(self._fd, 0)
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            finally:
                os.close(self._fd)
                self._fd = None

    def __enter__(self) -> "EngineLock":
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _now_ms() -> int:
    return int(time.time() * 1000)


class StateStore:
    """Synchronous access to the trading tables of one database (see the module docstring)."""

    def __init__(self, db_path: str | os.PathLike[str]) -> None:
        self.db_path = Path(db_path)
        self.conn = open_sync(self.db_path)
        self.conn.execute("PRAGMA wal_autocheckpoint=10000")   # fewer checkpoint fsyncs at replay speed
        self.in_tx = False
        # the WAL's fsyncs and copy-back run in a background thread, not inside this connection's
        # COMMIT on the event loop (see core.storage.wal_checkpointer)
        self.checkpointer = WalCheckpointer(self.db_path).start()

    def close(self) -> None:
        self.checkpointer.close()
        if self.in_tx:
            self.rollback()
        self.conn.close()

    # ---------------------------------------------------------------- transactions
    def begin(self) -> None:
        if not self.in_tx:
            # IMMEDIATE: take the write lock now (waiting up to busy_timeout). A plain BEGIN reads
            # first and upgrades at its first write, which fails at once (SQLITE_BUSY, no retry)
            # when another connection (the alert engine's thread) wrote in between.
            self.conn.execute("BEGIN IMMEDIATE")
            self.in_tx = True

    def commit(self) -> None:
        if self.in_tx:
            self.conn.execute("COMMIT")
            self.in_tx = False

    def flush(self) -> None:
        """Make everything recorded so far durable and keep a transaction open."""
        if self.in_tx:
            self.conn.execute("COMMIT")
            self.conn.execute("BEGIN IMMEDIATE")

    def rollback(self) -> None:
        if self.in_tx:
            self.conn.execute("ROLLBACK")
            self.in_tx = False

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """`with store.transaction():` one transaction, committed on success and rolled back on
        an error; inside an open transaction it joins it (the outer one commits)."""
        own = not self.in_tx
        self.begin()
        try:
            yield
        except BaseException:
            if own:
                self.rollback()
            raise
        if own:
            self.commit()

    # ---------------------------------------------------------------- runners
    def runner_id(self, strategy: str, symbol: str, timeframe: str, mode: str, params: dict) -> int:
        """The id of the runner (created on first use). Raises RadarError when the stored runner
        has other params (its state would not match them)."""
        row = self.conn.execute("SELECT id, params FROM trading_runners WHERE strategy=? AND symbol=? "
                                "AND timeframe=? AND mode=?", (strategy, symbol, timeframe, mode)).fetchone()
        text = json.dumps(params, sort_keys=True)
        if row is not None:
            if json.loads(row[1]) != json.loads(text):
                raise RadarError(f"{strategy} {symbol} {timeframe} ({mode}) has state in {self.db_path} "
                                 f"with params {row[1]}, not {text}; use another --db")
            return int(row[0])
        cur = self.conn.execute("INSERT INTO trading_runners (strategy, symbol, timeframe, mode, params, "
                                "created_ms) VALUES (?, ?, ?, ?, ?, ?)",
                                (strategy, symbol, timeframe, mode, text, _now_ms()))
        return int(cur.lastrowid)

    def runners(self) -> list[dict]:
        cols = ("id", "strategy", "symbol", "timeframe", "mode", "params")
        return [dict(zip(cols, r)) for r in self.conn.execute(
            "SELECT id, strategy, symbol, timeframe, mode, params FROM trading_runners ORDER BY id")]

    def load_state(self, runner_id: int) -> dict | None:
        row = self.conn.execute("SELECT cursor_ts, n_candles, last_close, finished, grid FROM trading_state "
                                "WHERE runner_id=?", (runner_id,)).fetchone()
        if row is None:
            return None
        return {"cursor_ts": row[0], "n_candles": row[1], "last_close": row[2], "finished": bool(row[3]),
                "grid": json.loads(row[4])}

    def save_state(self, runner_id: int, cursor_ts: int | None, n_candles: int, last_close: float | None,
                   grid: dict, finished: bool = False) -> None:
        self.conn.execute("INSERT OR REPLACE INTO trading_state (runner_id, cursor_ts, n_candles, last_close, "
                          "finished, grid, updated_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
                          (runner_id, cursor_ts, n_candles, last_close, int(finished), json.dumps(grid),
                           _now_ms()))

    def save_cursor(self, runner_id: int, cursor_ts: int, n_candles: int, last_close: float) -> None:
        """Move the cursor only (the grid JSON is unchanged since the last `save_state`)."""
        self.conn.execute("UPDATE trading_state SET cursor_ts=?, n_candles=?, last_close=? WHERE runner_id=?",
                          (cursor_ts, n_candles, last_close, runner_id))

    def load_cycles(self, runner_id: int) -> list[Cycle]:
        return [Cycle(*r) for r in self.conn.execute(
            "SELECT open_time, close_time, side, levels_filled, avg_entry, exit_price, exit_reason, qty, pnl "
            "FROM trading_cycles WHERE runner_id=? ORDER BY idx", (runner_id,))]

    def load_equity(self, runner_id: int) -> tuple[list[int], list[float]]:
        rows = self.conn.execute("SELECT ts, equity FROM trading_equity WHERE runner_id=? ORDER BY ts",
                                 (runner_id,)).fetchall()
        return [r[0] for r in rows], [r[1] for r in rows]

    def open_orders(self, runner_id: int) -> dict[str, list]:
        """client_id -> [purpose, level, price] of the runner's orders with status open."""
        return {r[0]: [r[1], r[2], r[3]] for r in self.conn.execute(
            "SELECT client_id, purpose, level, price FROM trading_orders WHERE runner_id=? AND status='open'",
            (runner_id,))}

    # ---------------------------------------------------------------- records
    def add_intent(self, runner_id: int, ts: int, action: str, client_id: str, price: float | None) -> int:
        cur = self.conn.execute("INSERT INTO trading_intents (runner_id, ts, action, client_id, price, status) "
                                "VALUES (?, ?, ?, ?, ?, 'pending')", (runner_id, ts, action, client_id, price))
        return int(cur.lastrowid)

    def intent_done(self, intent_id: int, status: str = "done") -> None:
        self.conn.execute("UPDATE trading_intents SET status=? WHERE id=?", (status, intent_id))

    def add_order(self, client_id: str, runner_id: int, cycle: int, level: int, purpose: str, side: str,
                  price: float | None, status: str, ts: int) -> None:
        self.conn.execute("INSERT INTO trading_orders (client_id, runner_id, cycle, level, purpose, side, price, "
                          "status, created_ts, updated_ts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                          "ON CONFLICT (client_id) DO UPDATE SET price=excluded.price, status=excluded.status, "
                          "updated_ts=excluded.updated_ts",
                          (client_id, runner_id, cycle, level, purpose, side, price, status, ts, ts))

    def amend_orders(self, rows: list[tuple]) -> None:
        """rows of (price, ts, client_id)."""
        self.conn.executemany("UPDATE trading_orders SET price=?, updated_ts=? WHERE client_id=?", rows)

    def set_order_status(self, client_id: str, status: str, ts: int) -> None:
        self.conn.execute("UPDATE trading_orders SET status=?, updated_ts=? WHERE client_id=?",
                          (status, ts, client_id))

    def add_fill(self, runner_id: int, f, seq: int = 0) -> None:
        """One fill (`GatewayFill`-like); `seq` numbers the partial fills of one order (0 first)."""
        self.conn.execute("INSERT INTO trading_fills (runner_id, client_id, seq, ts, kind, reason, level, side, "
                          "price, qty, fee) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                          (runner_id, f.client_id, seq, f.ts, "entry" if f.purpose == "entry" else "exit", f.reason,
                           f.level, f.side, f.price, f.qty, f.fee))

    def fill_count(self, client_id: str) -> int:
        """How many fills (partial fills included) are recorded for the order."""
        return int(self.conn.execute("SELECT COUNT(*) FROM trading_fills WHERE client_id=?",
                                     (client_id,)).fetchone()[0])

    def set_order_qty(self, client_id: str, qty: float | None) -> None:
        """The ordered base units of a live order."""
        self.conn.execute("UPDATE trading_orders SET qty=? WHERE client_id=?", (qty, client_id))

    def order(self, client_id: str) -> dict | None:
        """One order row as a dict (None when unknown)."""
        cols = ("client_id", "runner_id", "cycle", "level", "purpose", "side", "price", "status", "qty")
        row = self.conn.execute(f"SELECT {', '.join(cols)} FROM trading_orders WHERE client_id=?",
                                (client_id,)).fetchone()
        return None if row is None else dict(zip(cols, row))

    def orders_by_status(self, runner_id: int, statuses: tuple[str, ...]) -> list[dict]:
        """The runner's orders with one of `statuses`, oldest first."""
        cols = ("client_id", "runner_id", "cycle", "level", "purpose", "side", "price", "status", "qty")
        marks = ", ".join("?" * len(statuses))
        return [dict(zip(cols, r)) for r in self.conn.execute(
            f"SELECT {', '.join(cols)} FROM trading_orders WHERE runner_id=? AND status IN ({marks}) "
            "ORDER BY created_ts, rowid", (runner_id, *statuses))]

    def intents_done(self, client_id: str) -> None:
        """The order's pending intents are settled (its outcome is recorded)."""
        self.conn.execute("UPDATE trading_intents SET status='done' WHERE client_id=? AND status='pending'",
                          (client_id,))

    def void_pending(self, runner_id: int, cycle: int, purposes: tuple[str, ...], ts: int) -> int:
        """A cycle closed: its orders of `purposes` still `pending` (an outcome never known, e.g.
        a stop the venue cancels with the position anyway) become `cancelled`, their pending
        intents `superseded`. Returns how many orders."""
        marks = ", ".join("?" * len(purposes))
        ids = [r[0] for r in self.conn.execute(
            f"SELECT client_id FROM trading_orders WHERE runner_id=? AND cycle=? AND status='pending' "
            f"AND purpose IN ({marks})", (runner_id, cycle, *purposes))]
        for cid in ids:
            self.conn.execute("UPDATE trading_orders SET status='cancelled', updated_ts=? WHERE client_id=?", (ts, cid))
            self.conn.execute("UPDATE trading_intents SET status='superseded' WHERE client_id=? AND status='pending'",
                              (cid,))
        return len(ids)

    def has_orders(self) -> bool:
        """True when any runner of this database ever recorded an order (a fresh store has none)."""
        return self.conn.execute("SELECT 1 FROM trading_orders LIMIT 1").fetchone() is not None

    def known_client_id(self, client_id: str) -> bool:
        """True when any runner of this database recorded an order with this client id."""
        return self.conn.execute("SELECT 1 FROM trading_orders WHERE client_id=?", (client_id,)).fetchone() is not None

    def pending_intents(self, runner_id: int) -> list[dict]:
        """Intents recorded but not confirmed done (a crash between the record and the answer)."""
        cols = ("id", "ts", "action", "client_id", "price")
        return [dict(zip(cols, r)) for r in self.conn.execute(
            "SELECT id, ts, action, client_id, price FROM trading_intents WHERE runner_id=? AND status='pending' "
            "ORDER BY id", (runner_id,))]

    def add_reconcile(self, runner_id: int, action: str, client_id: str | None, detail: str) -> None:
        """One start-up reconciliation action (audit log, table trading_reconcile)."""
        self.conn.execute("INSERT INTO trading_reconcile (runner_id, ts_ms, action, client_id, detail) "
                          "VALUES (?, ?, ?, ?, ?)", (runner_id, _now_ms(), action, client_id, detail))

    def add_position(self, runner_id: int, ts: int, qty: float, avg_entry: float | None, stop: float | None,
                     stop_client_id: str | None, levels_filled: int) -> None:
        self.conn.execute("INSERT INTO trading_positions (runner_id, ts, qty, avg_entry, stop, stop_client_id, "
                          "levels_filled) VALUES (?, ?, ?, ?, ?, ?, ?)",
                          (runner_id, ts, qty, avg_entry, stop, stop_client_id, levels_filled))

    def add_cycle(self, runner_id: int, idx: int, c: Cycle) -> None:
        self.conn.execute("INSERT INTO trading_cycles VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                          (runner_id, idx, c.open_time, c.close_time, c.side, c.levels_filled, c.avg_entry,
                           c.exit_price, c.exit_reason, c.qty, c.pnl))

    def add_equity(self, runner_id: int, ts: int, equity: float) -> None:
        self.conn.execute("INSERT OR REPLACE INTO trading_equity (runner_id, ts, equity) VALUES (?, ?, ?)",
                          (runner_id, ts, equity))

    # ---------------------------------------------------------------- kill switch
    def load_kill_switch(self) -> dict | None:
        row = self.conn.execute("SELECT active, flatten, actor, reason, changed_ms FROM kill_switch "
                                "WHERE id=1").fetchone()
        if row is None:
            return None
        return {"active": bool(row[0]), "flatten": bool(row[1]), "actor": row[2], "reason": row[3],
                "changed_ms": row[4]}

    def kill_symbols(self) -> dict[str, dict]:
        """symbol -> {actor, reason, changed_ms} of the symbols whose entries are blocked."""
        return {r[0]: {"actor": r[1], "reason": r[2], "changed_ms": r[3]} for r in self.conn.execute(
            "SELECT symbol, actor, reason, changed_ms FROM kill_symbols ORDER BY symbol")}

    def set_kill_symbol(self, symbol: str, actor: str, reason: str) -> None:
        self.conn.execute("INSERT OR REPLACE INTO kill_symbols (symbol, actor, reason, changed_ms) VALUES (?, ?, ?, ?)",
                          (symbol, actor, reason, _now_ms()))

    def clear_kill_symbols(self, symbol: str | None = None) -> None:
        """Unblock `symbol` (None: every symbol)."""
        if symbol is None:
            self.conn.execute("DELETE FROM kill_symbols")
        else:
            self.conn.execute("DELETE FROM kill_symbols WHERE symbol=?", (symbol,))

    # ---------------------------------------------------------------- operator control per runner
    def runner_params(self, strategy: str, symbol: str, timeframe: str, mode: str) -> dict | None:
        """The params the runner's stored state was built with (trading_runners), None for a new runner."""
        row = self.conn.execute("SELECT params FROM trading_runners WHERE strategy=? AND symbol=? AND timeframe=? "
                                "AND mode=?", (strategy, symbol, timeframe, mode)).fetchone()
        return None if row is None else json.loads(row[0])

    def set_runner_params(self, runner_id: int, params: dict) -> None:
        """The runner trades with `params` from now on (applied at runtime while flat)."""
        self.conn.execute("UPDATE trading_runners SET params=? WHERE id=?",
                          (json.dumps(params, sort_keys=True), runner_id))

    def runner_control(self, strategy: str, symbol: str, timeframe: str, mode: str) -> dict | None:
        """The runner_control row of a runner identity (migration 10) as a dict, None when none:
        paused (bool), paused_by, paused_reason, paused_ms, pending_params (dict | None),
        pending_by, pending_ms, params (dict | None: applied at runtime), config_params (dict | None),
        applied_by, applied_ms (times ms UTC)."""
        cols = ("paused", "paused_by", "paused_reason", "paused_ms", "pending_params", "pending_by", "pending_ms",
                "params", "config_params", "applied_by", "applied_ms")
        row = self.conn.execute(f"SELECT {', '.join(cols)} FROM runner_control WHERE strategy=? AND symbol=? "
                                "AND timeframe=? AND mode=?", (strategy, symbol, timeframe, mode)).fetchone()
        if row is None:
            return None
        d = dict(zip(cols, row))
        d["paused"] = bool(d["paused"])
        for k in ("pending_params", "params", "config_params"):
            d[k] = None if d[k] is None else json.loads(d[k])
        return d

    def save_runner_control(self, strategy: str, symbol: str, timeframe: str, mode: str, **fields) -> None:
        """Upsert `fields` (columns of runner_control; dicts are stored as JSON, bools as 0/1) of a
        runner identity, in the caller's transaction."""
        allowed = {"paused", "paused_by", "paused_reason", "paused_ms", "pending_params", "pending_by", "pending_ms",
                   "params", "config_params", "applied_by", "applied_ms"}
        bad = set(fields) - allowed
        if bad:
            raise ValueError(f"runner_control has no column(s) {', '.join(sorted(bad))}")
        vals = {k: (json.dumps(v, sort_keys=True) if isinstance(v, dict) else int(v) if isinstance(v, bool) else v)
                for k, v in fields.items()}
        key = (strategy, symbol, timeframe, mode)
        self.conn.execute("INSERT OR IGNORE INTO runner_control (strategy, symbol, timeframe, mode, updated_ms) "
                          "VALUES (?, ?, ?, ?, ?)", (*key, _now_ms()))
        sets = ", ".join(f"{k}=?" for k in vals)
        self.conn.execute(f"UPDATE runner_control SET {sets}{', ' if sets else ''}updated_ms=? WHERE strategy=? "
                          "AND symbol=? AND timeframe=? AND mode=?", (*vals.values(), _now_ms(), *key))

    def epoch(self) -> str:
        """The database's epoch (4 hex digits) carried by its client order ids."""
        row = self.conn.execute("SELECT value FROM radar_meta WHERE key='epoch'").fetchone()
        return "" if row is None else str(row[0])

    def save_kill_switch(self, active: bool, flatten: bool, actor: str, reason: str) -> None:
        self.conn.execute("INSERT OR REPLACE INTO kill_switch (id, active, flatten, actor, reason, changed_ms) "
                          "VALUES (1, ?, ?, ?, ?, ?)", (int(active), int(flatten), actor, reason, _now_ms()))
