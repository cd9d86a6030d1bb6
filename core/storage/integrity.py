"""Is the database file sound? `PRAGMA quick_check` before an engine trades on it.

`check_database(path)` opens the file read-only (`file:...?mode=ro`), runs
`PRAGMA quick_check` (O(size of the file): every page and index entry, but no
index-vs-table cross-check, https://sqlite.org/pragma.html#pragma_quick_check) and
raises `DatabaseCorrupt` when SQLite reports a problem or the file is not a
database at all. It never changes the file.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from core.storage.errors import StorageError, missing_database, storage_error

#: How many of quick_check's problem lines the message quotes.
SHOWN_PROBLEMS = 3


class DatabaseCorrupt(StorageError):
    """The database file is damaged or not a SQLite database; Radar must not trade on it (exit code 2).

    Attributes:
        path: the database file.
        problems: what SQLite reported (quick_check lines, or the error text), in its order.
    """

    exit_code = 2

    def __init__(self, path: Path, problems: list[str]) -> None:
        self.path = path
        self.problems = list(problems)
        shown = "; ".join(" ".join(p.split())[:200] for p in self.problems[:SHOWN_PROBLEMS])
        more = len(self.problems) - SHOWN_PROBLEMS
        extra = f" (+{more} more)" if more > 0 else ""
        super().__init__(f"database {path} is corrupt: SQLite reports: {shown}{extra}. Do not trade on it: "
                         f"stop Radar, move {path.name} (and its -wal/-shm files) out of {path.parent} or "
                         "restore it from a backup, then start again")


def corrupt_error(path: str | os.PathLike[str], problems: list[str]) -> DatabaseCorrupt:
    """The DatabaseCorrupt of `path` with SQLite's `problems` (used by `storage_error` too)."""
    return DatabaseCorrupt(Path(path), problems)


def check_database(path: str | os.PathLike[str], *, missing_ok: bool = False) -> None:
    """Run `PRAGMA quick_check` on the SQLite file `path`, read-only; return when it reports "ok".

    Args:
        path: the database file. It is opened with `mode=ro` and never written; like any
            reader of a WAL database, SQLite may leave an empty -wal and a -shm file beside it.
        missing_ok: return quietly when the file does not exist (a new database is sound);
            by default a missing file is an error.

    Raises:
        DatabaseCorrupt: quick_check reported problems, or SQLite says the file is
            malformed / not a database; the message quotes the first problems and says
            what to do. Exit code 2.
        DatabaseMissing: the file does not exist and `missing_ok` is False.
        StorageError: the file cannot be opened or read (permissions, a folder in the
            way, ...), as one clear line (`core.storage.errors.storage_error`).
    """
    p = Path(path)
    if not p.exists():
        if missing_ok:
            return
        raise missing_database(p, "the integrity check")
    if p.is_dir():
        raise storage_error(IsADirectoryError(21, "Is a directory", str(p)), p)  # type: ignore[misc]
    try:
        conn = sqlite3.connect(f"{p.resolve().as_uri()}?mode=ro", uri=True)
        try:
            conn.execute("PRAGMA busy_timeout=5000")
            rows = [str(r[0]) for r in conn.execute("PRAGMA quick_check")]
        finally:
            conn.close()
    except (sqlite3.Error, OSError) as exc:
        err = storage_error(exc, p)
        if err is None:
            raise
        raise err from exc
    if rows != ["ok"]:
        raise DatabaseCorrupt(p, problem_lines(rows) or ["quick_check returned nothing"])


def problem_lines(rows: list[str]) -> list[str]:
    """quick_check's rows as single problem lines (a row may hold many lines), without the
    "*** in database main ***" headings."""
    lines = (ln.strip() for row in rows for ln in row.splitlines())
    return [ln for ln in lines if ln and not (ln.startswith("***") and ln.endswith("***"))]
