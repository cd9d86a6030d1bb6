"""The audit of API commands: one `api_audit` row (migration 9) per command received.

A command is recorded BEFORE anything is done (outcome "pending"): when that write fails the
command is not run (fail closed). Its outcome ("ok", "refused", "failed"), HTTP status and
message are recorded when it ends. Writes run in one dedicated thread on the engine's
database (`open_sync`), never on the event loop. Times ms UTC.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from core.model.clock import Clock, system_clock
from core.storage.db import open_sync

#: Longest args text stored (a malformed body is cut to this).
MAX_ARGS_CHARS = 2000


@dataclass(frozen=True)
class AuditRecord:
    """One `api_audit` row (times ms UTC; args decoded JSON, or the raw text when it was not JSON)."""

    id: int
    ts_ms: int
    os_user: str
    uid: int | None
    source: str
    origin: str
    command: str
    args: Any
    readonly: bool
    outcome: str
    status: int | None
    message: str
    done_ms: int | None


class AuditLog:
    """Records commands in the `api_audit` table of `db_path` (see the module docstring).

    Raises (from `open`): StorageError when the database cannot be opened or migrated.
    """

    def __init__(self, db_path: str | Path, clock: Clock = system_clock,
                 redact: Callable[[str], str] | None = None) -> None:
        self.db_path = Path(db_path)
        self.clock = clock
        #: masks the run's secret values in what is stored (an operator pasting a key into a
        #: reason must not put it in the database)
        self.redact = redact or (lambda text: text)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="api-audit")
        self._conn: sqlite3.Connection | None = None

    async def open(self) -> AuditLog:
        """Open the database (in the audit thread); returns self."""
        self._conn = await self._run(open_sync, self.db_path)
        return self

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def begin(self, *, os_user: str, uid: int | None, source: str, origin: str, command: str,
                    args: Any, readonly: bool) -> int:
        """Record a command as received (outcome "pending"); returns its row id.

        Raises:
            sqlite3.Error / OSError: the row could not be written (do not run the command).
        """
        text = args if isinstance(args, str) else json.dumps(args, sort_keys=True, default=str)
        text = self.redact(text)
        row = (self.clock(), os_user, uid, source, origin, command, text[:MAX_ARGS_CHARS], int(readonly))

        def write() -> int:
            assert self._conn is not None, "audit log not opened"
            cur = self._conn.execute(
                "INSERT INTO api_audit (ts_ms, os_user, uid, source, origin, command, args, readonly, outcome) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending')", row)
            return int(cur.lastrowid)

        return await self._run(write)

    async def finish(self, audit_id: int, outcome: str, status: int, message: str) -> None:
        """Record the outcome ("ok" | "refused" | "failed"), HTTP status and message of a command.

        Raises:
            sqlite3.Error / OSError: the row could not be updated.
        """
        row = (outcome, status, self.redact(message)[:MAX_ARGS_CHARS], self.clock(), audit_id)

        def write() -> None:
            assert self._conn is not None, "audit log not opened"
            self._conn.execute("UPDATE api_audit SET outcome = ?, status = ?, message = ?, done_ms = ? "
                               "WHERE id = ?", row)

        await self._run(write)

    async def recent(self, limit: int = 50) -> list[AuditRecord]:
        """The newest rows first."""
        assert self._conn is not None, "audit log not opened"
        conn = self._conn
        return await self._run(read_audit, conn, limit)

    async def close(self) -> None:
        """Close the database and the thread (idempotent)."""
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await self._run(conn.close)
        self._pool.shutdown(wait=True)


def read_audit(conn: sqlite3.Connection, limit: int = 50) -> list[AuditRecord]:
    """The newest `api_audit` rows of an open connection (tests, tools)."""
    rows = conn.execute("SELECT id, ts_ms, os_user, uid, source, origin, command, args, readonly, outcome, status, "
                        "message, done_ms FROM api_audit ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
    return [_record(r) for r in rows]


def _record(r: tuple) -> AuditRecord:
    try:
        args = json.loads(r[7])
    except ValueError:
        args = r[7]
    return AuditRecord(r[0], r[1], r[2], r[3], r[4], r[5], r[6], args, bool(r[8]), r[9], r[10], r[11], r[12])
