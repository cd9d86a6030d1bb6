"""Queries through the real client (`EngineClient`, aiohttp over the Unix socket) against a real
paper engine with its run services: version, snapshot, positions, grid, alerts, jobs, health,
JSON errors, and the protocol-version check."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from aiohttp import web

from core.api import sockets
from core.api.client import EngineClient
from core.api.protocol import PROTOCOL_VERSION, ApiError, EngineNotRunning, ProtocolMismatch, socket_path_for
from core.engine.api import EngineAPI
from tests.api.conftest import Run, eventually


async def test_snapshot_and_queries_match_the_engine(run: Run) -> None:
    assert run.socket == socket_path_for(run.db) == Path(str(run.db) + ".sock")
    local = EngineAPI(run.engine)
    async with EngineClient(run.socket, readonly=True, source="console") as c:
        v = c.server
        assert v["protocol"] == PROTOCOL_VERSION and v["major"] == 1
        assert v["engine"]["pid"] == os.getpid() and v["engine"]["mode"] == "paper"
        assert v["engine"]["ui"] == "headless" and v["engine"]["running"] is True
        assert v["client"] == {"user": v["engine"]["user"], "pid": os.getpid(), "source": "console", "readonly": True}

        snap = await c.snapshot()
        want = json.loads(json.dumps(local.snapshot()))
        want.pop("candles_per_s"), snap.pop("candles_per_s")
        assert snap == want
        (row,) = snap["symbols"]["BTC/USDT"]
        assert row["state"] == "ready" and row["position"]["qty"] > 0

        pos = await c.positions()
        assert len(pos) == 1 and pos[0]["symbol"] == "BTC/USDT" and pos[0]["qty"] > 0
        assert pos[0]["stop"] > 0 and isinstance(pos[0]["unrealized"], float)

        grid = await c.grid("BTC/USDT")
        assert grid == json.loads(json.dumps(local.grid_state("BTC/USDT")))
        assert any(o["purpose"] == "entry" for o in grid["open_orders"])
        assert (await c.grid("BTC/USDT", strategy="envelope_dca"))["symbol"] == "BTC/USDT"
        with pytest.raises(ApiError) as err:
            await c.grid("ETH/USDT")
        assert (err.value.status, err.value.code) == (404, "bad_symbol")
        assert "'ETH/USDT'" in err.value.message and "running: BTC/USDT" in err.value.message

        alerts = await c.alerts()
        assert alerts == [a.to_dict() for a in run.services.alerts.list()]
        assert await c.alerts(severity="critical") == []
        with pytest.raises(ApiError) as err:
            await c.alerts(state="sleepy")
        assert err.value.status == 400 and "sleepy" in err.value.message

        assert await c.jobs() == []
        with pytest.raises(ApiError) as err:
            await c.jobs(limit=0)
        assert err.value.status == 400 and "limit" in err.value.message

        await eventually(lambda: len(run.services.watchdog.snapshot()) >= 5, 10, "the first health checks")
        health = await c.health()
        names = {h["subsystem"] for h in health["subsystems"]}
        assert {"executor", "database", "loop", "jobs", "feed:BTC/USDT"} <= names
        assert health["overall"] in ("ok", "degraded", "down") and health["loop_lag"]["window_s"] > 0


async def test_errors_are_json_naming_what_was_wrong(run: Run) -> None:
    async with EngineClient(run.socket) as c:
        with pytest.raises(ApiError) as err:
            await c._request("GET", "/v1/nothing")
        assert (err.value.status, err.value.code) == (404, "not_found")
        assert "GET /v1/nothing" in err.value.message
        with pytest.raises(ApiError) as err:
            await c._request("POST", "/v1/snapshot")
        assert err.value.status == 405 and "POST /v1/snapshot" in err.value.message
        with pytest.raises(ApiError) as err:
            await c.events(["NoSuchEvent"]).__anext__()
        assert err.value.status == 400


async def test_no_engine_and_stale_socket_say_so_naming_the_socket(tmp_path: Path) -> None:
    sock = tmp_path / "radar.db.sock"
    with pytest.raises(EngineNotRunning, match=f"{sock} does not exist"):
        await EngineClient(sock).open()
    s, _ = sockets.bind_private(sock)
    s.close()                                    # a socket file nobody listens on: a crashed engine's
    with pytest.raises(EngineNotRunning, match=f"nothing listens on {sock}"):
        await EngineClient(sock).open()


async def _fake_engine(sock: Path, version: dict | None):
    async def handler(request: web.Request) -> web.Response:
        return web.json_response(version)

    app = web.Application()
    if version is not None:
        app.router.add_get("/v1/version", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.UnixSite(runner, str(sock)).start()
    return runner


@pytest.mark.parametrize("version, match", [
    ({"protocol": "2.0", "major": 2}, r"speaks protocol 2\.0, this client 1\.2: major versions differ"),
    (None, r"does not serve protocol v1"),
])
async def test_client_refuses_another_major_version(tmp_path: Path, version: dict | None, match: str) -> None:
    sock = tmp_path / "e.sock"
    runner = await _fake_engine(sock, version)
    try:
        with pytest.raises(ProtocolMismatch, match=match) as err:
            await EngineClient(sock).open()
        assert err.value.exit_code == 2
    finally:
        await runner.cleanup()


async def test_a_newer_minor_version_is_accepted(tmp_path: Path) -> None:
    sock = tmp_path / "e.sock"
    runner = await _fake_engine(sock, {"protocol": "1.7", "major": 1})
    try:
        async with EngineClient(sock) as c:
            assert c.server["protocol"] == "1.7"
    finally:
        await runner.cleanup()
