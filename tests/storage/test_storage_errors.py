"""`storage_error` and `open_sync`: storage failures become one clear line naming the file and what to do.

Real SQLite errors are produced by SQLite itself (a page limit for SQLITE_FULL, a
`mode=ro` connection for SQLITE_READONLY, a missing folder for SQLITE_CANTOPEN);
OS errors are real where the test can cause them as any user (a path below a regular
file), else built with the errno the OS would give.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import stat
from pathlib import Path

import pytest

from core.storage import db as db_module
from core.storage.db import open_sync
from core.storage.errors import DatabaseUnopenable, DiskFull, StorageError, StorageNotWritable, storage_error


def _sqlite_error(make) -> sqlite3.Error:
    try:
        make()
    except sqlite3.Error as exc:
        return exc
    raise AssertionError("SQLite raised nothing")


def test_a_full_database_is_reported_as_such(tmp_path: Path) -> None:
    db = tmp_path / "radar.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE t (x TEXT)")
    conn.execute("PRAGMA max_page_count = 2")  # the page limit gives SQLite's real SQLITE_FULL
    exc = _sqlite_error(lambda: conn.executemany("INSERT INTO t VALUES (?)", [("x" * 1000,)] * 100))
    conn.close()
    assert exc.sqlite_errorname == "SQLITE_FULL"
    err = storage_error(exc, db)
    assert isinstance(err, DiskFull) and err.exit_code == 2
    assert str(err) == (f"database {db}: the disk is full (or the database hit its size limit); "
                        f"free space on the disk of {tmp_path}, then retry")


def test_writing_through_a_read_only_connection_is_reported_as_read_only(tmp_path: Path) -> None:
    db = tmp_path / "radar.db"
    open_sync(db).close()
    conn = sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True)
    exc = _sqlite_error(lambda: conn.execute("CREATE TABLE t (x)"))
    conn.close()
    err = storage_error(exc, db)
    assert isinstance(err, StorageNotWritable)
    assert str(err).startswith(f"database {db} is read-only (attempt to write a readonly database); make the file")


def test_a_database_that_cannot_be_opened_names_its_folder(tmp_path: Path) -> None:
    db = tmp_path / "missing-folder" / "radar.db"
    exc = _sqlite_error(lambda: sqlite3.connect(db))
    err = storage_error(exc, db)
    assert isinstance(err, DatabaseUnopenable)
    assert str(err) == (f"database {db}: cannot open it (unable to open database file); check that "
                        f"{db.parent} is a folder this user can read and write, or pass --db another path")


@pytest.mark.parametrize("exc, cls, text", [
    (OSError(errno.ENOSPC, "No space left on device"), DiskFull, "database {db}: no space left on device; "),
    (PermissionError(errno.EACCES, "Permission denied", "{dir}"), StorageNotWritable,
     "folder {dir} of database {db}: cannot write (permission denied); make {dir} writable"),
    (OSError(errno.EROFS, "Read-only file system", "{db}"), StorageNotWritable,
     "database {db}: cannot write (read-only file system); make {dir} writable"),
    (OSError(errno.EROFS, "Read-only file system", "{db}-wal"), StorageNotWritable,
     "file {db}-wal of database {db}: cannot write (read-only file system)"),
    (PermissionError(errno.EACCES, "Permission denied", "/elsewhere/report.json"), StorageNotWritable,
     "file /elsewhere/report.json: cannot write (permission denied); make /elsewhere writable"),
    (NotADirectoryError(errno.ENOTDIR, "Not a directory", "{dir}"), DatabaseUnopenable,
     "folder {dir} of database {db}: cannot open or create it (not a directory)"),
])
def test_os_errors_name_the_file_and_what_to_do(tmp_path: Path, exc: OSError, cls: type, text: str) -> None:
    db = tmp_path / "radar.db"
    if exc.filename is not None:
        exc.filename = exc.filename.format(db=db, dir=tmp_path)
    err = storage_error(exc, db)
    assert isinstance(err, cls) and err.exit_code == 2
    assert str(err).startswith(text.format(db=db, dir=tmp_path))


@pytest.mark.parametrize("exc", [
    ValueError("x"), ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"),
    FileNotFoundError(errno.ENOENT, "No such file or directory", "/x"), sqlite3.IntegrityError("UNIQUE constraint"),
    sqlite3.OperationalError("no such table: t"),
])
def test_other_errors_are_not_storage_errors(exc: BaseException) -> None:
    assert storage_error(exc, "radar.db") is None


def test_open_sync_creates_the_folder_0700_and_the_file_0600(tmp_path: Path) -> None:
    db = tmp_path / "new" / "radar.db"
    open_sync(db).close()
    assert stat.S_IMODE(db.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(db.stat().st_mode) == 0o600


def test_open_sync_below_a_regular_file_is_one_clear_line_and_creates_nothing(tmp_path: Path) -> None:
    """A real ENOTDIR situation: a part of the database's folder is a regular file."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    db = blocker / "sub" / "radar.db"
    with pytest.raises(DatabaseUnopenable) as info:
        open_sync(db)
    assert str(info.value) == (f"database {db}: cannot create it, {blocker} is a file, not a folder; "
                               "pass --db a path inside a folder")
    assert blocker.read_text() == "x"


def test_open_sync_on_a_folder_refuses_it_and_leaves_its_mode(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)
    with pytest.raises(DatabaseUnopenable, match=r"is a folder, not a file; pass --db a file path"):
        open_sync(folder)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755


def test_open_sync_on_a_file_that_is_not_a_database_says_corrupt(tmp_path: Path) -> None:
    db = tmp_path / "radar.db"
    db.write_bytes(b"not a database at all " * 300)
    with pytest.raises(StorageError, match=r"is corrupt: SQLite reports: file is not a database\. Do not trade"):
        open_sync(db)


def test_open_sync_maps_a_read_only_file_system(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """EROFS cannot be caused without mount privileges: os.open raises what a read-only mount gives."""
    def read_only(path, *args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    monkeypatch.setattr(db_module.os, "open", read_only)
    db = tmp_path / "radar.db"
    with pytest.raises(StorageNotWritable) as info:
        open_sync(db)
    assert str(info.value).startswith(f"database {db}: cannot write (read-only file system); make {tmp_path}")
    assert isinstance(info.value.__cause__, OSError)


def test_open_sync_maps_a_full_disk(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ENOSPC on creating the file (as on a full disk) is a DiskFull line."""
    def full(path, *args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(db_module.os, "open", full)
    with pytest.raises(DiskFull, match=r"no space left on device; free space on the disk of"):
        open_sync(tmp_path / "radar.db")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes through chmod 0500; "
                    "tests/cli/test_storage_errors_cli.py covers it as an unprivileged child")
def test_open_sync_in_a_read_only_folder(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(StorageNotWritable, match=r"cannot write \(permission denied\)"):
            open_sync(ro / "radar.db")
    finally:
        ro.chmod(0o700)
