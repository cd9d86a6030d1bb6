"""JobManager: queue, worker threads, progress events on the loop, cancel, restart recovery."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from core.jobs import CANCELLED, DONE, FAILED, QUEUED, RUNNING, JobEvent, JobManager, JobQueueFull
from core.jobs import store
from core.jobs.optimize_job import optimize_params, run_optimize_job
from core.optimize.results_store import list_results
from core.paths import DEFAULT_CONFIG_DIR
from core.storage.candle_store import write_candles
from core.storage.db import open_sync
from tests.optimize.test_walk_forward import PLANTED_GRID, PLANTED_WINNER, planted_candles

SERIES = [{"symbol": "PLANT/USDT", "market": "spot", "file": None}]


@pytest.fixture
def planted_db(db_path: Path) -> Path:
    """A database holding 200 days of planted 1h candles (PLANT/USDT spot)."""
    conn = open_sync(db_path)
    conn.execute("BEGIN")
    write_candles(conn, planted_candles(200))
    conn.execute("COMMIT")
    conn.close()
    return db_path


@pytest.fixture
def small_config(tmp_path: Path) -> Path:
    """The packaged config with the 6-combo planted grid for envelope_dca."""
    cfg = tmp_path / "config"
    shutil.copytree(DEFAULT_CONFIG_DIR, cfg)
    grids = yaml.safe_load((cfg / "param_grids.yaml").read_text())
    grids["param_grids"]["envelope_dca"] = PLANTED_GRID
    (cfg / "param_grids.yaml").write_text(yaml.safe_dump(grids))
    return cfg


def _params(config_dir: Path) -> dict:
    return optimize_params("envelope_dca", "1h", SERIES, is_days=30, oos_days=10, step_days=10,
                           config_dir=config_dir)


async def test_restart_marks_jobs_left_running_as_failed_interrupted(db_path: Path) -> None:
    conn = open_sync(db_path)
    running = store.create_job(conn, "optimize", {"a": 1})
    store.set_state(conn, running, RUNNING)
    queued = store.create_job(conn, "optimize", {"a": 2})
    done = store.create_job(conn, "optimize", {"a": 3})
    store.set_state(conn, done, DONE)
    dead = store.create_job(conn, "optimize", {"a": 4}, owner=f"{store.this_owner().rpartition(':')[0]}:999999999")
    store.set_state(conn, dead, RUNNING)
    conn.close()

    mgr = JobManager(db_path)
    assert await mgr.start() == [running, queued, dead]
    for job in (running, queued, dead):
        rec = mgr.get(job)
        assert (rec.state, rec.error) == (FAILED, "interrupted") and rec.finished_ms is not None
    assert mgr.get(done).state == DONE and mgr.get(done).error is None
    await mgr.close()


async def test_restart_leaves_the_jobs_of_another_live_process_alone(db_path: Path) -> None:
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        conn = open_sync(db_path)
        job = store.create_job(conn, "optimize", {}, owner=f"{store.this_owner().rpartition(':')[0]}:{other.pid}")
        store.set_state(conn, job, RUNNING)
        conn.close()
        mgr = JobManager(db_path)
        assert await mgr.start() == []
        assert mgr.get(job).state == RUNNING
        await mgr.close()
    finally:
        other.kill()
        other.wait()


async def test_progress_events_on_the_loop_monotone_ending_at_100(planted_db: Path, small_config: Path) -> None:
    loop_thread = threading.get_ident()
    events: list[JobEvent] = []
    threads: set[int] = set()

    def on_event(ev: JobEvent) -> None:
        threads.add(threading.get_ident())
        events.append(ev)

    mgr = JobManager(planted_db)
    await mgr.start()
    mgr.subscribe(on_event)
    job = mgr.submit("optimize", _params(small_config))
    rec = await mgr.wait(job)
    await mgr.close()

    assert threads == {loop_thread}                       # delivered on the event loop
    mine = [e for e in events if e.job_id == job]
    assert mine[0].state == QUEUED and mine[1].state == RUNNING and mine[-1].state == DONE
    pct = [e.percent for e in mine]
    assert pct == sorted(pct) and pct[-1] == 100.0
    windows = [e.window for e in mine if e.phase == "window"]
    assert windows == list(range(0, 18)) and {e.n_windows for e in mine if e.phase == "window"} == {17}
    assert all(e.eta_s is not None for e in mine if e.state == RUNNING and e.percent > 0)
    assert all(e.detail == "PLANT/USDT" for e in mine if e.phase in ("loading", "window", "statistics"))

    assert rec.state == DONE and rec.progress == 100.0 and rec.started_ms <= rec.finished_ms
    (summary,) = rec.result["results"]
    assert summary["grade"] == "A" and summary["best_params"] == PLANTED_WINNER and summary["windows"] == 17
    conn = open_sync(planted_db)
    (stored,) = list_results(conn)
    conn.close()
    assert stored.id == summary["result_id"] and stored.is_latest and stored.complete and stored.job_id == job


async def test_cancel_takes_effect_between_windows_and_keeps_the_latest(planted_db: Path,
                                                                       small_config: Path) -> None:
    mgr = JobManager(planted_db)
    await mgr.start()
    first = mgr.submit("optimize", _params(small_config))
    assert (await mgr.wait(first)).state == DONE
    await mgr.close()

    def gated(params: dict, ctx) -> dict:
        """The optimize runner, holding the worker after window 2 until cancel arrives."""
        report = ctx.progress

        def progress(frac, phase, window=0, n_windows=0, detail=""):
            report(frac, phase, window, n_windows, detail)
            if phase == "window" and window == 2:
                deadline = time.monotonic() + 20
                while not ctx.stop_requested():
                    assert time.monotonic() < deadline, "cancel never arrived"
                    time.sleep(0.005)

        ctx.progress = progress
        return run_optimize_job(params, ctx)

    mgr = JobManager(planted_db, runners={"optimize": gated})
    await mgr.start()
    job = -1

    def on_event(ev: JobEvent) -> None:
        if ev.job_id == job and ev.phase == "window" and ev.window == 2:
            assert mgr.cancel(job)

    mgr.subscribe(on_event)
    job = mgr.submit("optimize", _params(small_config))
    rec = await mgr.wait(job)
    await mgr.close()

    assert rec.state == CANCELLED and rec.error is None and rec.progress < 100.0
    conn = open_sync(planted_db)
    rows = {r.job_id: r for r in list_results(conn)}
    conn.close()
    partial, kept = rows[job], rows[first]
    assert not partial.complete and not partial.is_latest and partial.n_windows == 2     # stopped at the boundary
    assert kept.complete and kept.is_latest


async def test_event_loop_stays_responsive_while_a_job_runs(planted_db: Path) -> None:
    """The default 324-combo grid on 200 days: the job runs for a while in its thread."""
    mgr = JobManager(planted_db)
    await mgr.start()
    params = optimize_params("envelope_dca", "1h", SERIES, is_days=30, oos_days=10, step_days=10)
    job = mgr.submit("optimize", params)
    lags: list[float] = []
    ticks_running = 0

    async def ticker() -> None:
        nonlocal ticks_running
        while True:
            t = time.perf_counter()
            await asyncio.sleep(0.01)
            lags.append(time.perf_counter() - t - 0.01)
            ticks_running += mgr.get(job).state == RUNNING

    tick = asyncio.create_task(ticker())
    rec = await mgr.wait(job)
    tick.cancel()
    await mgr.close()
    assert rec.state == DONE
    # >= 50 ticks of 10 ms: the job ran for at least 0.5 s, so a loop blocked by it would lag that much
    assert ticks_running >= 50, "the job finished too fast to measure anything"
    assert max(lags) < 0.5, f"the event loop stalled for {max(lags):.3f} s"


async def test_queue_is_a_bounded_fifo_and_a_failure_does_not_stop_the_worker(db_path: Path) -> None:
    gate = threading.Event()
    ran: list[int] = []

    def runner(params: dict, ctx) -> dict:
        ran.append(params["n"])
        assert gate.wait(20)
        if params.get("fail"):
            raise ValueError("boom")
        return {"n": params["n"]}

    mgr = JobManager(db_path, runners={"t": runner}, max_queued=2)
    await mgr.start()
    started = asyncio.Event()
    mgr.subscribe(lambda ev: started.set() if ev.state == RUNNING else None)
    j1 = mgr.submit("t", {"n": 1, "fail": True})
    await asyncio.wait_for(started.wait(), 20)            # j1 left the queue: 2 places free
    j2 = mgr.submit("t", {"n": 2})
    j3 = mgr.submit("t", {"n": 3})
    with pytest.raises(JobQueueFull, match="2 waiting"):
        mgr.submit("t", {"n": 4})
    assert mgr.cancel(j3) and mgr.get(j3).state == CANCELLED
    gate.set()
    r1, r2, r3 = await mgr.wait(j1), await mgr.wait(j2), await mgr.wait(j3)
    assert not mgr.cancel(j2)                              # finished: nothing to cancel
    await mgr.close()
    assert (r1.state, r1.error) == (FAILED, "ValueError: boom")
    assert (r2.state, r2.result) == (DONE, {"n": 2})
    assert r3.state == CANCELLED and r3.started_ms is None
    assert ran == [1, 2]                                   # FIFO; the cancelled job never ran


async def test_submit_refuses_unknown_kinds_and_a_stopped_manager(db_path: Path) -> None:
    mgr = JobManager(db_path, runners={"t": lambda p, c: None})
    from core.errors import UsageError

    with pytest.raises(UsageError, match="not running"):
        mgr.submit("t", {})
    await mgr.start()
    with pytest.raises(UsageError, match="unknown job kind 'x'; known: t"):
        mgr.submit("x", {})
    await mgr.close()
    with pytest.raises(UsageError, match="not running"):
        mgr.submit("t", {})
