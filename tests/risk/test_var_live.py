"""The risk of a running engine's book (real BTC 1h candles, a position open, resting levels):
`EngineAPI.risk()`, `GET /v1/risk`, LocalPort / RemoteEngine `risk()` -> `RiskView`, and the
"VaR over a limit" alert tripping (and resolving) on it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from core.api.client import EngineClient
from core.api.local_port import LocalPort
from core.api.views import RiskView
from core.backtest.event_engine import run_event_backtest
from core.backtest.loading import load_from_file
from core.engine.api import EngineAPI
from core.model.account import Account
from core.model.candles import Candles
from core.risk.live import load_risk_config
from core.risk.var_alert import KEY, VarAlert
from tests.api.conftest import BTC_1H, Run, eventually
from tests.support.shared_data import shared_file
from tui.remote import RemoteEngine


@pytest.fixture(scope="module")
def candles() -> Candles:
    """BTC 1h candles (from Aug 2017) up to one after envelope_dca, past its first 30 days, opened
    a position with 1 or 2 levels filled: a month of daily equity returns behind the book."""
    full = load_from_file(shared_file(BTC_1H))
    full = full.between(None, int(full.ts[3000]))
    open_at: list[int] = []
    run_event_backtest(full, "envelope_dca", {}, Account(),
                       observer=lambda t, m: open_at.append(t) if m.levels_filled and m.levels_filled < 3 else None)
    at = next(t for t in open_at if t >= 24 * 30)
    return full.between(None, int(full.ts[at + 1]))


def _hand(b: dict, maker: float = 0.0002, taker: float = 0.0006, p: float = 0.20) -> float:
    q, cost, fees = b["qty"], b["qty"] * b["avg_entry"], 0.0
    for lv in b["resting"]:
        qty = b["unit"] / lv["price"]
        q, cost, fees = q + qty, cost + qty * lv["price"], fees + qty * lv["price"] * maker
    avg = cost / q
    return q * avg * p + fees + q * avg * (1 - p) * taker


def _with_limit(cfg, limit: float):
    alert = cfg.scenarios.alert.model_copy(update={"var_limit": limit})
    return cfg.model_copy(update={"scenarios": cfg.scenarios.model_copy(update={"alert": alert})})


async def test_engine_risk_through_api_ports_and_the_var_alert(tmp_path: Path, candles: Candles) -> None:
    async with Run(tmp_path / "radar.db", candles) as run:
        api = EngineAPI(run.engine, alerts=run.services.alerts)
        rep = await api.risk()
        assert rep["source"] == "engine" and rep["as_of_ms"] == int(candles.ts[-1])
        b = rep["book"][0]
        assert b["qty"] > 0 and b["stop"] is not None and b["resting"]
        assert rep["worst_case"]["total"] == pytest.approx(_hand(b), rel=1e-9)
        assert rep["var"]["available"] and len(rep["var"]["figures"]) == 4
        assert [s["name"] for s in rep["scenarios"]][-1] == "tariff_shock_2025"
        assert all(s["available"] for s in rep["scenarios"])

        async with EngineClient(run.socket, readonly=True, source="cli") as c:
            wire = await c.risk()
        assert wire["worst_case"]["total"] == pytest.approx(rep["worst_case"]["total"], rel=1e-12)

        local = await LocalPort(api).risk()
        assert isinstance(local, RiskView) and local.worst_total == pytest.approx(rep["worst_case"]["total"])
        remote = await RemoteEngine(run.socket, readonly=True).connect()
        try:
            seen = await remote.risk()
        finally:
            await remote.close()
        assert seen.figure("historical", 0.99).var == pytest.approx(local.figure("historical", 0.99).var)

        # the run's own VaR alert service is up (supervised loop)
        assert run.services.var_alert is not None and run.services.var_alert.task is not None

        # trip it on this real book: a limit below its VaR raises, a limit above resolves
        cfg = load_risk_config(None)
        alerts = run.services.alerts
        low = VarAlert(run.engine, alerts, _with_limit(cfg, 1e-6))
        over, title, detail = await low.evaluate()
        assert over and "over the limit" in title and "worst case" in detail
        hit = [a for a in alerts.list() if a.key == KEY]
        assert len(hit) == 1 and hit[0].source == "risk" and str(hit[0].severity.value) == "error"
        high = VarAlert(run.engine, alerts, _with_limit(cfg, 1.0))
        over, _, _ = await high.evaluate()
        assert not over and not [a for a in alerts.list() if a.key == KEY]

        # the periodic loop evaluates on its own
        loop = VarAlert(run.engine, alerts, _with_limit(cfg, 1e-6), interval_s=0.05, name="risk-var-test")
        loop.start()
        try:
            await eventually(lambda: loop.evaluations >= 2, 30, "two periodic evaluations")
            await eventually(lambda: [a for a in alerts.list() if a.key == KEY], 10, "the alert again")
        finally:
            await loop.close()
        assert loop.failures == 0

        # `radar risk` asks the running engine (its socket answers)
        from core.cli.risk_cmd import collect
        from core.paths import DEFAULT_CONFIG_DIR

        via_cli = await asyncio.to_thread(collect, run.db, DEFAULT_CONFIG_DIR)
        assert via_cli["source"] == "engine"
        assert via_cli["worst_case"]["total"] == pytest.approx(rep["worst_case"]["total"], rel=1e-12)

    # stopped (not a finished replay): the database holds the same book
    from core.risk.report import report_from_db

    stored = await asyncio.to_thread(report_from_db, run.db, cfg)
    assert stored["source"] == "database" and not stored["notes"]
    assert stored["book"][0]["qty"] == pytest.approx(b["qty"], rel=1e-12)
    assert [lv["price"] for lv in stored["book"][0]["resting"]] == pytest.approx([lv["price"] for lv in b["resting"]])
    assert stored["worst_case"]["total"] == pytest.approx(rep["worst_case"]["total"], rel=1e-9)
    h = stored["var"]["figures"][0]
    assert h["var"] == pytest.approx(rep["var"]["figures"][0]["var"], rel=1e-9)
