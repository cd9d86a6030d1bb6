"""`/metrics` and `/v1/metrics`: the Prometheus text format of a dedicated registry, parsed back
with prometheus_client's parser and checked against the engine's state."""

from __future__ import annotations

import aiohttp
import prometheus_client
import pytest
from prometheus_client.parser import text_string_to_metric_families

from core.api.client import EngineClient
from core.api.protocol import ApiError
from core.api.sockets import reachable
from core.engine.api import EngineAPI
from tests.api.conftest import Run, eventually


def families(text: str) -> dict:
    """name -> {frozenset(labels.items()): value} of every sample."""
    out: dict = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out.setdefault(s.name, {})[frozenset(s.labels.items())] = s.value
    return out


def one(fams: dict, name: str, **labels: str) -> float:
    return fams[name][frozenset(labels.items())]


async def test_metrics_parse_and_match_the_engine(run: Run) -> None:
    await eventually(lambda: run.services.lag.stats().samples > 0 and len(run.services.watchdog.snapshot()) >= 5,
                     10, "loop-lag samples and health checks")
    await run.services.alerts.raise_alert("test:metrics", "error", "test", "an alert to count")
    snap = EngineAPI(run.engine).snapshot()
    r = run.engine.runners[0]
    pos = r.position()
    async with EngineClient(run.socket, readonly=True) as c:
        text = await c.metrics()
    with reachable(run.socket) as path:
        async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=path)) as s:
            async with s.get("http://radar/metrics") as resp:
                assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
                plain = await resp.text()
    fams = families(text)
    assert families(plain).keys() == fams.keys()
    assert one(fams, "radar_up") == 1
    assert one(fams, "radar_candles_total") == run.n_candles
    assert abs(one(fams, "radar_equity_usdt") - snap["equity"]) < 1e-6
    assert abs(one(fams, "radar_day_pnl_usdt") - snap["day_pnl"]) < 1e-6
    assert one(fams, "radar_kill_switch_active") == 0
    assert one(fams, "radar_open_positions") == 1
    qty = one(fams, "radar_position_qty", strategy="envelope_dca", symbol="BTC/USDT", side=str(pos["side"]))
    assert qty == pos["qty"]
    assert abs(one(fams, "radar_position_notional_usdt", symbol="BTC/USDT") - pos["qty"] * r.last_close) < 1e-6
    assert abs(one(fams, "radar_unrealized_pnl_usdt", strategy="envelope_dca", symbol="BTC/USDT")
               - pos["unrealized"]) < 1e-6
    entries = sum(1 for o in r.grid_state()["open_orders"] if o["purpose"] == "entry")
    assert entries >= 1 and one(fams, "radar_resting_orders", symbol="BTC/USDT", purpose="entry") == entries
    assert one(fams, "radar_unprotected_seconds", strategy="envelope_dca", symbol="BTC/USDT") == 0
    assert one(fams, "radar_runner_halted", strategy="envelope_dca", symbol="BTC/USDT") == 0
    assert {dict(k)["quantile"] for k in fams["radar_loop_lag_seconds"]} == {"0.5", "0.99", "1"}
    alerts = run.services.alerts.list()
    assert sum(fams["radar_alerts"].values()) == len(alerts) > 0
    assert one(fams, "radar_alerts", severity="critical", state="active") == 0
    assert one(fams, "radar_alerts", severity="error", state="active") >= 1
    assert one(fams, "radar_jobs", state="queued") == 0 and one(fams, "radar_jobs", state="running") == 0
    assert one(fams, "radar_health_status", subsystem="database") == 0
    assert one(fams, "radar_api_event_clients") == 0
    # a dedicated registry: nothing of the engine in the process-global one
    assert b"radar_" not in prometheus_client.generate_latest(prometheus_client.REGISTRY)

    async with EngineClient(run.socket, source="cli") as c:
        await c.kill()
        with pytest.raises(ApiError):
            await c.flatten("NOPE/USDT")
        fams = families(await c.metrics())
    assert one(fams, "radar_kill_switch_active") == 1
    assert one(fams, "radar_api_commands_total", command="kill", outcome="ok") == 1
    assert one(fams, "radar_api_commands_total", command="flatten", outcome="refused") == 1
