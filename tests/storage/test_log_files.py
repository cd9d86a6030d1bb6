"""Log folder 0700 and log files 0600, whatever the umask; existing ones tightened when Radar owns them."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.storage.errors import DatabaseUnopenable, storage_error
from core.storage.log_files import create_private_file, ensure_private_dir, private_log_handler


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """umask 000: without explicit modes, new folders would be 0777 and files 0666."""
    old = os.umask(0)
    yield
    os.umask(old)


def test_handler_creates_folder_0700_and_file_0600_and_appends(tmp_path: Path, loose_umask: None) -> None:
    log_file = tmp_path / "data" / "logs" / "radar-run.jsonl"
    handler = private_log_handler(log_file)
    try:
        assert isinstance(handler, logging.FileHandler)  # tui.hosting keeps FileHandlers when muting the terminal
        handler.emit(logging.LogRecord("radar", logging.INFO, __file__, 1, "hello", None, None))
    finally:
        handler.close()
    assert _mode(log_file.parent) == 0o700 and _mode(log_file.parent.parent) == 0o700
    assert _mode(log_file) == 0o600
    handler = private_log_handler(log_file)
    handler.emit(logging.LogRecord("radar", logging.INFO, __file__, 1, "again", None, None))
    handler.close()
    assert log_file.read_text().splitlines() == ["hello", "again"]


def test_existing_folder_and_file_are_tightened(tmp_path: Path) -> None:
    folder = tmp_path / "logs"
    folder.mkdir()
    folder.chmod(0o755)
    log_file = folder / "radar-run.jsonl"
    log_file.write_text("old line\n")
    log_file.chmod(0o644)
    private_log_handler(log_file).close()
    assert (_mode(folder), _mode(log_file)) == (0o700, 0o600)
    assert log_file.read_text() == "old line\n"


def test_an_operator_folder_is_not_tightened_when_asked_not_to(tmp_path: Path) -> None:
    folder = tmp_path / "home"
    folder.mkdir()
    folder.chmod(0o755)
    private_log_handler(folder / "radar.jsonl", tighten_folder=False).close()
    assert (_mode(folder), _mode(folder / "radar.jsonl")) == (0o755, 0o600)


def test_a_shared_sticky_folder_is_never_tightened(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    ensure_private_dir(shared)
    assert _mode(shared) == 0o1777


def test_create_private_file_keeps_content(tmp_path: Path) -> None:
    f = tmp_path / "x.jsonl"
    f.write_text("kept\n")
    f.chmod(0o666)
    create_private_file(f)
    assert (_mode(f), f.read_text()) == (0o600, "kept\n")


def test_a_log_folder_below_a_regular_file_is_an_os_error_the_cli_words(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(NotADirectoryError) as info:
        private_log_handler(blocker / "logs" / "radar-run.jsonl")
    err = storage_error(info.value, tmp_path / "radar.db")
    assert isinstance(err, DatabaseUnopenable) and "cannot open or create it (not a directory)" in str(err)
