"""Research campaigns (core.optimize.campaign): plan, local pool, ranking, fail-closed, and Ray.

Every run is cut into window-batch tasks (core.optimize.campaign_batches); the results equal
the plain walk-forward of each run. The Ray part starts ONE local Ray per module (`ray.init(num_cpus=2, include_dashboard=False)`)
and runs the same campaign — 2 strategies (envelope_dca, momentum) × 5 symbols × 1h on short ranges of the real
binance-spot candles — locally and on Ray: the stored results must be identical except
ids, job ids and creation times.
"""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path

import pytest

from core.errors import UsageError
from core.optimize.campaign import (
    CampaignCancelled,
    CampaignError,
    CampaignPlan,
    RunSpec,
    campaign_params,
    run_campaign,
    run_campaign_job,
)
from core.storage.db import open_sync
from tests.support.shared_data import shared_file

SYMBOLS = ("BTC", "ETH", "SOL", "DOGE", "LINK")
STRATEGIES = ("envelope_dca", "momentum")        # a grid strategy and a single-position one
#: A short campaign: 50 days (SOL trades from 2020-08), 20/10/10-day windows, 12 LHS points, 50 bootstrap sims.
SHORT = {"start_ms": 1_609_459_200_000, "end_ms": 1_609_459_200_000 + 50 * 86_400_000, "is_days": 20, "oos_days": 10,
             "step_days": 10, "max_points": 12, "n_boot": 50}


def _series() -> list[dict]:
    return [{"symbol": f"{s}/USDT", "market": "spot", "file": str(shared_file(f"binance-spot/{s}_USDT-1h.json.gz"))}
            for s in SYMBOLS]


def _plan(**kw) -> CampaignPlan:
    return CampaignPlan.build(STRATEGIES, _series(), ["1h"], **{**SHORT, **kw})


def stored(db: Path) -> list[dict]:
    """Every stored result of `db` with its combo rows, minus ids, job ids and times, in plan order."""
    conn = open_sync(db)
    try:
        conn.row_factory = None
        cols = [r[1] for r in conn.execute("PRAGMA table_info(optimization_results)")]
        out = []
        for row in conn.execute("SELECT * FROM optimization_results ORDER BY id"):
            d = dict(zip(cols, row))
            rid = d.pop("id")
            for k in ("job_id", "created_ms"):
                d.pop(k)
            d["detail"] = json.loads(d["detail"])
            ccols = [r[1] for r in conn.execute("PRAGMA table_info(wfo_combo_results)")]
            d["combos"] = [{k: v for k, v in zip(ccols, c) if k not in ("id", "result_id")}
                           for c in conn.execute("SELECT * FROM wfo_combo_results WHERE result_id = ? ORDER BY combo",
                                                 (rid,))]
            out.append(d)
        return out
    finally:
        conn.close()


# -- plan ---------------------------------------------------------------------------------------
def test_plan_runs_every_strategy_symbol_timeframe_in_order():
    plan = CampaignPlan.build(("envelope_dca", "envelope_dca_short"), [{"symbol": "A/USDT", "market": "spot"},
                                           {"symbol": "B/USDT", "market": "spot"}], ["1h", "4h"])
    names = [r.name for r in plan.runs()]
    assert names == ["envelope_dca A/USDT 1h", "envelope_dca B/USDT 1h", "envelope_dca A/USDT 4h",
                     "envelope_dca B/USDT 4h", "envelope_dca_short A/USDT 1h", "envelope_dca_short B/USDT 1h",
                     "envelope_dca_short A/USDT 4h", "envelope_dca_short B/USDT 4h"]
    assert [r.index for r in plan.runs()] == list(range(8))
    assert CampaignPlan.from_json(json.loads(json.dumps(plan.to_json()))) == plan
    # runs of different strategies on one series share its candles
    assert plan.runs()[0].series_key == plan.runs()[4].series_key


@pytest.mark.parametrize("kw, msg", [
    ({"strategies": ["nope"]}, "'nope'"),
    ({"strategies": ["funding"]}, "not a perpetual"),
    ({"strategies": ["envelope_dca", "envelope_dca"]}, "given twice"),
    ({"timeframes": []}, "at least one"),
    ({"series": []}, "no series"),
    ({"series": [{"symbol": "A/USDT", "market": "spot"}, {"symbol": "A/USDT", "market": "spot"}]}, "twice"),
    ({"is_days": 0}, "is_days"),
])
def test_plan_refuses_bad_input(kw, msg):
    args = {"strategies": ["envelope_dca"], "series": [{"symbol": "A/USDT", "market": "spot"}], "timeframes": ["1h"]}
    args.update(kw)
    extra = {k: args.pop(k) for k in list(args) if k not in ("strategies", "series", "timeframes")}
    with pytest.raises(UsageError, match=msg):
        CampaignPlan.build(args["strategies"], args["series"], args["timeframes"], **extra)


def test_unknown_backend_is_refused(tmp_path):
    with pytest.raises(UsageError, match="backend"):
        run_campaign(_plan(), db_path=tmp_path / "r.db", backend="spark")


# -- local pool ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    """The short campaign in the local pool (2 workers), stored in its own database."""
    db = tmp_path_factory.mktemp("local") / "radar.db"
    events: list[tuple] = []
    rep = run_campaign(_plan(), db_path=db, backend="local", workers=2, git_rev="test",
                       progress=lambda *a: events.append(a))
    return db, rep, events


def test_local_campaign_stores_and_ranks_every_run(local_run):
    db, rep, events = local_run
    rows = stored(db)
    assert len(rows) == len(rep.runs) == 10
    assert [(r["strategy"], r["symbol"]) for r in rows] == [(s, f"{x}/USDT") for s in STRATEGIES for x in SYMBOLS]
    assert all(r["is_latest"] == 1 and r["complete"] == 1 for r in rows)
    ranking = rep.ranking
    assert [r["rank"] for r in ranking] == list(range(1, 11))
    keys = [("ABCDF".index(r["grade"]), -r["score"]) for r in ranking]
    assert keys == sorted(keys)
    for r in ranking:
        assert set(r["criteria"]) >= {"oos_sharpe", "consistency", "oos_is_ratio", "dsr", "param_stability"}
        assert r["result_id"] is not None and r["sub_scores"]
    js = json.loads(json.dumps(rep.to_json()))
    assert js["campaign"]["runs"] == 10 and js["campaign"]["backend"] == "local"
    assert len(js["ranking"]) == 10
    # progress streamed per window, ending at 1 with every run finished
    assert any("window" in e[4] for e in events)
    fr = [e[0] for e in events]
    assert fr == sorted(fr) and math.isclose(fr[-1], 1.0) and events[-1][2] == 10


def test_local_pool_equals_in_process_walk_forward(local_run, tmp_path):
    """The pool size changes nothing: a 1-process pool on a subset stores the same rows."""
    db, _, _ = local_run
    plan = CampaignPlan.build(["envelope_dca"], _series()[:2], ["1h"], **SHORT)
    db2 = tmp_path / "one.db"
    run_campaign(plan, db_path=db2, backend="local", workers=1, git_rev="test")
    assert stored(db2) == [r for r in stored(db) if r["strategy"] == "envelope_dca"][:2]


def test_window_batches_change_nothing_and_equal_the_plain_walk_forward(local_run, tmp_path):
    """One window per task in a 1-process pool stores what the default batches stored, and that
    is what `walk_forward` of the run alone stores (the window-batch tasks reproduce it exactly)."""
    from core.optimize.campaign import load_series, strategy_setups
    from core.optimize.results_store import save_result
    from core.optimize.walk_forward import walk_forward

    db, rep, _ = local_run
    plan = CampaignPlan.build(["envelope_dca"], _series()[:1], ["1h"], **SHORT)
    one = run_campaign(plan, db_path=tmp_path / "b1.db", backend="local", workers=1, git_rev="test", window_batch=1)
    assert one.runs[0]["tasks"] == 2 * one.runs[0]["windows"] + 1 and rep.runs[0]["tasks"] < one.runs[0]["tasks"]
    want = [r for r in stored(db) if r["strategy"] == "envelope_dca"][:1]
    assert stored(tmp_path / "b1.db") == want
    spec = plan.runs()[0]
    setup = strategy_setups(plan)["envelope_dca"]
    res = walk_forward(load_series(spec, plan.start_ms, plan.end_ms, None), "envelope_dca", setup.grid,
                       base_params=setup.base_params, account=setup.account, settings=plan.settings(),
                       grading=setup.grading)
    conn = open_sync(tmp_path / "wf.db")
    try:
        save_result(conn, res, git_rev="test")
    finally:
        conn.close()
    assert stored(tmp_path / "wf.db") == want


def test_in_a_daemonic_process_runs_execute_in_process_with_the_same_results(local_run, tmp_path, monkeypatch):
    """A JobManager worker process is daemonic (no children allowed): the runs execute one by one in it."""
    import types

    import core.optimize.campaign as cp

    db, _, _ = local_run
    monkeypatch.setattr(cp.multiprocessing, "current_process", lambda: types.SimpleNamespace(daemon=True))
    plan = CampaignPlan.build([STRATEGIES[1]], _series()[3:], ["1h"], **SHORT)
    rep = run_campaign(plan, db_path=tmp_path / "d.db", backend="local", workers=2, git_rev="test")
    assert rep.where == "in-process"
    assert stored(tmp_path / "d.db") == [r for r in stored(db) if r["strategy"] == STRATEGIES[1]][3:]


def test_a_failing_run_is_named_and_nothing_is_stored(tmp_path):
    bad = _series()[:2]
    bad[1] = {**bad[1], "file": None, "symbol": "NOPE/USDT"}          # no such series in the (empty) store
    plan = CampaignPlan.build(["envelope_dca"], bad, ["1h"], **SHORT)
    db = tmp_path / "r.db"
    with pytest.raises(Exception, match="NOPE/USDT"):
        run_campaign(plan, db_path=db, backend="local", workers=2)
    assert not db.exists() or stored(db) == []


def test_a_task_error_names_the_run(tmp_path):
    """A run whose walk-forward raises (window longer than the data) fails the campaign by name."""
    plan = CampaignPlan.build(["envelope_dca"], _series()[:2], ["1h"], **{**SHORT, "is_days": 400})
    db = tmp_path / "r.db"
    with pytest.raises(CampaignError, match="campaign run envelope_dca (BTC|ETH)/USDT 1h failed") as ei:
        run_campaign(plan, db_path=db, backend="local", workers=2)     # both fail: the first to finish is named
    assert ei.value.runs in (["envelope_dca BTC/USDT 1h"], ["envelope_dca ETH/USDT 1h"])
    assert stored(db) == []


def test_campaign_as_a_job_reports_progress_and_stores(tmp_path):
    from core.jobs import DONE, JobManager

    db = tmp_path / "job.db"
    plan = CampaignPlan.build(["envelope_dca"], _series()[:2], ["1h"], **SHORT)

    async def go():
        mgr = JobManager(db, runners={"campaign": run_campaign_job})
        await mgr.start()
        evs = []
        mgr.subscribe(evs.append)
        try:
            jid = mgr.submit("campaign", campaign_params(plan, workers=2))
            rec = await mgr.wait(jid)
        finally:
            await mgr.close()
        return jid, rec, evs

    jid, rec, evs = asyncio.run(go())
    assert rec.state == DONE, rec.error
    assert rec.result["job_id"] == jid and len(rec.result["ranking"]) == 2
    assert any(e.phase == "window" or "window" in e.detail for e in evs)
    rows = stored(db)
    assert len(rows) == 2


def test_unreachable_ray_cluster_fails_closed(tmp_path, monkeypatch):
    """An address nobody answers on: a clear error naming it, nothing run (no Ray started here)."""
    ray = pytest.importorskip("ray")
    assert not ray.is_initialized()
    from core.optimize.ray_backend import connect

    with pytest.raises(CampaignError, match="127.0.0.1:1.*nothing was run"):
        connect("127.0.0.1:1")


# -- Ray ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield ray
    ray.shutdown()


def test_ray_campaign_equals_local(local_run, ray_local, tmp_path):
    db_local, rep_local, _ = local_run
    db = tmp_path / "ray.db"
    events: list[tuple] = []
    rep = run_campaign(_plan(), db_path=db, backend="ray", git_rev="test", progress=lambda *a: events.append(a))
    assert rep.backend == "ray"
    assert stored(db) == stored(db_local)
    strip = ("result_id", "task_seconds")
    assert [{k: v for k, v in r.items() if k not in strip} for r in rep.ranking] == \
           [{k: v for k, v in r.items() if k not in strip} for r in rep_local.ranking]
    assert any("window" in e[4] for e in events)
    assert events[-1][2] == 10 and math.isclose(events[-1][0], 1.0)


def test_ray_task_error_names_the_run(ray_local, tmp_path):
    plan = CampaignPlan.build(["envelope_dca_short"], _series()[1:3], ["1h"], **{**SHORT, "is_days": 400})
    db = tmp_path / "r.db"
    with pytest.raises(CampaignError, match="campaign run envelope_dca_short (ETH|SOL)/USDT 1h failed.*410 days"):
        run_campaign(plan, db_path=db, backend="ray")
    assert stored(db) == []


def test_ray_worker_death_names_the_run(ray_local, tmp_path, monkeypatch):
    """A task whose worker process dies (os._exit) fails the campaign naming that run."""
    import core.optimize.ray_backend as rb

    plan = CampaignPlan.build(["envelope_dca"], _series()[:1], ["1h"], **SHORT)
    monkeypatch.setattr(rb, "_task", _dying_task)
    db = tmp_path / "r.db"
    with pytest.raises(CampaignError, match="envelope_dca BTC/USDT 1h.*died"):
        run_campaign(plan, db_path=db, backend="ray")
    assert stored(db) == []


def _dying_task(spec: RunSpec, *_a):
    import os

    os._exit(3)


@pytest.mark.parametrize("backend", ["local", "ray"])
def test_cancel_stops_the_campaign_and_stores_nothing(backend, request, tmp_path):
    if backend == "ray":
        request.getfixturevalue("ray_local")
    seen: list[tuple] = []
    db = tmp_path / "c.db"
    with pytest.raises(CampaignCancelled):
        run_campaign(_plan(), db_path=db, backend=backend, workers=2, progress=lambda *a: seen.append(a),
                     should_stop=lambda: any(e[1] == "started" for e in seen))
    assert stored(db) == []

