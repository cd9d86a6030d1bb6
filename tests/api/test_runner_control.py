"""Operator control per runner through the real engine API (a paper engine on real BTC 1h candles
released one at a time, `tests.support.control_harness`): pause / resume of one runner (entries
gated where the kill switch gates them, the position keeps its stop and take-profit), persisted
across a restart; force-exit with its reason; parameters applied at once when flat or at the
next flat moment (persisted, also across a restart), bad ones refused whole; research jobs
submitted and cancelled over the API; the audit reader; the `radar ctl` commands and
`radar optimize --apply` telling a running engine."""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
import time
from pathlib import Path

import pytest

from core.api.audit import read_audit
from core.api.client import EngineClient
from core.api.protocol import ApiError
from core.cli.main import main
from core.engine.engine import EngineParamsConflict
from core.events.bus import RiskRejection, RunnerControlEvent
from core.executor.state_store import StateStore
from core.jobs.manager import JobManager
from core.jobs.optimize_job import optimize_params
from core.paths import DEFAULT_CONFIG_DIR
from tests.support.control_harness import CLOSED_AT, IN_POSITION_AT, REOPENED_AT, GatedRun, btc_candles, eventually

SYM = "BTC/USDT"
DEFAULTS = {"ma_period": 7, "num_levels": 3, "envelope_start": 0.05, "envelope_step": 0.03, "sl_percent": 0.2}


@pytest.fixture(scope="module")
def candles():
    return btc_candles(400)


def entries(run: GatedRun) -> list[dict]:
    return [o for o in run.runner.grid_state()["open_orders"] if o["purpose"] == "entry"]


def entry_rows(db: Path) -> list[tuple]:
    """(client id, created_ts) of every entry order the runner ever recorded."""
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT client_id, created_ts FROM trading_orders WHERE purpose='entry' "
                            "ORDER BY rowid").fetchall()
    finally:
        conn.close()


def audit(db: Path) -> list:
    conn = sqlite3.connect(db)
    try:
        return read_audit(conn, 100)
    finally:
        conn.close()


def control_row(db: Path) -> dict | None:
    store = StateStore(db)
    try:
        return store.runner_control("envelope_dca", SYM, "1h", "paper")
    finally:
        store.close()


def first_level_ratio(run: GatedRun) -> float:
    """levels[0] / take-profit of the grid: 1 - envelope_start for envelope_dca."""
    g = run.runner.grid_state()
    return g["levels"][0] / g["take_profit"]


# ------------------------------------------------------------------------------------ pause / resume


async def test_pause_blocks_new_entries_keeps_the_stop_then_resume_places_them(tmp_path: Path, candles) -> None:
    async with GatedRun(tmp_path / "radar.db", candles, start=IN_POSITION_AT + 1) as run:
        r = run.runner
        pos = r.position()
        assert pos["qty"] > 0 and pos["levels_filled"] == 1 and len(entries(run)) == 2
        events = run.api.events((RunnerControlEvent, RiskRejection))
        async with EngineClient(run.socket, source="cli") as c:
            ans = await c.pause(SYM, reason="news at 14:00")
        assert ans["result"] == {"symbol": SYM, "strategy": "envelope_dca", "timeframe": "1h", "paused": True,
                                 "cancelled_entries": 2}
        assert "no new entries, 2 entry order(s) cancelled" in ans["message"]
        row = run.api.snapshot()["symbols"][SYM][0]
        assert row["state"] == "paused" and row["paused"]["reason"] == "news at 14:00"
        assert row["paused"]["by"].startswith("cli:")
        assert entries(run) == [] and r.position() == pos                      # stop and position kept
        assert [o["purpose"] for o in r.grid_state()["open_orders"]] == ["take_profit"]
        assert (await r.venue.fetch_stop()).price == pos["stop"]              # the venue holds the stop
        placed = len(entry_rows(run.db))

        await run.release(1)                      # the take-profit closes the cycle: managed as usual
        assert r.position()["qty"] == 0 and r.cycles[-1].exit_reason == "tp"
        await run.release(REOPENED_AT - CLOSED_AT + 4)     # a new cycle would open here: none does
        assert len(r.cycles) == 1 and r.position()["qty"] == 0 and entries(run) == []
        assert len(entry_rows(run.db)) == placed, "no entry order placed while paused"

        async with EngineClient(run.socket, source="cli") as c:
            with pytest.raises(ApiError) as err:
                await c.pause(SYM)
            assert (err.value.status, err.value.code) == (409, "engine_refused") and "paused already" in err.value.message
            ans = await c.resume_runner(SYM)
        assert ans["result"]["paused"] is False and run.api.snapshot()["symbols"][SYM][0]["state"] == "ready"
        assert not run.engine.kill_switch.active
        await run.release(1)
        assert len(entries(run)) == 3 and len(entry_rows(run.db)) == placed + 3      # entries again
        got = []
        while True:
            try:
                got.append(events.get_nowait())
            except asyncio.QueueEmpty:
                break
        kinds = [(type(e).__name__, getattr(e, "action", None) or e.reason) for e in got]
        assert ("RunnerControlEvent", "paused") in kinds and ("RunnerControlEvent", "resumed") in kinds
        assert ("RiskRejection", "paused") in kinds
    assert [(a.command, a.outcome) for a in reversed(audit(run.db))] == [
        ("pause", "ok"), ("pause", "refused"), ("resume_runner", "ok")]


async def test_pause_survives_a_restart(tmp_path: Path, candles) -> None:
    db = tmp_path / "radar.db"
    async with GatedRun(db, candles, start=IN_POSITION_AT + 1) as run:
        await run.api.pause("cli:tester", SYM, reason="maintenance")
    placed = len(entry_rows(db))
    assert control_row(db)["paused"] is True

    async with GatedRun(db, candles, start=IN_POSITION_AT + 1) as run:       # restart: resumes at its cursor
        r = run.runner
        assert r.cursor == run.ts(IN_POSITION_AT) and r.position()["qty"] > 0
        row = run.api.snapshot()["symbols"][SYM][0]
        assert row["state"] == "paused" and row["paused"] == {"by": "cli:tester", "reason": "maintenance",
                                                                "since_ms": control_row(db)["paused_ms"]}
        await run.release(8)                       # the exit and the candles where a new cycle would open
        assert r.cycles[-1].exit_reason == "tp" and r.position()["qty"] == 0
        assert entries(run) == [] and len(entry_rows(db)) == placed
        await run.api.resume_runner("cli:tester", SYM)
        await run.release(1)
        assert len(entries(run)) == 3
    assert control_row(db)["paused"] is False


async def test_forceexit_one_runner_cancels_its_entries_and_records_the_reason(tmp_path: Path, candles) -> None:
    async with GatedRun(tmp_path / "radar.db", candles, start=IN_POSITION_AT + 1) as run:
        r = run.runner
        async with EngineClient(run.socket, source="cli") as c:
            with pytest.raises(ApiError) as err:
                await c.flatten(SYM, strategy="momentum")
            assert (err.value.status, err.value.code) == (400, "bad_strategy")
            assert r.position()["qty"] > 0 and len(entries(run)) == 2            # refused whole
            ans = await c.flatten(SYM, strategy="envelope_dca")
        assert ans["result"] == {"flattened": 1, "cancelled_entries": 2, "symbols": [SYM]}
        assert r.position()["qty"] == 0 and entries(run) == []
        assert r.cycles[-1].exit_reason == "forceexit" and r.cycles[-1].exit_price == r.last_close
    conn = sqlite3.connect(run.db)
    (reason,) = conn.execute("SELECT reason FROM trading_fills WHERE kind='exit' ORDER BY id DESC LIMIT 1").fetchone()
    (cycle_reason,) = conn.execute("SELECT exit_reason FROM trading_cycles ORDER BY idx DESC LIMIT 1").fetchone()
    conn.close()
    assert reason == cycle_reason == "forceexit"


# ------------------------------------------------------------------------------------ parameters


async def test_apply_params_while_flat_rebuilds_the_grid_at_once(tmp_path: Path, candles) -> None:
    async with GatedRun(tmp_path / "radar.db", candles, start=CLOSED_AT + 1) as run:
        r = run.runner
        assert r.position()["qty"] == 0 and len(entries(run)) == 3
        assert first_level_ratio(run) == pytest.approx(0.95)
        old_prices = sorted(o["price"] for o in entries(run))
        async with EngineClient(run.socket, source="cli") as c:
            ans = await c.apply_params(SYM, {"envelope_start": 0.07, "num_levels": 2})
        want = {**DEFAULTS, "envelope_start": 0.07, "num_levels": 2}
        assert ans["result"]["state"] == "applied" and ans["result"]["params"] == want
        assert ans["result"]["pending_params"] is None and "applied now" in ans["message"]
        assert r.strategy.params == want and r.executor.strategy is r.strategy
        g = r.grid_state()
        assert first_level_ratio(run) == pytest.approx(0.93) and g["num_levels"] == 2
        prices = sorted(o["price"] for o in entries(run))
        assert len(prices) == 2 and prices == sorted(g["levels"]) and not set(prices) & set(old_prices)
        row = run.api.snapshot()["symbols"][SYM][0]
        assert row["params"] == want and row["pending_params"] is None
        await run.release(3)                          # trades on with the new grid
        assert r.grid_state()["num_levels"] == 2 and first_level_ratio(run) == pytest.approx(0.93)
    store = StateStore(run.db)
    try:
        assert store.runner_params("envelope_dca", SYM, "1h", "paper") == want
        ctl = store.runner_control("envelope_dca", SYM, "1h", "paper")
        assert ctl["params"] == want and ctl["config_params"] == DEFAULTS and ctl["pending_params"] is None
    finally:
        store.close()

    # strategies.yaml unchanged (the defaults): the restart keeps the params applied at runtime
    async with GatedRun(run.db, candles, start=CLOSED_AT + 4) as again:
        assert again.runner.strategy.params == want and again.runner.config_params == DEFAULTS
        await again.release(1)
        assert first_level_ratio(again) == pytest.approx(0.93)
    # strategies.yaml changed to something else since: the state is not restarted with other params
    other = GatedRun(run.db, candles, start=CLOSED_AT + 4, params={"ma_period": 9})
    with pytest.raises(EngineParamsConflict, match=r"applied at runtime by cli:.*gives \{'ma_period': 9"):
        await other.engine.start()


async def test_apply_params_in_position_waits_for_the_cycle_to_close(tmp_path: Path, candles) -> None:
    async with GatedRun(tmp_path / "radar.db", candles, start=IN_POSITION_AT) as run:
        r = run.runner
        await run.release(1)                                  # candle 37: the cycle opens
        assert r.position()["qty"] > 0
        levels_before = r.grid_state()["levels"]
        async with EngineClient(run.socket, source="cli") as c:
            ans = await c.apply_params(SYM, {"envelope_start": 0.08})
        want = {**DEFAULTS, "envelope_start": 0.08}
        assert ans["result"]["state"] == "pending" and ans["result"]["pending_params"] == want
        assert ans["result"]["params"] == DEFAULTS and "pending until flat" in ans["message"]
        assert run.api.snapshot()["symbols"][SYM][0]["pending_params"] == want
        assert r.grid_state()["levels"] == levels_before and r.position()["qty"] > 0      # nothing changed yet
        assert control_row(run.db)["pending_params"] == want

        await run.release(1)                                  # candle 38: take-profit, flat again -> applied
        assert r.cycles[-1].exit_reason == "tp" and r.position()["qty"] == 0
        assert r.strategy.params == want and first_level_ratio(run) == pytest.approx(0.92)
        assert run.api.snapshot()["symbols"][SYM][0]["pending_params"] is None
        assert sorted(o["price"] for o in entries(run)) == sorted(r.grid_state()["levels"])
        ctl = control_row(run.db)
        assert ctl["pending_params"] is None and ctl["params"] == want and ctl["applied_by"].startswith("cli:")


async def test_levels_change_only_after_the_cycle_closes_and_pending_survives_a_restart(tmp_path: Path,
                                                                                        candles) -> None:
    """Candle by candle: the grid keeps envelope_start 0.05 while the cycle is open, also across a
    restart, and moves to the new one on the candle that closes the cycle."""
    db = tmp_path / "radar.db"
    async with GatedRun(db, candles, start=REOPENED_AT + 1) as run:          # cycle 2 opened at candle 39
        r = run.runner
        assert r.position()["qty"] > 0
        ans = await run.api.apply_params("cli:tester", SYM, {"envelope_start": 0.07})
        assert ans["state"] == "pending"
    async with GatedRun(db, candles, start=REOPENED_AT + 1) as run:          # restart with the params pending
        r = run.runner
        want = {**DEFAULTS, "envelope_start": 0.07}
        assert r.pending_params == want and run.api.snapshot()["symbols"][SYM][0]["pending_params"] == want
        seen = []
        while r.position()["qty"] > 0:
            assert first_level_ratio(run) == pytest.approx(0.95) and r.strategy.params == DEFAULTS
            await run.release(1)
            seen.append(r.cursor)
        assert r.cycles[-1].close_time == r.cursor and len(seen) >= 2       # closed on this very candle
        assert first_level_ratio(run) == pytest.approx(0.93) and r.pending_params is None


async def test_a_single_position_runner_pauses_too_and_refuses_runtime_params(tmp_path: Path, candles) -> None:
    """bollinger_mr on the same candles (its backtest: a trade in candle 38, one from candle 39 to its
    stop at 55, then trades opening at 98, 117, 121 and 150): paused in the second, it ends by its
    stop and no other opens until resumed."""
    async with GatedRun(tmp_path / "radar.db", candles, start=46, strategy="bollinger_mr") as run:
        r = run.runner
        pos = r.position()
        assert pos["qty"] > 0 and pos["stop"] is not None
        async with EngineClient(run.socket, source="cli") as c:
            await c.pause(SYM)
            with pytest.raises(ApiError) as err:
                await c.apply_params(SYM, {"bb_period": 30})
        assert (err.value.status, err.value.code) == (400, "bad_params") and "single-position strategy" in err.value.message
        assert run.api.snapshot()["symbols"][SYM][0]["state"] == "paused"
        await run.release(130 - 46)
        assert len(r.cycles) == 2 and r.cycles[-1].exit_reason == "sl" and r.position()["qty"] == 0
        assert r.cycles[-1].close_time == run.ts(55)
        await run.api.resume_runner("cli:tester", SYM)
        await run.release(160 - 130)
        assert len(r.cycles) >= 3 or r.position()["qty"] > 0, "entries again once resumed"


@pytest.mark.parametrize("params, words", [
    ({"ma_period": 0}, "envelope_dca ma_period: expected a value >= 1, got 0"),
    ({"envelope_start": 5}, "expected a value < 1, got 5 (a fraction, not percent"),
    ({"ma_period": 7.5}, "ma_period: expected"),
    ({"envelope_start": 0.5, "num_levels": 30}, "envelope_start + (num_levels - 1) * envelope_step < 1"),
    ({"foo": 1}, "unknown parameter(s) 'foo' for envelope_dca; expected: ma_period, num_levels"),
    ({}, "give at least one parameter"),
])
async def test_bad_params_are_refused_and_nothing_is_stored(tmp_path: Path, candles, params: dict,
                                                            words: str) -> None:
    async with GatedRun(tmp_path / "radar.db", candles, start=CLOSED_AT + 1) as run:
        r = run.runner
        before = (r.grid_state(), dict(r.strategy.params))
        async with EngineClient(run.socket, source="cli") as c:
            with pytest.raises(ApiError) as err:
                await c.apply_params(SYM, params)
        assert (err.value.status, err.value.code) == (400, "bad_params") and words in err.value.message, err.value
        assert (r.grid_state(), dict(r.strategy.params)) == before and r.pending_params is None
        assert control_row(run.db) is None
        (row,) = audit(run.db)
        assert (row.command, row.outcome, row.status) == ("apply_params", "refused", 400)


# ------------------------------------------------------------------------------------ jobs


def _fake_optimize(params: dict, ctx) -> dict:
    """Stands in for the walk-forward: runs until cancelled."""
    ctx.progress(0.1, "window", 1, 10)
    while not ctx.stop_requested():
        time.sleep(0.01)
    ctx.check_cancelled()
    return {}


async def test_job_submit_and_cancel_over_the_api(tmp_path: Path, candles) -> None:
    db = tmp_path / "radar.db"
    async with GatedRun(db, candles, start=CLOSED_AT + 1, jobs=False) as run:
        mgr = JobManager(db, runners={"optimize": _fake_optimize}, mode="thread")
        await mgr.start()
        run.api.jobs = mgr
        try:
            series = [{"symbol": SYM, "market": "spot", "file": None}]
            form = optimize_params("envelope_dca", "1h", series, is_days=60, oos_days=20, step_days=20)
            async with EngineClient(run.socket, source="console") as c:
                ans = await c.job_submit(form)
                job_id = ans["result"]["id"]
                assert ans["result"]["state"] == "queued" and ans["result"]["params"] == form
                assert ans["message"] == f"job {job_id} queued: optimize envelope_dca {SYM} 1h"
                await eventually(lambda: mgr.get(job_id).state == "running", 10, "the job to run")
                ans = await c.job_cancel(job_id)
                assert ans["result"] == {"id": job_id, "state": "cancelling"}
                rec = await asyncio.wait_for(mgr.wait(job_id), 10)
                assert rec.state == "cancelled"
                for bad, status, code, words in [
                    ({**form, "strategy": "nope"}, 400, "bad_job", "the walk-forward supports envelope_dca"),
                    ({**form, "window": 3}, 400, "bad_job", "unknown job argument(s) 'window'"),
                    ({**form, "timeframe": "7x"}, 400, "bad_job", "unknown timeframe '7x'"),
                    ({**form, "is_days": 0}, 400, "bad_job", "is_days must be an integer >= 1"),
                    ({**form, "series": [{"symbol": SYM, "market": "spot", "file": "/nope.json"}]}, 400, "bad_job",
                     "data file '/nope.json' does not exist"),
                ]:
                    with pytest.raises(ApiError) as err:
                        await c.job_submit(bad)
                    assert (err.value.status, err.value.code) == (status, code) and words in err.value.message
                with pytest.raises(ApiError) as err:
                    await c.command("job_submit", kind="backtest", params=form)
                assert err.value.code == "bad_job" and "only 'optimize' jobs" in err.value.message
                with pytest.raises(ApiError) as err:
                    await c.job_cancel(job_id + 100)
                assert (err.value.status, err.value.code) == (404, "unknown_job")
                with pytest.raises(ApiError) as err:
                    await c.job_cancel(job_id)
                assert (err.value.status, err.value.code) == (409, "job_finished")
            assert [j.id for j in mgr.jobs()] == [job_id]                  # the refused ones made no job
        finally:
            await mgr.close()
    rows = audit(db)
    assert [(a.command, a.outcome, a.source) for a in rows[-2:]] == [("job_cancel", "ok", "console"),
                                                                     ("job_submit", "ok", "console")]


# ------------------------------------------------------------------------------------ audit reader and CLI


def _cli(capsys: pytest.CaptureFixture, argv: list[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


async def cli(capsys: pytest.CaptureFixture, *argv: str) -> tuple[int, str, str]:
    """`radar ARGV` in a thread (its own event loop), while the engine runs on this one."""
    return await asyncio.to_thread(_cli, capsys, list(argv))


async def test_ctl_runner_commands_and_the_audit_reader(tmp_path: Path, candles,
                                                        capsys: pytest.CaptureFixture) -> None:
    async with GatedRun(tmp_path / "radar.db", candles, start=IN_POSITION_AT + 1) as run:
        db = str(run.db)
        code, out, err = await cli(capsys, "--db", db, "ctl", "pause", SYM, "--reason", "from the cli")
        assert (code, err) == (0, "") and out.startswith("paused envelope_dca on BTC/USDT (1h)") and "(audit #1)" in out
        code, out, err = await cli(capsys, "--db", db, "ctl", "apply-params", SYM, "envelope_start=0.08",
                                   "ma_period=9")
        assert code == 0 and "params pending until flat" in out and "ma_period=9" in out
        code, out, err = await cli(capsys, "--db", db, "ctl", "apply-params", SYM, "ma_period=zero")
        assert code == 2 and "bad_params" in err and "ma_period: expected" in err
        code, out, err = await cli(capsys, "--db", db, "ctl", "resume-runner", SYM, "--strategy", "envelope_dca")
        assert code == 0 and out.startswith("resumed envelope_dca on BTC/USDT")
        code, out, err = await cli(capsys, "--db", db, "ctl", "job-cancel", "7")
        assert code == 2 and "404 unknown_job" in err and "no job with id 7" in err
        code, out, err = await cli(capsys, "--db", db, "ctl", "flatten", SYM)
        assert code == 0 and out.startswith("force-exit: 1 position(s) closed at market on BTC/USDT")
        r = run.runner
        assert r.position()["qty"] == 0 and r.cycles[-1].exit_reason == "forceexit"
        assert r.strategy.params["ma_period"] == 7 and r.pending_params["ma_period"] == 9
        await run.release(1)                              # the next candle, flat: the pending params apply
        assert r.strategy.params == {**DEFAULTS, "envelope_start": 0.08, "ma_period": 9} and r.pending_params is None

        async with EngineClient(run.socket, readonly=True, source="console") as c:
            rows = await c.audit(3)
            with pytest.raises(ApiError) as e:
                await c.audit(0)
            assert e.value.code == "bad_argument"
        assert [r["command"] for r in rows] == ["flatten", "job_cancel", "resume_runner"]
        assert [r["id"] for r in rows] == sorted((r["id"] for r in rows), reverse=True)          # newest first
        assert rows[0]["source"] == "cli" and rows[0]["outcome"] == "ok" and rows[0]["args"] == {"symbol": SYM}
        assert rows[1]["outcome"] == "refused" and rows[1]["status"] == 404

        code, out, err = await cli(capsys, "--db", db, "ctl", "audit", "--limit", "6")
        lines = out.splitlines()
        assert code == 0 and len(lines) == 6
        assert [ln.split()[6] for ln in lines] == ["flatten", "job_cancel", "resume_runner", "apply_params",
                                                   "apply_params", "pause"]
        assert lines[0].startswith("#6 ") and " UTC  " in lines[0] and " cli " in lines[0]
        assert '{"symbol":"BTC/USDT"}  -> ok 200: force-exit' in lines[0]
        assert "-> refused 400: apply_params: envelope_dca ma_period: expected" in lines[3]
        assert lines[1].endswith("-> refused 404: job_cancel: no job with id 7")
        code, out, err = await cli(capsys, "--db", db, "ctl", "audit", "--json", "--limit", "1")
        (only,) = json.loads(out)
        assert only["command"] == "flatten" and only["ts_ms"] <= only["done_ms"]
    code, out, err = await cli(capsys, "--db", db, "ctl", "audit")
    assert code == 1 and "no engine running" in out + err


# ------------------------------------------------------------------------------------ optimize --apply


def _store_result(db: Path, params: dict) -> int:
    """One graded walk-forward result of envelope_dca BTC/USDT 1h (what `radar optimize` stores)."""
    conn = sqlite3.connect(db)
    try:
        cur = conn.execute(
            "INSERT INTO optimization_results (strategy, symbol, market, timeframe, complete, is_latest, grade, "
            "score, oos_sharpe, consistency, oos_is_ratio, dsr, param_stability, best_params, n_windows, n_combos, "
            "is_days, oos_days, step_days, created_ms, detail) VALUES ('envelope_dca', ?, 'spot', '1h', 1, 0, 'B', "
            "70, 1.2, 0.8, 0.7, 0.9, 0.8, ?, 4, 324, 60, 20, 20, ?, '{}')",
            (SYM, json.dumps(params), int(time.time() * 1000)))
        conn.commit()
        return int(cur.lastrowid)
    finally:
        conn.close()


@pytest.fixture
def config_with_btc(tmp_path: Path) -> Path:
    cfg = tmp_path / "config"
    shutil.copytree(DEFAULT_CONFIG_DIR, cfg)
    assets = cfg / "assets.yaml"
    assets.write_text(assets.read_text() + "  - symbol: BTC/USDT\n    market: spot\n    timeframes: [\"1h\"]\n")
    return cfg


async def test_optimize_apply_tells_the_running_engine(tmp_path: Path, candles, config_with_btc: Path,
                                                       capsys: pytest.CaptureFixture) -> None:
    db = tmp_path / "radar.db"
    best = {**DEFAULTS, "ma_period": 12, "envelope_start": 0.06}
    async with GatedRun(db, candles, start=IN_POSITION_AT + 1) as run:
        rid = _store_result(db, best)
        code, out, err = await cli(capsys, "--config-dir", str(config_with_btc), "--db", str(db), "optimize",
                                   "--apply", str(rid))
        assert code == 0, err
        assert f"wrote envelope_dca override for {SYM}" in out
        assert f"engine on {run.socket}: pending until flat" in out
        assert run.runner.pending_params == best and run.runner.strategy.params == DEFAULTS
        await run.release(1)                              # the cycle closes: applied
        assert run.runner.strategy.params == best and run.runner.pending_params is None

        rid2 = _store_result(db, {**best, "sl_percent": 0.15})
        code, out, err = await cli(capsys, "--config-dir", str(config_with_btc), "--db", str(db), "optimize",
                                   "--apply", str(rid2), "--json")
        got = json.loads(out)
        assert code == 0 and got["engine"]["state"] == "applied" and "applied now" in got["engine"]["message"]
        assert run.runner.strategy.params["sl_percent"] == 0.15
        assert [(a.command, a.outcome, a.source) for a in audit(db)] == [("apply_params", "ok", "cli")] * 2

    # strategies.yaml now gives those params: the restart starts with them, nothing pending
    async with GatedRun(db, candles, start=CLOSED_AT + 2, params={**best, "sl_percent": 0.15}) as again:
        assert again.runner.strategy.params == {**best, "sl_percent": 0.15} and again.runner.pending_params is None
    rid3 = _store_result(db, {**best, "num_levels": 2})
    code, out, err = await cli(capsys, "--config-dir", str(config_with_btc), "--db", str(db), "optimize", "--apply",
                               str(rid3))
    assert code == 0 and "the running engine (none) reads strategies.yaml at its next start" in out
