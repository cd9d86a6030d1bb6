"""Opening the database: file mode 0600, WAL, migrations.

Two paths onto the same file:
* `open_sync(path)`: a `sqlite3.Connection` for the CLI and worker threads.
* `open_async(path)`: an `aiosqlite.Connection` for the engine's event loop.
Both create the parent folder (mode 0700) and the file (mode 0600) when missing
and apply pending migrations from `core.storage.migrations` in one transaction
each. A storage failure (disk full, read-only file or folder, a path that cannot
be a database file, a damaged file) raises a `core.storage.errors.StorageError`
with one clear line instead of the raw sqlite3/OS error.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path

import aiosqlite

from core.errors import RadarError
from core.storage.errors import DatabaseUnopenable, storage_error
from core.storage.migrations import MIGRATIONS

_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=5000",
)


def _ensure_file(path: Path) -> None:
    """Create the folder (0700 when new) and an empty database file with mode 0600 (and tighten an existing
    one this user owns).

    Raises:
        DatabaseUnopenable: `path` is a folder, or a part of its folder is a file.
        OSError: creating the folder or file failed (the caller maps it with `storage_error`).
    """
    if path.is_dir():
        raise DatabaseUnopenable(f"database {path} is a folder, not a file; pass --db a file path "
                                 f"such as {path / 'radar.db'}")
    blocker = next((d for d in reversed(path.parents) if d.exists() and not d.is_dir()), None)
    if blocker is not None:
        raise DatabaseUnopenable(f"database {path}: cannot create it, {blocker} is a file, not a folder; "
                                 "pass --db a path inside a folder")
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not path.exists():
        fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o600)
        os.close(fd)
    st = path.stat()
    if stat.S_IMODE(st.st_mode) != 0o600 and st.st_uid == os.geteuid():  # only the owner may chmod
        os.chmod(path, 0o600)


def _apply_migrations(conn: sqlite3.Connection, path: Path) -> None:
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
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            clear = storage_error(exc, path)
            if clear is not None:
                raise clear from exc
            raise RadarError(f"database {path}: migration {version} ({description}) failed: {exc}") from exc


def _split_sql(script: str) -> list[str]:
    """Split a migration script into statements (comments stripped; no ';' inside literals)."""
    lines = [ln.split("--", 1)[0] for ln in script.splitlines()]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def open_sync(path: str | os.PathLike[str]) -> sqlite3.Connection:
    """Open (creating if needed) the database at `path` for synchronous use.

    The connection is in autocommit mode (`isolation_level=None`): callers open
    their own transactions with `BEGIN`.

    Raises:
        StorageError (exit code 2): the folder or file cannot be created or opened, the
            disk is full, the file or folder is read-only, the file is not a database
            (`core.storage.errors.storage_error`; one line naming the file and what to do).
        RadarError: a migration failed for another reason.
    """
    p = Path(path)
    conn: sqlite3.Connection | None = None
    try:
        _ensure_file(p)
        conn = sqlite3.connect(p, isolation_level=None, check_same_thread=False)
        for pragma in _PRAGMAS:
            conn.execute(pragma)
        _apply_migrations(conn, p)
    except (OSError, sqlite3.Error) as exc:
        if conn is not None:
            conn.close()
        clear = storage_error(exc, p)
        if clear is None:
            raise
        raise clear from exc
    except BaseException:
        if conn is not None:
            conn.close()
        raise
    return conn


async def open_async(path: str | os.PathLike[str]) -> aiosqlite.Connection:
    """Open (creating if needed) the database at `path` on the running event loop.

    Migrations run first through a short-lived synchronous connection.

    Raises:
        StorageError, RadarError: as `open_sync`.
    """
    open_sync(path).close()
    conn = await aiosqlite.connect(Path(path), isolation_level=None)
    try:
        for pragma in _PRAGMAS:
            await conn.execute(pragma)
    except (OSError, sqlite3.Error) as exc:
        await conn.close()
        clear = storage_error(exc, path)
        if clear is None:
            raise
        raise clear from exc
    return conn
