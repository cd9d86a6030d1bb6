"""`check_database`: PRAGMA quick_check, read-only, on real databases made by `open_sync` and then damaged."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from core.errors import RadarError
from core.storage.db import open_sync
from core.storage.errors import DatabaseMissing, StorageError, storage_error
from core.storage.integrity import DatabaseCorrupt, check_database

PAGE_ROWS = 2000


@pytest.fixture(scope="module")
def sound_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real Radar database (migrated by open_sync) with a table and index of some 280 pages."""
    path = tmp_path_factory.mktemp("integrity") / "radar.db"
    conn = open_sync(path)
    conn.execute("CREATE TABLE filler (id INTEGER PRIMARY KEY, note TEXT)")
    conn.execute("CREATE INDEX filler_note ON filler(note)")
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO filler(note) VALUES (?)", [(f"row {i:06d} " + "x" * 200,) for i in range(PAGE_ROWS)])
    conn.execute("COMMIT")
    conn.close()  # last connection: the WAL is checkpointed into the file and removed
    assert not Path(f"{path}-wal").exists()
    return path


def _damaged_copy(src: Path, dst: Path, offset_in_page: int, pages: range) -> Path:
    """`src` copied to `dst`, then 64 bytes of 0xff written at `offset_in_page` of each of `pages`."""
    shutil.copy(src, dst)
    with open(src, "rb") as f:
        page_size = int.from_bytes(f.read(18)[16:18], "big")
    with open(dst, "r+b") as f:
        for page in pages:
            f.seek(page * page_size + offset_in_page)
            f.write(b"\xff" * 64)
    return dst


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_sound_database_passes_and_is_not_changed(sound_db: Path) -> None:
    before = _digest(sound_db)
    check_database(sound_db)
    assert _digest(sound_db) == before
    wal = Path(f"{sound_db}-wal")
    assert not wal.exists() or wal.stat().st_size == 0  # a reader of a WAL database may leave an empty -wal


def test_damaged_pages_are_reported_with_the_first_problems_and_what_to_do(sound_db: Path, tmp_path: Path) -> None:
    bad = _damaged_copy(sound_db, tmp_path / "radar.db", 1000, range(100, 110))
    before = _digest(bad)
    with pytest.raises(DatabaseCorrupt) as info:
        check_database(bad)
    err = info.value
    msg = str(err)
    assert isinstance(err, RadarError) and err.exit_code == 2
    assert msg.startswith(f"database {bad} is corrupt: SQLite reports: On tree page ")
    assert "(+" in msg and "more)" in msg            # more problems than quoted
    assert len(err.problems) > 3 and "\n" not in msg  # one line
    assert "Do not trade on it" in msg and "restore it from a backup" in msg and f"out of {tmp_path}" in msg
    assert _digest(bad) == before                    # read-only: the evidence is kept as it was


def test_damaged_page_headers_are_corrupt_too(sound_db: Path, tmp_path: Path) -> None:
    """Garbage over whole b-tree page headers makes SQLite raise "malformed" instead of listing rows."""
    bad = _damaged_copy(sound_db, tmp_path / "radar.db", 0, range(100, 110))
    with pytest.raises(DatabaseCorrupt, match=r"is corrupt: SQLite reports: .*malformed"):
        check_database(bad)


def test_a_file_that_is_not_a_database_is_corrupt(tmp_path: Path) -> None:
    junk = tmp_path / "radar.db"
    junk.write_bytes(b"this is not sqlite " * 500)
    with pytest.raises(DatabaseCorrupt) as info:
        check_database(junk)
    assert str(info.value).startswith(f"database {junk} is corrupt: SQLite reports: file is not a database. ")


def test_a_missing_database_is_an_error_unless_missing_ok(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "radar.db"
    with pytest.raises(DatabaseMissing, match=r"does not exist"):
        check_database(missing)
    check_database(missing, missing_ok=True)
    assert not missing.parent.exists()


def test_a_folder_given_as_the_database_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match=rf"^database {tmp_path}: cannot open or create it \(is a directory\)"):
        check_database(tmp_path)


def test_storage_error_maps_sqlite_corruption_to_database_corrupt(tmp_path: Path) -> None:
    import sqlite3

    err = storage_error(sqlite3.DatabaseError("database disk image is malformed"), tmp_path / "x.db")
    assert isinstance(err, DatabaseCorrupt) and err.problems == ["database disk image is malformed"]
