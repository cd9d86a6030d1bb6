"""Telegram through the real engine: Engine + RunServices in the test's loop on a paced replay of
real BTC 1h candles, the bot (python-telegram-bot) talking to the local Bot API stand-in
(`tests.support.telegram_stub`, 127.0.0.1) found through RADAR_TELEGRAM_BASE_URL, the token and the
allow-list from the environment as `radar run` reads them.

* /kill from an allowed chat -> confirmation keyboard -> "Yes, kill" -> the engine's kill switch is
  active (EngineAPI snapshot and the persisted switch); a chat not on the list gets nothing, and
  its /kill and stolen button press change nothing;
* while the stand-in answers 500 or hangs, the replay keeps its pace (candles per second within
  20 % of the run without faults, same data, same measuring window) and every alert the engine
  raised in the fault window is in the alerts table.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from core.config import load_secrets
from core.engine.api import EngineAPI
from core.engine.assembly import replay_source
from core.engine.engine import Engine, RunnerSpec
from core.engine.services import TELEGRAM_BASE_URL_VAR, RunServices
from core.events.bus import AlertEvent
from core.executor.kill_switch import KillSwitch
from core.executor.state_store import StateStore
from core.model.account import Account
from tests.alerts.test_alerts_live_engine import pace_for, write_slice
from tests.support.telegram_stub import TelegramStub

TOKEN = "7000001:AAHsecretTOKENvalue-xyz_123"
ALLOWED = 111
OTHER = 999
#: Rows of BTC 1h holding three real gaps (10, 1 and 7 candles missing): gap alerts (warnings,
#: sent to Telegram) are raised while the faults are on.
SLICE = (7462, 7662)
#: Candles processed before the measuring window (and the faults) start.
WARM = 5


@pytest.fixture
async def stub(monkeypatch: pytest.MonkeyPatch):
    async with TelegramStub(TOKEN, max_poll_s=0.3) as s:
        monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TOKEN)
        monkeypatch.setenv("TELEGRAM_ALLOWED_CHAT_IDS", str(ALLOWED))
        monkeypatch.setenv(TELEGRAM_BASE_URL_VAR, s.base_url)
        yield s


async def eventually(pred, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while not (got := pred()):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)
    return got


class Run:
    """One engine + its run services (as `radar run --no-ui` builds them) on a paced replay."""

    def __init__(self, tmp: Path, data: Path, speed: float, name: str) -> None:
        src, _ = replay_source(data, speed)
        src.speed = speed
        self.db = tmp / f"{name}.db"
        self.engine = Engine(self.db, [src], [RunnerSpec("envelope_dca", {}, src.symbol, src.timeframe)],
                             Account(), status_interval=0)
        self.api = EngineAPI(self.engine)
        self.services: RunServices | None = None
        self.task: asyncio.Task | None = None

    async def __aenter__(self) -> "Run":
        self.engine.acquire_lock()
        self.services = await RunServices.open(self.engine, self.db, secrets=load_secrets(dotenv_path=None),
                                               mode="headless")
        assert self.services.bot is not None, "the bot is built from the environment's token"
        await asyncio.wait_for(self.services.bot.wait_connected(), 10)
        self.task = asyncio.get_running_loop().create_task(self.engine.run())
        await eventually(lambda: self.engine.kill_switch is not None, 10, "the engine to start")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.task is not None and not self.task.done():
            self.engine.request_stop()
        if self.task is not None:
            await asyncio.wait_for(self.task, 30)
        assert self.services is not None
        await self.services.close()


def buttons(reply: dict[str, Any]) -> dict[str, str]:
    markup = reply["reply_markup"]
    markup = json.loads(markup) if isinstance(markup, str) else markup
    return {b["text"]: b["callback_data"] for row in markup["inline_keyboard"] for b in row}


async def test_kill_from_telegram_trips_the_engines_kill_switch(tmp_path: Path, stub: TelegramStub) -> None:
    data = write_slice(tmp_path, *SLICE)
    async with Run(tmp_path, data, pace_for(data, 20.0), "kill") as run:
        bot = run.services.bot
        assert run.api.snapshot()["kill_switch"]["active"] is False
        msg = stub.push_command(ALLOWED, "/kill")
        reply = await eventually(lambda: [m for m in stub.sent if m["reply_to"] == msg], 10, "the /kill reply")
        assert len(reply) == 1 and "KILL SWITCH" in reply[0]["text"]
        keys = buttons(reply[0])
        assert set(keys) == {"Yes, kill", "Cancel"}
        assert run.api.snapshot()["kill_switch"]["active"] is False      # nothing before the confirmation

        # a chat not on the list: its /kill and a stolen confirmation button get nothing, change nothing
        stub.push_command(OTHER, "/kill")
        stub.push_callback(OTHER, keys["Yes, kill"], reply[0]["message_id"])
        await eventually(lambda: bot.stats().refused == 2, 10, "both refusals")
        assert stub.texts_to(OTHER) == [] and stub.answers == [] and stub.edits == []
        assert run.api.snapshot()["kill_switch"]["active"] is False

        stub.push_callback(ALLOWED, keys["Yes, kill"], reply[0]["message_id"])
        ks = await eventually(lambda: run.api.snapshot()["kill_switch"]["active"]
                              and run.api.snapshot()["kill_switch"], 10, "the kill switch")
        assert ks["actor"] == "telegram:operator"
        await eventually(lambda: stub.edits, 10, "the confirmation message edited")
        assert "kill switch ON" in stub.edits[0]["text"]
        assert not run.engine.finished, "killed while the replay runs"
        candles_at_kill = run.engine.stats.candles
        await eventually(lambda: run.engine.stats.candles > candles_at_kill + 3, 10, "candles after the kill")
    assert stub.texts_to(OTHER) == []
    store = StateStore(run.db)
    try:
        assert KillSwitch(store).active                                    # persisted
    finally:
        store.close()


async def _paced_run(tmp: Path, data: Path, speed: float, stub: TelegramStub, name: str,
                     fault: str | None) -> dict[str, Any]:
    """Replay `data` with the bot connected; from candle WARM on, the stand-in fails (`fault`:
    "500", "hang" or None) and a warning is published every 0.4 s; returns the pace and alerts."""
    stub.recover()
    async with Run(tmp, data, speed, name) as run:
        eng, alerts = run.engine, run.services.alerts
        raised: list[tuple[str, int]] = []
        calls = {"n": 0}
        real_raise = alerts.raise_alert

        async def witness(key, *args, **kwargs):
            calls["n"] += 1
            alert = await real_raise(key, *args, **kwargs)
            raised.append((key, alert.id))
            return alert

        await eventually(lambda: eng.stats.candles >= WARM, 15, f"{WARM} candles")
        sends_before = len(stub.calls_of("sendMessage"))
        if fault == "500":
            for method in ("sendMessage", "getUpdates", "answerCallbackQuery", "editMessageText"):
                stub.fail(method, 500)
        elif fault == "hang":
            for method in ("sendMessage", "getUpdates", "answerCallbackQuery", "editMessageText"):
                stub.hang(method)
        alerts.raise_alert = witness                      # the bridge looks the method up per call
        n0, t0 = eng.stats.candles, time.monotonic()
        published = 0
        while not run.task.done():
            if published < 8:
                eng.bus.publish(AlertEvent("warning", f"wiring test warning {published}", "during the fault window",
                                           source="reconcile"))
                published += 1
            stub.push_command(ALLOWED, "/status")      # commands keep arriving (unanswered while faulty)
            await asyncio.wait({run.task}, timeout=0.4)
        t1, n1 = time.monotonic(), eng.stats.candles
        assert eng.finished and eng.error is None
        await run.services.bridge.drain()
        del alerts.raise_alert
        window_calls = [c for c in stub.calls_of("sendMessage")[sends_before:]]
        stub.recover()                                     # hung requests end, so the bot stops quickly
    assert run.services.bridge.failures == 0
    return {"rate": (n1 - n0) / (t1 - t0), "candles": n1 - n0, "seconds": t1 - t0, "raised": raised,
            "calls": calls["n"], "db": run.db, "send_outcomes": [c.outcome for c in window_calls],
            "published": published}


async def test_faulty_telegram_keeps_the_pace_and_loses_no_alert(tmp_path: Path, stub: TelegramStub) -> None:
    data = write_slice(tmp_path, *SLICE)
    speed = pace_for(data, 5.5)
    runs = {f: await _paced_run(tmp_path, data, speed, stub, f"pace-{f}", None if f == "none" else f)
            for f in ("none", "500", "hang")}
    base = runs["none"]["rate"]
    print("\n" + "; ".join(f"{f}: {r['candles']} candles in {r['seconds']:.2f} s = {r['rate']:.1f} candles/s, "
                           f"{len(r['raised'])} alerts raised, sendMessage outcomes "
                           f"{sorted(set(r['send_outcomes']))}" for f, r in runs.items()))
    for fault in ("500", "hang"):
        r = runs[fault]
        assert abs(r["rate"] - base) <= 0.2 * base, (fault, r["rate"], base)
        # the stand-in really was failing while alerts went out
        assert r["send_outcomes"] and set(r["send_outcomes"]) == {fault}, r["send_outcomes"]
        # every alert the engine raised during the fault window is in the store
        assert r["calls"] == len(r["raised"]) and len(r["raised"]) >= r["published"] + 2
        conn = sqlite3.connect(r["db"])
        try:
            rows = dict(conn.execute("SELECT id, dedup_key FROM alerts").fetchall())
        finally:
            conn.close()
        missing = [(k, i) for k, i in r["raised"] if rows.get(i) != k]
        assert not missing, missing
        keys = {k for k, _ in r["raised"]}
        assert sum(k.startswith("data.gap:") for k in keys) >= 2          # real gaps, raised by the engine
        assert sum(k.startswith("reconcile:wiring test warning") for k in keys) == r["published"]
