"""Storage failures as one clear line: disk full, read-only or unopenable database, missing database.

`storage_error(exc, path)` turns a `sqlite3.Error` or `OSError` met while using
the database at `path` into a `StorageError` whose message says what happened,
which file and what to do (the CLI prints it and exits 2); it returns None for
anything else, which the caller re-raises unchanged. Corruption maps to
`core.storage.integrity.DatabaseCorrupt`.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

from core.errors import RadarError

# SQLite primary result codes (https://sqlite.org/rescode.html).
_SQLITE_PERM, _SQLITE_READONLY, _SQLITE_CORRUPT, _SQLITE_FULL, _SQLITE_CANTOPEN, _SQLITE_NOTADB = 3, 8, 11, 13, 14, 26

_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}
_READONLY_ERRNOS = {errno.EROFS, errno.EACCES, errno.EPERM}
_OPEN_ERRNOS = {errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG, errno.ELOOP}


class StorageError(RadarError):
    """The database (or a file beside it) cannot be used; nothing is done (exit code 2)."""

    exit_code = 2


class DiskFull(StorageError):
    """SQLITE_FULL, ENOSPC or EDQUOT: no space left for the database (exit code 2)."""


class StorageNotWritable(StorageError):
    """A read-only database, file or folder: SQLITE_READONLY/PERM, EROFS, EACCES, EPERM (exit code 2)."""


class DatabaseUnopenable(StorageError):
    """The database file cannot be opened or created: SQLITE_CANTOPEN, ENOTDIR, EISDIR... (exit code 2)."""


class DatabaseMissing(StorageError):
    """A command that only reads or changes existing data was given a database that does not exist (exit code 2)."""


def _code(exc: sqlite3.Error) -> int | None:
    """SQLite's primary result code of `exc`, or None when unknown."""
    code = getattr(exc, "sqlite_errorcode", None)
    return code & 0xFF if isinstance(code, int) else None


def _within(name: str | os.PathLike[str], path: Path) -> bool:
    """True when `name` is the database, one of its side files (-wal, -shm, ...) or a folder above it."""
    target = Path(os.path.abspath(name))
    db = Path(os.path.abspath(path))
    side_file = target.parent == db.parent and target.name.startswith(db.name + "-")
    return target == db or side_file or target in db.parents


def _subject(exc: BaseException, path: Path) -> tuple[str, Path, bool]:
    """(how to name the failing file, the folder to act on, whether it is the database's) for the message."""
    name = getattr(exc, "filename", None)
    if name is None:
        return f"database {path}", path.parent, True
    target = Path(os.fsdecode(name))
    if not _within(target, path):
        return (f"folder {target}", target, False) if target.is_dir() else (f"file {target}", target.parent, False)
    if Path(os.path.abspath(target)) in Path(os.path.abspath(path)).parents:
        return f"folder {target} of database {path}", target, True
    what = f"database {path}" if target.name == path.name else f"file {target} of database {path}"
    return what, path.parent, True


def _reason(exc: BaseException) -> str:
    """The OS or SQLite wording of `exc`, without a path (the message names the file itself)."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__


def storage_error(exc: BaseException, path: str | os.PathLike[str]) -> StorageError | None:
    """The clear one-line error for a storage failure met while using the database at `path`.

    Args:
        exc: what was raised: a `sqlite3.Error` or an `OSError` (PermissionError, ...).
        path: the database file in use (the message names it, or the file in `exc.filename`
            when that is another file).

    Returns:
        `DiskFull` (SQLITE_FULL, ENOSPC, EDQUOT), `StorageNotWritable` (SQLITE_READONLY,
        SQLITE_PERM, EROFS, EACCES, EPERM), `DatabaseUnopenable` (SQLITE_CANTOPEN, ENOTDIR,
        EISDIR, ENAMETOOLONG, ELOOP), `core.storage.integrity.DatabaseCorrupt` (SQLITE_CORRUPT,
        SQLITE_NOTADB), all exit code 2, not raised (the caller does `raise err from exc`);
        None when `exc` is none of these (the caller re-raises `exc`).
        An `exc` that already is a StorageError is returned as is.
    """
    if isinstance(exc, StorageError):
        return exc
    p = Path(path)
    if isinstance(exc, sqlite3.Error):
        code = _code(exc)
        text = str(exc).lower()
        if code == _SQLITE_FULL or "database or disk is full" in text:
            return DiskFull(f"database {p}: the disk is full (or the database hit its size limit); "
                            f"free space on the disk of {p.parent}, then retry")
        if code in (_SQLITE_READONLY, _SQLITE_PERM) or "readonly database" in text:
            return StorageNotWritable(f"database {p} is read-only ({exc}); make the file, its -wal/-shm files "
                                      f"and the folder {p.parent} writable by this user, or pass --db a writable path")
        if code == _SQLITE_CANTOPEN or "unable to open database file" in text:
            return DatabaseUnopenable(f"database {p}: cannot open it ({exc}); check that {p.parent} is a "
                                      "folder this user can read and write, or pass --db another path")
        if code in (_SQLITE_CORRUPT, _SQLITE_NOTADB) or "malformed" in text or "not a database" in text:
            from core.storage.integrity import corrupt_error

            return corrupt_error(p, [str(exc)])
        return None
    if isinstance(exc, OSError) and exc.errno is not None:
        what, folder, about_db = _subject(exc, p)
        other_db = ", or pass --db another path" if about_db else ""
        if exc.errno in _FULL_ERRNOS:
            return DiskFull(f"{what}: {_reason(exc)}; free space on the disk of {folder}, then retry")
        if exc.errno in _READONLY_ERRNOS:
            return StorageNotWritable(f"{what}: cannot write ({_reason(exc)}); make {folder} writable by this "
                                      f"user{other_db}")
        if exc.errno in _OPEN_ERRNOS:
            return DatabaseUnopenable(f"{what}: cannot open or create it ({_reason(exc)}); check the path "
                                      f"(every part but the last must be a folder){other_db}")
    return None


def missing_database(path: str | os.PathLike[str], command: str) -> DatabaseMissing:
    """The error of `command` (e.g. "radar alerts list") run on a database file that does not exist."""
    return DatabaseMissing(f"database {path} does not exist, so {command} has nothing to work on; "
                           "check --db (or XDG_DATA_HOME), or start an engine with `radar run` to create it")
