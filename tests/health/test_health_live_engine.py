"""`radar health` in another process while a headless engine runs (paced replay), and after it ended."""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.alerts.test_alerts_live_engine import SLICE, pace_for, query, start_engine, stop_engine, wait_for, write_slice
from tests.engine.test_engine_replay import radar

#: The subsystems the run services register (`core.engine.services.RunServices.open`).
SUBSYSTEMS = {"feed:BTC/USDT", "executor", "database", "loop", "jobs"}
STATUSES = {"ok", "degraded", "down"}


def health(db: Path, *extra: str):
    run = radar("--db", str(db), "health", *extra, timeout=60)
    return run


def test_health_of_a_running_engine_then_no_engine(tmp_path: Path) -> None:
    data = write_slice(tmp_path, *SLICE)
    proc, db, _ = start_engine(tmp_path, data, pace_for(data, 13.0))
    t0 = time.monotonic()
    try:
        # cheap wait (a direct read) until the engine's heartbeat carries every subsystem, so the
        # slow-to-start CLI (about 2 s of imports) is asked while the engine surely runs
        wait_for(lambda: SUBSYSTEMS <= {r[0] for r in query(db, "SELECT subsystem FROM health")}, 20,
                 "the engine's first health rows", proc)
        report = None
        while time.monotonic() - t0 < 30:
            if proc.poll() is not None:
                raise AssertionError(f"the engine exited early: {Path(proc.stderr_path).read_text()[-3000:]}")
            run = health(db, "--json")
            if run.stdout.strip():
                got = json.loads(run.stdout)
                names = {s["subsystem"] for s in got["subsystems"]}
                if got["engine_running"] and SUBSYSTEMS <= names:
                    report, code = got, run.returncode
                    break
            time.sleep(0.2)
        assert report is not None, "radar health never showed the running engine with its subsystems"
        assert proc.poll() is None, "the engine must still be running"
        assert code == 0, report
        assert report["overall"] in STATUSES and report["message"].startswith("engine running")
        beat = report["heartbeat"]
        assert beat["pid"] == proc.pid and beat["mode"] == "headless" and beat["stopped_ms"] is None
        by_name = {s["subsystem"]: s for s in report["subsystems"]}
        for name in SUBSYSTEMS:
            assert by_name[name]["status"] in STATUSES, by_name[name]
        assert by_name["executor"]["status"] == "ok" and by_name["database"]["status"] == "ok"
        assert by_name["loop"]["status"] == "ok" and by_name["jobs"]["status"] == "ok"
        print(f"\nhealth while running ({time.monotonic() - t0:.1f} s in): "
              + ", ".join(f"{n}={by_name[n]['status']}" for n in sorted(by_name)))
        proc.wait(timeout=60)                 # the replay ends at the end of its data
    finally:
        code, err = stop_engine(proc)
    assert code == 0, err[-3000:]
    assert "finished" in err

    after = health(db)
    assert after.returncode == 1, after.stdout + after.stderr
    assert "no engine running" in after.stdout
    after_json = health(db, "--json")
    assert after_json.returncode == 1
    got = json.loads(after_json.stdout)
    assert got["engine_running"] is False and got["overall"] == "no_engine"
    assert got["heartbeat"]["stopped_ms"] is not None
