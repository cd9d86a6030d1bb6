"""Alert noise of a run (issue 12, part 3a and 3c), through the real wiring: the engine built by
`core.engine.assembly.build_engine` and the run's services (`RunServices`: AlertEngine + the
EngineAlerts bridge), in the test's event loop.

* 3a: the gap warnings a replay raises are resolved when the replay reaches the end of its data
  (they stay in the alerts table, resolved), and so are those an earlier, interrupted replay
  of the same series left active on the database;
* 3c: "entry refused (kill_switch)" warnings are resolved when the kill switch is cleared
  (`EngineAPI.resume`, as the console's `:resume` and Telegram's /resume do), except for a
  symbol the kill switch still blocks on its own.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

from core.config import load_config
from core.engine.alerting import EngineAlerts
from core.engine.api import EngineAPI
from core.engine.assembly import RunOptions, build_engine
from core.engine.services import RunServices
from core.events.bus import EventBus, KillSwitchEvent, RiskRejection
from core.executor.kill_switch import KillSwitch
from core.executor.state_store import StateStore
from tests.alerts.test_alerts_live_engine import write_slice
from tests.engine.test_engine_replay import only_envelope_config

#: Rows of the real BTC 1h file holding three real gaps (10, 1 and 7 candles missing).
GAP_SLICE = (7462, 7662)


def _alerts(db: Path, like: str) -> list[tuple[str, str, str]]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT dedup_key, state, changed_by FROM alerts WHERE dedup_key LIKE ? ORDER BY id",
                            (like,)).fetchall()
    finally:
        conn.close()


async def _run_replay(cfg_dir: Path, db: Path, data: Path, *, stop_after: int | None = None) -> None:
    """`radar run --no-ui --replay data` in this loop: lock, services, engine, services closed.
    With `stop_after`, the run is paced (100 candles/s) and stopped (as SIGINT) once that many
    candles are processed."""
    speed = "max" if stop_after is None else 3600.0 * 100
    engine = build_engine(load_config(cfg_dir), RunOptions(db=db, replay=(data,), speed=speed, status_interval=0))
    engine.acquire_lock()
    services = await RunServices.open(engine, db, secrets=None, jobs=False, telegram=False)
    try:
        if stop_after is None:
            await engine.run()
            assert engine.finished and engine.error is None
        else:
            await engine.start()
            deadline = time.monotonic() + 60
            while engine.stats.candles < stop_after:
                assert time.monotonic() < deadline and not engine.finished, engine.stats.candles
                await asyncio.sleep(0.005)
            await engine.stop()
            assert not engine.finished
    finally:
        await services.close()


async def test_gap_warnings_of_a_replay_are_resolved_when_it_ends(tmp_path: Path) -> None:
    data = write_slice(tmp_path, *GAP_SLICE)
    cfg = only_envelope_config(tmp_path)
    db = tmp_path / "r.db"
    await _run_replay(cfg, db, data)
    gaps = _alerts(db, "data.gap:%")
    assert len(gaps) == 3, gaps                                   # raised: one per gap, kept in the log
    assert [state for _, state, _ in gaps] == ["resolved"] * 3, gaps
    assert {by for _, _, by in gaps} == {"engine"}


async def test_gap_warnings_left_by_an_interrupted_replay_are_resolved_by_its_end(tmp_path: Path) -> None:
    data = write_slice(tmp_path, *GAP_SLICE)
    cfg = only_envelope_config(tmp_path)
    db = tmp_path / "r.db"
    await _run_replay(cfg, db, data, stop_after=190)              # past the three gaps, not at the end
    before = _alerts(db, "data.gap:%")
    assert len(before) == 3 and {s for _, s, _ in before} == {"active"}, before   # still open: not finished
    await _run_replay(cfg, db, data)                              # resumes and reaches the end
    after = _alerts(db, "data.gap:%")
    assert [k for k, _, _ in after] == [k for k, _, _ in before]  # the same alerts, not raised again
    assert {s for _, s, _ in after} == {"resolved"}, after


async def test_resume_resolves_the_kill_switch_refusals(tmp_path: Path) -> None:
    data = write_slice(tmp_path, 0, 1500)
    cfg = only_envelope_config(tmp_path)
    db = tmp_path / "k.db"
    store = StateStore(db)
    KillSwitch(store).trip("test", reason="before start")
    store.close()
    engine = build_engine(load_config(cfg), RunOptions(db=db, replay=(data,), status_interval=0))
    for src in engine.sources:
        src.replay = False                   # like a live feed: the engine keeps running after the data
    engine.acquire_lock()
    services = await RunServices.open(engine, db, secrets=None, jobs=False, telegram=False)
    try:
        await engine.start()
        key = "risk:BTC/USDT:kill_switch"
        deadline = time.monotonic() + 60
        while not any(a.key == key for a in services.alerts.list()):
            assert time.monotonic() < deadline, "no 'entry refused (kill_switch)' alert was raised"
            await asyncio.sleep(0.02)
        (alert,) = [a for a in services.alerts.list() if a.key == key]
        assert alert.title == "BTC/USDT: entry refused (kill_switch)"
        await EngineAPI(engine).resume("console:tester")
        await services.bridge.drain()
        assert not [a for a in services.alerts.list() if a.key == key]
        assert _alerts(db, "risk:%:kill_switch") == [(key, "resolved", "console:tester")]
        await engine.stop()
    finally:
        await services.close()


async def test_resume_keeps_the_refusals_of_a_symbol_still_blocked() -> None:
    """The kill switch cleared while one symbol stays blocked on its own: only the others resolve."""

    class FakeKill:
        def blocks(self, symbol: str) -> bool:
            return symbol == "ETH/USDT:USDT"

    class FakeEngine:
        kill_switch = FakeKill()
        runners: list = []

    class Alert:
        def __init__(self, key: str) -> None:
            self.key = key

    class FakeAlerts:
        def __init__(self) -> None:
            self.open: dict[str, Alert] = {}

        async def raise_alert(self, key, severity, source, title, detail=""):
            self.open[key] = Alert(key)

        async def resolve(self, key, actor):
            return self.open.pop(key, None)

        def list(self):
            return list(self.open.values())

    alerts = FakeAlerts()
    bridge = EngineAlerts(EventBus(), alerts, engine=FakeEngine())
    for sym in ("BTC/USDT", "ETH/USDT:USDT"):
        await bridge.handle(RiskRejection("envelope_dca", sym, 0, "kill_switch", "entries blocked"))
    await bridge.handle(RiskRejection("envelope_dca", "BTC/USDT", 0, "max_open_positions", "too many"))
    await bridge.handle(KillSwitchEvent(False, False, "telegram:alice", "telegram /resume"))
    assert sorted(alerts.open) == ["risk:BTC/USDT:max_open_positions", "risk:ETH/USDT:USDT:kill_switch"]
