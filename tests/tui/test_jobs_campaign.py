"""A research campaign from the console: the campaign form (`m` on the Jobs screen), its progress
streamed into the job's row, and its ranking (every run by grade with its criteria) in the
results view. The job runs in the JobManager's own worker process, as in the console."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from textual.widgets import DataTable, Input

from core.errors import UsageError
from core.jobs import DONE, JobManager
from core.jobs.campaign_job import campaign_job_params, check_campaign_params
from tests.support.shared_data import shared_file
from tests.tui.test_tui_jobs_health import Host, _cell, _wait
from tui.screens.jobs import JobsScreen, ResultsScreen
from tui.widgets.job_form import CampaignForm, data_folder_series

#: 2 strategies × 2 symbols × 1h on 50 days of the real spot candles, 20/10/10-day windows, 12 LHS points.
DEFAULTS = {"strategies": "envelope_dca, momentum", "symbols": "BTC/USDT, ETH/USDT", "timeframes": "1h",
            "start": "2021-01-01", "end": "2021-02-20", "is_days": "20", "oos_days": "10", "step_days": "10",
            "max_points": "12"}


def _folder() -> str:
    return str(shared_file("binance-spot/BTC_USDT-1h.json.gz").parent)


async def test_campaign_from_the_jobs_screen_streams_progress_and_ranks_its_runs(tmp_path: Path) -> None:
    mgr = JobManager(tmp_path / "jobs.db")                      # default runners: the campaign kind in a process
    await mgr.start()
    events = []
    mgr.subscribe(events.append)
    try:
        screen = JobsScreen(mgr, campaign_defaults={**DEFAULTS, "folder": str(tmp_path / "nope")})
        async with Host(screen, jobs=mgr).run_test(size=(160, 48)) as pilot:
            await pilot.pause()
            await pilot.press("m")
            await pilot.pause()
            form = pilot.app.screen
            assert isinstance(form, CampaignForm)
            await pilot.press("ctrl+s")                         # a folder that does not exist: said, form stays
            await pilot.pause()
            assert "ERROR" in str(form.query_one("#c-error").render()) and "nope" in str(
                form.query_one("#c-error").render())
            form.query_one("#c-folder", Input).value = _folder()
            await pilot.press("ctrl+s")
            await _wait(pilot, lambda: screen.jobs and any(j.get("state") == DONE for j in screen.jobs.values()),
                        timeout=240)
            job_id = next(iter(screen.jobs))
            assert _cell(screen, job_id, "what") == "campaign 2 strategies × 2 symbols 1h"
            assert _cell(screen, job_id, "state") == "DONE"
            # progress streamed: per run and window, runs finished / runs in the window column
            mine = [e for e in events if e.job_id == job_id and e.state == "running"]
            assert any("window" in e.detail for e in mine)
            assert any(e.n_windows == 4 for e in mine)
            pcts = [e.percent for e in mine]
            assert pcts == sorted(pcts) and pcts[-1] > 50
            await pilot.press("o")
            await pilot.pause()
            res = pilot.app.screen
            assert isinstance(res, ResultsScreen)
            await _wait(pilot, lambda: len(res.results) == 4)
            await pilot.pause()
            table = res.query_one("#res-ranking", DataTable)
            assert table.display and table.row_count == 4
            ranked = [r for _, r in res.ranking()]
            keys = [("ABCDF".index(r["grade"]), -r["score"]) for r in ranked]
            assert keys == sorted(keys)
            assert {(r["strategy"], r["symbol"]) for r in ranked} == {
                (s, b) for s in ("envelope_dca", "momentum") for b in ("BTC/USDT", "ETH/USDT")}
            # the job's stored report ranks the same runs in the same order
            report = mgr.get(job_id).result
            assert [r["result_id"] for r in report["ranking"]] == [r["id"] for r in ranked]
            head = str(res.query_one("#res-head").render())
            assert "GRADE" in head and "DSR" in head
            # a row of the ranking shows that run
            table.focus()
            await pilot.pause()
            table.move_cursor(row=3)
            await pilot.press("enter")
            await pilot.pause()
            last = ranked[3]
            assert res.results[res.index][0]["id"] == last["id"]
            assert f"{last['strategy']} {last['symbol']}" in str(res.query_one("#res-head").render())
    finally:
        await mgr.close()


def test_campaign_params_are_checked_in_full(tmp_path: Path) -> None:
    ok = campaign_job_params(["envelope_dca", "momentum"], ["BTC/USDT"], ["1h", "4h"])
    assert ok["plan"]["series"]["4h"] == [{"symbol": "BTC/USDT", "market": "spot", "file": None}]
    assert check_campaign_params(ok) == ok
    series = data_folder_series(_folder(), ["BTC/USDT", "ETH/USDT"], "spot", ["1h", "2h"])
    assert [Path(r["file"]).name for r in series["1h"]] == ["BTC_USDT-1h.json.gz", "ETH_USDT-1h.json.gz"]
    assert all(r["timeframe"] == "1h" for r in series["2h"])                 # resampled from the 1h files
    for bad, words in [
        ({**ok, "window": 3}, "unknown campaign job argument(s) 'window'"),
        ({**ok, "backend": "spark"}, "backend must be one of local, ray"),
        ({**ok, "workers": 0}, "workers must be an integer >= 1"),
        ({**ok, "plan": {**ok["plan"], "strategies": ["nope"]}}, "'nope'"),
        ({**ok, "plan": {**ok["plan"], "timeframes": ["7x"]}}, "7x"),
        ({**ok, "plan": {**ok["plan"], "series": {"1h": [{"symbol": "BTC/USDT", "market": "spot",
                                                          "file": "/nope.json.gz"}]}, "timeframes": ["1h"]}},
         "does not exist"),
        ({**ok, "plan": {**ok["plan"], "is_days": 0}}, "is_days"),
        ("x", "must be an object"),
    ]:
        with pytest.raises(UsageError, match=None) as err:
            check_campaign_params(bad)
        assert words in str(err.value), (words, str(err.value))
    with pytest.raises(Exception, match="no spot 1h candle file of NOPE/USDT"):
        data_folder_series(_folder(), ["NOPE/USDT"], "spot", ["1h"])


async def test_the_engine_api_accepts_a_campaign_job(tmp_path: Path) -> None:
    from core.engine.api import EngineAPI

    mgr = JobManager(tmp_path / "j.db")
    api = EngineAPI(None, jobs=mgr)
    params = campaign_job_params(["envelope_dca"], ["BTC/USDT"], ["1h"])
    assert api.check_job("campaign", params) == params
    with pytest.raises(UsageError, match="only 'optimize' jobs and 'campaign' jobs"):
        api.check_job("backtest", params)
    await asyncio.sleep(0)
