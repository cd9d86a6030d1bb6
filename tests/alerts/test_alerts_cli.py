"""`radar alerts list|ack|snooze` on the database, and a running engine seeing a CLI change from another process."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import sys
from pathlib import Path

import pytest

from core.alerts import store
from core.alerts.engine import AlertEngine
from core.alerts.model import Alert, AlertState
from core.alerts.policy import AlertConfig
from core.cli.main import main
from core.model.clock import ManualClock
from core.storage.db import open_sync

PROJECT_ROOT = Path(__file__).resolve().parents[2]
T0 = 1_767_225_600_000  # 2026-01-01 00:00 UTC


def _run(argv: list[str]) -> tuple[int, str, str]:
    """main(argv) in-process with stdout/stderr captured."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def _stored(db: Path, alert_id: int) -> Alert:
    conn = open_sync(db)
    try:
        alert = store.get(conn, alert_id)
    finally:
        conn.close()
    assert alert is not None
    return alert


@pytest.fixture
async def seeded(db_path: Path) -> dict[str, int]:
    """Four alerts raised by an engine (closed again): ids by name."""
    eng = await AlertEngine.open(db_path, clock=ManualClock(T0))
    try:
        ids = {
            "kill": (await eng.raise_alert("kill_switch", "critical", "risk", "kill switch engaged")).id,
            "stale": (await eng.raise_alert("feed.stale", "warning", "feed", "BTC feed stale")).id,
            "job": (await eng.raise_alert("job.fail", "error", "jobs", "sweep failed")).id,
            "gone": (await eng.raise_alert("recon", "info", "reconcile", "order adopted")).id,
        }
        await eng.raise_alert("feed.stale", "warning", "feed", "BTC feed stale")
        await eng.resolve("recon", "reconcile")
    finally:
        await eng.close()
    return ids


def _table_ids(text: str) -> list[int]:
    """The id column of a Rich table."""
    return [int(line.split("│")[1]) for line in text.splitlines() if line.startswith("│")]


def test_list_shows_unresolved_alerts_most_severe_first(db_path: Path, seeded: dict[str, int]) -> None:
    code, out, err = _run(["--db", str(db_path), "alerts", "list"])
    assert (code, err) == (0, "")
    assert _table_ids(out) == [seeded["kill"], seeded["job"], seeded["stale"]]
    assert "kill switch engaged" in out and "order adopted" not in out


def test_list_json_with_filters(db_path: Path, seeded: dict[str, int]) -> None:
    code, out, _ = _run(["--db", str(db_path), "alerts", "list", "--json", "--state", "all"])
    rows = json.loads(out)
    assert code == 0 and [r["id"] for r in rows] == [seeded["kill"], seeded["job"], seeded["stale"], seeded["gone"]]
    stale = rows[2]
    assert (stale["key"], stale["count"], stale["state"], stale["first_seen_ms"]) == ("feed.stale", 2, "active", T0)

    code, out, _ = _run(["--db", str(db_path), "alerts", "list", "--json", "--state", "resolved"])
    assert [r["id"] for r in json.loads(out)] == [seeded["gone"]]
    code, out, _ = _run(["--db", str(db_path), "alerts", "list", "--json", "--severity", "error",
                         "--severity", "critical"])
    assert [r["id"] for r in json.loads(out)] == [seeded["kill"], seeded["job"]]


def test_ack_changes_the_database_with_actor_cli(db_path: Path, seeded: dict[str, int]) -> None:
    code, out, err = _run(["--db", str(db_path), "alerts", "ack", str(seeded["kill"])])
    assert (code, out, err) == (0, f"acknowledged alert {seeded['kill']}: kill switch engaged\n", "")
    a = _stored(db_path, seeded["kill"])
    assert (a.state, a.changed_by) == (AlertState.ACKNOWLEDGED, "cli")
    code, out, _ = _run(["--db", str(db_path), "alerts", "list", "--json", "--state", "acknowledged"])
    assert [r["id"] for r in json.loads(out)] == [seeded["kill"]]


def test_snooze_sets_the_deadline(db_path: Path, seeded: dict[str, int]) -> None:
    code, out, err = _run(["--db", str(db_path), "alerts", "snooze", str(seeded["stale"]), "2h"])
    assert (code, err) == (0, "") and out.startswith(f"snoozed alert {seeded['stale']} until ")
    a = _stored(db_path, seeded["stale"])
    assert (a.state, a.changed_by) == (AlertState.SNOOZED, "cli")
    assert a.snoozed_until_ms - a.changed_ms == 2 * 3_600_000  # type: ignore[operator]


def test_ack_unknown_id_exits_2_with_a_clear_message(db_path: Path, seeded: dict[str, int]) -> None:
    code, out, err = _run(["--db", str(db_path), "alerts", "ack", "999"])
    assert (code, out, err) == (2, "", "radar: error: cannot acknowledge: no alert with id 999\n")
    code, out, err = _run(["--db", str(db_path), "alerts", "snooze", "999", "30m"])
    assert (code, err) == (2, "radar: error: cannot snooze: no alert with id 999\n")
    code, _, err = _run(["--db", str(db_path), "alerts", "ack", "x1"])
    assert code == 2 and "alert id must be a positive whole number, got 'x1'" in err


def test_ack_of_a_resolved_alert_exits_2(db_path: Path, seeded: dict[str, int]) -> None:
    code, _, err = _run(["--db", str(db_path), "alerts", "ack", str(seeded["gone"])])
    assert code == 2
    assert err.startswith(f"radar: error: cannot acknowledge alert {seeded['gone']} (order adopted): "
                          "it was resolved by reconcile at 2026-01-01 00:00:00 UTC")
    assert _stored(db_path, seeded["gone"]).state is AlertState.RESOLVED


def test_snooze_with_a_bad_duration_exits_2_naming_the_accepted_forms(db_path: Path,
                                                                       seeded: dict[str, int]) -> None:
    code, out, err = _run(["--db", str(db_path), "alerts", "snooze", str(seeded["stale"]), "5x"])
    assert (code, out) == (2, "")
    assert err == ("radar: error: invalid duration '5x': expected a whole number followed by m (minutes), "
                   "h (hours) or d (days), e.g. 30m, 2h, 1d\n")
    assert _stored(db_path, seeded["stale"]).state is AlertState.ACTIVE


async def test_running_engine_sees_an_ack_from_another_process_within_a_second(db_path: Path) -> None:
    engine = await AlertEngine.open(db_path, config=AlertConfig(poll_interval_s=0.3))
    try:
        alert = await engine.raise_alert("kill_switch", "critical", "risk", "kill switch engaged")
        acked = asyncio.Event()
        engine.listeners.add(lambda a: acked.set() if a.id == alert.id and a.changed_by == "cli" else None)
        engine.start()

        env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "core.cli.main", "--db", str(db_path), "alerts", "ack", str(alert.id),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env, cwd=PROJECT_ROOT)
        out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
        assert (proc.returncode, err.decode()) == (0, ""), err.decode()
        assert out.decode() == f"acknowledged alert {alert.id}: kill switch engaged\n"

        await asyncio.wait_for(acked.wait(), timeout=1.0)  # the requirement: visible within one second
        seen = engine.get(alert.id)
        assert seen is not None and (seen.state, seen.changed_by) == (AlertState.ACKNOWLEDGED, "cli")
        assert engine.unacknowledged_count() == 0
    finally:
        await engine.close()
