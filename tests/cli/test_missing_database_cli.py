"""`radar alerts ...` and `radar health` on a database that does not exist say so and create nothing."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

from core.cli.main import main


def _run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("cmd, name", [
    (["alerts", "list"], "radar alerts list"),
    (["alerts", "list", "--json"], "radar alerts list"),
    (["alerts", "ack", "3"], "radar alerts ack"),
    (["alerts", "snooze", "3", "2h"], "radar alerts snooze"),
])
def test_alerts_on_a_missing_database_exit_2_and_create_nothing(tmp_path: Path, cmd: list[str], name: str) -> None:
    db = tmp_path / "nowhere" / "radar.db"
    code, out, err = _run(["--db", str(db), *cmd])
    assert (code, out) == (2, "")
    assert err == (f"radar: error: database {db} does not exist, so {name} has nothing to work on; check --db "
                   "(or XDG_DATA_HOME), or start an engine with `radar run` to create it\n")
    assert list(tmp_path.iterdir()) == []


def test_a_bad_snooze_duration_is_still_reported_first(tmp_path: Path) -> None:
    code, _, err = _run(["--db", str(tmp_path / "radar.db"), "alerts", "snooze", "3", "soon"])
    assert code == 2 and "does not exist" not in err
    assert list(tmp_path.iterdir()) == []


def test_health_on_a_missing_database_exits_1_and_creates_nothing(tmp_path: Path) -> None:
    db = tmp_path / "nowhere" / "radar.db"
    code, out, err = _run(["--db", str(db), "health"])
    assert (code, err) == (1, "")
    assert out.strip() == f"no engine running: database {db} does not exist"
    code, out, _ = _run(["--db", str(db), "health", "--json"])
    assert code == 1 and '"overall": "no_engine"' in out
    assert list(tmp_path.iterdir()) == []


def test_health_on_a_file_that_is_not_a_database_is_one_line_exit_1(tmp_path: Path) -> None:
    junk = tmp_path / "radar.db"
    junk.write_bytes(b"garbage " * 1000)
    code, out, err = _run(["--db", str(junk), "health"])
    assert (code, out) == (1, "")
    assert err.startswith(f"radar: error: database {junk} is corrupt: SQLite reports: file is not a database. ")
    assert err.count("\n") == 1
