"""Opening the database: file mode 0600, WAL, migrations.

Two paths onto the same file:
* `open_sync(path)`: a `sqlite3.Connection` for the CLI and worker threads.
* `open_async(path)`: an `aiosqlite.Connection` for the engine's event loop.
Both create the parent folder and the file (mode 0600) when missing and apply
pending migrations from `core.storage.migrations` in one transaction each.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import aiosqlite

from core.errors import RadarError
from core.storage.migrations import MIGRATIONS

_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=5000",
)


def _ensure_file(path: Path) -> None:
    """Create the folder and an empty database file with mode 0600 (and tighten an existing one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
        os.close(fd)
    os.chmod(path, 0o600)


def _apply_migrations(conn: sqlite3.Connection) -> None:
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_version ("
        " version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_ms INTEGER NOT NULL)"
    )
    done = {row[0] for row in conn.execute("SELECT version FROM schema_version")}
    for version, description, script in MIGRATIONS:
        if version in done:
            continue
        try:
            conn.execute("BEGIN IMMEDIATE")
            for stmt in _split_sql(script):
                conn.execute(stmt)
            conn.execute(
                "INSERT INTO schema_version VALUES (?, ?, CAST(strftime('%s','now') AS INTEGER) * 1000)",
                (version, description),
            )
            conn.execute("COMMIT")
        except Exception as exc:
            conn.execute("ROLLBACK")
            raise RadarError(f"database migration {version} ({description}) failed: {exc}") from exc


def _split_sql(script: str) -> list[str]:
    """Split a migration script into statements (comments stripped; no ';' inside literals)."""
    lines = [ln.split("--", 1)[0] for ln in script.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def open_sync(path: str | os.PathLike[str]) -> sqlite3.Connection:
    """Open (creating if needed) the database at `path` for synchronous use.

    The connection is in autocommit mode (`isolation_level=None`): callers open
    their own transactions with `BEGIN`. Raises RadarError when a migration fails.
    """
    p = Path(path)
    _ensure_file(p)
    conn = sqlite3.connect(p, isolation_level=None, check_same_thread=False)
    for pragma in _PRAGMAS:
        conn.execute(pragma)
    _apply_migrations(conn)
    return conn


async def open_async(path: str | os.PathLike[str]) -> aiosqlite.Connection:
    """Open (creating if needed) the database at `path` on the running event loop.

    Migrations run first through a short-lived synchronous connection.
    """
    open_sync(path).close()
    conn = await aiosqlite.connect(Path(path), isolation_level=None)
    for pragma in _PRAGMAS:
        await conn.execute(pragma)
    return conn
