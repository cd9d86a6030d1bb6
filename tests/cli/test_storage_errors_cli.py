"""The `radar` CLI turns storage failures into one line and exit code 2, never a traceback.

* A read-only database folder, for real: as root (whom chmod does not stop) the command
  runs in a forked child that dropped to uid/gid 65534 (nobody); as another user it runs
  in-process. This proves the whole path: `open_sync` -> SQLite's SQLITE_READONLY ->
  `storage_error` -> the CLI's one line.
* A file that is not a database: SQLite's real "file is not a database" through the CLI.
* A raw sqlite3/OS error escaping a command reaches `core.cli.main`'s own mapping (the
  command is replaced by one raising SQLite's real SQLITE_FULL); an unrelated OSError
  still propagates with its traceback.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.cli import health_cmd
from core.cli.main import main
from core.storage.db import open_sync

NOBODY = 65534


def _run(argv: list[str]) -> tuple[int, str, str]:
    """main(argv) in-process with stdout/stderr captured."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def _run_unprivileged(argv: list[str]) -> tuple[int, str]:
    """(exit code, stderr) of main(argv) run by a user without write access: in-process unless
    root, else in a forked child as uid/gid 65534 (the modules it needs are imported first)."""
    if os.geteuid() != 0:
        code, _, err = _run(argv)
        return code, err
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        try:
            os.close(read)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            code, _, err = _run(argv)
            os.write(write, json.dumps([code, err]).encode())
        except Exception as exc:  # noqa: BLE001 - any failure of the child is reported through the pipe
            os.write(write, json.dumps([-1, f"child failed: {exc!r}"]).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    code, err = json.loads(data)
    if code == -1 and "Operation not permitted" in err:
        pytest.skip("cannot drop root privileges here (no CAP_SETUID)")
    return code, err


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A folder outside pytest's 0700 tmp tree, so that uid 65534 can reach it; removed afterwards."""
    base = Path(tempfile.mkdtemp(prefix="radar-ro-test-"))
    base.chmod(0o755)
    try:
        yield base
    finally:
        for d in base.rglob("*"):
            if d.is_dir():
                d.chmod(0o755)
        shutil.rmtree(base)


def _warm_up(base: Path, commands: list[list[str]]) -> None:
    """Run each command once on a scratch database, so the forked child imports nothing."""
    scratch = base / "scratch" / "radar.db"
    open_sync(scratch).close()
    for cmd in commands:
        _run(["--db", str(scratch), *cmd])


def test_a_read_only_database_folder_is_one_line_exit_2(shared_dir: Path) -> None:
    folder = shared_dir / "ro"
    db = folder / "radar.db"
    open_sync(db).close()
    _warm_up(shared_dir, [["alerts", "ack", "1"], ["alerts", "list"]])
    db.chmod(0o644)
    folder.chmod(0o555)
    for cmd in (["alerts", "ack", "1"], ["alerts", "list"]):
        code, err = _run_unprivileged(["--db", str(db), *cmd])
        assert code == 2, err
        assert err == (f"radar: error: database {db} is read-only (attempt to write a readonly database); make "
                       f"the file, its -wal/-shm files and the folder {folder} writable by this user, or pass "
                       "--db a writable path\n")
    assert sorted(p.name for p in folder.iterdir()) == ["radar.db"]


def test_a_file_that_is_not_a_database_is_one_line_exit_2(tmp_path: Path) -> None:
    junk = tmp_path / "radar.db"
    junk.write_bytes(b"definitely not sqlite " * 300)
    code, out, err = _run(["--db", str(junk), "alerts", "list"])
    assert (code, out) == (2, "")
    assert err.startswith(f"radar: error: database {junk} is corrupt: SQLite reports: file is not a database. "
                          "Do not trade on it")
    assert err.count("\n") == 1 and "Traceback" not in err


def test_a_raw_sqlite_full_error_escaping_a_command_is_mapped_by_main(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "radar.db"

    def fill_up(args) -> int:
        conn = sqlite3.connect(args.db)
        conn.execute("CREATE TABLE t (x TEXT)")
        conn.execute("PRAGMA max_page_count = 2")
        conn.executemany("INSERT INTO t VALUES (?)", [("x" * 1000,)] * 100)  # SQLite's real SQLITE_FULL
        return 0

    monkeypatch.setattr(health_cmd, "cmd_health", fill_up)
    code, _, err = _run(["--db", str(db), "health"])
    assert code == 2
    assert err == (f"radar: error: database {db}: the disk is full (or the database hit its size limit); "
                   f"free space on the disk of {tmp_path}, then retry\n")


def test_a_raw_permission_error_escaping_a_command_names_the_file(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    def denied(args) -> int:
        raise PermissionError(13, "Permission denied", str(tmp_path / "report.json"))

    monkeypatch.setattr(health_cmd, "cmd_health", denied)
    code, _, err = _run(["--db", str(tmp_path / "radar.db"), "health"])
    assert code == 2
    assert err == (f"radar: error: file {tmp_path / 'report.json'}: cannot write (permission denied); make "
                   f"{tmp_path} writable by this user\n")


def test_an_unrelated_os_error_keeps_its_traceback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def reset(args) -> int:
        raise ConnectionResetError(104, "Connection reset by peer")

    monkeypatch.setattr(health_cmd, "cmd_health", reset)
    with pytest.raises(ConnectionResetError):
        _run(["--db", str(tmp_path / "radar.db"), "health"])
