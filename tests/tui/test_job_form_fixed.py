"""The job form's fixed values (issue 13): any parameter of the chosen strategy can be fixed —
the job's grid for it becomes that single value — and bad values are refused in the form."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.app import App
from textual.widgets import Input, Select

from core.config import load_config, param_grid, strategy_params
from core.errors import UsageError
from core.jobs.optimize_job import optimize_params
from core.optimize.fixed_params import apply_fixed, check_fixed
from core.paths import DEFAULT_CONFIG_DIR
from tui.widgets.job_form import JobForm


class Host(App):
    def __init__(self, form: JobForm) -> None:
        super().__init__()
        self.form = form
        self.dismissed: list = []

    def on_mount(self) -> None:
        self.push_screen(self.form, self.dismissed.append)


def _error(form: JobForm) -> str:
    return str(form.query_one("#form-error").render())


async def test_fixed_values_reach_the_job_params_and_bad_ones_stay_in_the_form() -> None:
    form = JobForm(defaults={"symbols": "BTC/USDT", "fixed": {"ma_period": 10}})
    app = Host(form)
    async with app.run_test(size=(100, 70)) as pilot:
        await pilot.pause()
        assert form.query_one("#fix-envelope_dca").display and not form.query_one("#fix-momentum").display
        ph = form.query_one("#fix-envelope_dca-ma_period", Input).placeholder
        assert ph == "grid 5, 7, 10"
        form.query_one("#fix-envelope_dca-sl_percent", Input).value = "abc"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert "fixed sl_percent: 'abc' is not a number" in _error(form) and not app.dismissed
        form.query_one("#fix-envelope_dca-sl_percent", Input).value = "0"
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert "fixed sl_percent=0" in _error(form) and not app.dismissed
        form.query_one("#fix-envelope_dca-sl_percent", Input).value = "0.25"
        await pilot.press("ctrl+s")
        await pilot.pause()
        (params,) = app.dismissed
        assert params["fixed"] == {"ma_period": 10, "sl_percent": 0.25}


async def test_switching_strategy_shows_its_parameters() -> None:
    form = JobForm(defaults={"symbols": "BTC/USDT"})
    app = Host(form)
    async with app.run_test(size=(100, 70)) as pilot:
        await pilot.pause()
        form.query_one("#f-strategy", Select).value = "momentum"
        await pilot.pause()
        assert form.query_one("#fix-momentum").display and not form.query_one("#fix-envelope_dca").display
        ph = form.query_one("#fix-momentum-atr_period", Input).placeholder
        assert "not in the grid" in ph                         # atr_period is not searched by default
        form.query_one("#fix-momentum-atr_period", Input).value = "21"
        form.query_one("#fix-envelope_dca-ma_period", Input).value = "oops"     # hidden: not the strategy's
        await pilot.press("ctrl+s")
        await pilot.pause()
        (params,) = app.dismissed
        assert params["strategy"] == "momentum" and params["fixed"] == {"atr_period": 21}


def test_form_with_a_finer_file_resamples(tmp_path: Path) -> None:
    f = tmp_path / "BTC_USDT_USDT-5m-futures.json.gz"
    p = optimize_params("envelope_dca", "1h", [{"symbol": "BTC/USDT:USDT", "market": "futures", "file": str(f),
                                                "timeframe": "5m"}])
    assert p["series"][0]["timeframe"] == "5m" and "fixed" not in p


def test_fixed_grid_is_the_single_value() -> None:
    cfg = load_config(DEFAULT_CONFIG_DIR)
    grid = param_grid(cfg, "envelope_dca")
    base = strategy_params(cfg, "envelope_dca").model_dump()
    g, b = apply_fixed(grid, base, check_fixed("envelope_dca", {"ma_period": 12, "num_levels": 4}))
    assert g["ma_period"] == [12] and g["num_levels"] == [4] and g["sl_percent"] == grid["sl_percent"]
    assert b["ma_period"] == 12 and grid["ma_period"] == [5, 7, 10]          # the input is not changed
    g, b = apply_fixed(param_grid(cfg, "momentum"), strategy_params(cfg, "momentum").model_dump(),
                       {"atr_period": 21})
    assert "atr_period" not in g and b["atr_period"] == 21
    with pytest.raises(UsageError, match="'foo' is not a parameter of envelope_dca"):
        optimize_params("envelope_dca", "1h", [{"symbol": "BTC/USDT", "market": "spot"}], fixed={"foo": 1})


async def test_a_job_with_fixed_values_searches_only_the_rest(tmp_path: Path) -> None:
    """A real "optimize" job with ma_period and num_levels fixed evaluates only combos with them."""
    from core.jobs import DONE, JobManager
    from core.jobs.optimize_job import KIND
    from core.optimize.results_store import combo_rows
    from core.storage.db import open_sync
    from tests.support.shared_data import shared_file

    data = shared_file("binance-spot/BTC_USDT-1h.json.gz")
    params = optimize_params("envelope_dca", "1h", [{"symbol": "BTC/USDT", "market": "spot", "file": str(data)}],
                             start_ms=1_546_300_800_000, end_ms=1_551_398_400_000, is_days=20, oos_days=5,
                             step_days=5, max_points=20, n_boot=50, fixed={"ma_period": 10, "num_levels": 2})
    mgr = JobManager(tmp_path / "jobs.db")
    await mgr.start()
    try:
        rec = await mgr.wait(mgr.submit(KIND, params))
    finally:
        await mgr.close()
    assert rec.state == DONE, rec.error
    (r,) = rec.result["results"]
    assert r["best_params"]["ma_period"] == 10 and r["best_params"]["num_levels"] == 2
    conn = open_sync(tmp_path / "jobs.db")
    try:
        combos = combo_rows(conn, r["result_id"])
    finally:
        conn.close()
    assert combos and all(c["params"]["ma_period"] == 10 and c["params"]["num_levels"] == 2 for c in combos)
    assert len({(c["params"]["envelope_start"], c["params"]["sl_percent"]) for c in combos}) > 1   # the rest searched
