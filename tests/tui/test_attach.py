"""`radar attach`: the console (`RadarApp` through `tui.attach.AttachedRadarApp`) on a real headless
engine in another process (`radar run --no-ui --replay <BTC 1h> --speed 3600`), at 80x24.

* the engine's grid shows (symbol, price) and the header follows its state;
* a read-only connection: K + confirm reaches the ENGINE, which refuses it (403, audited); the
  console says so and the kill switch stays off (the app itself is not read-only here);
* `q` closes the console without a question and the engine keeps trading;
* SIGTERM on the engine: the console says "engine gone"; `r` re-attaches once an engine is back;
* no engine: `radar attach` says so in one line naming the socket, exit 1.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import subprocess
from pathlib import Path

import pytest

from core.api.audit import read_audit
from tests.tui.attach_support import ROOT, EngineProcess, env, eventually, radar_cmd, status
from tui.attach import AttachedRadarApp
from tui.remote import RemoteEngine
from tui.widgets.confirm import ConfirmScreen
from tui.widgets.header import render_header


@pytest.fixture(scope="module")
def engine(tmp_path_factory) -> EngineProcess:
    """One engine shared by the tests that leave it running."""
    eng = EngineProcess(tmp_path_factory.mktemp("attach") / "radar.db").wait_for_socket()
    yield eng
    eng.stop()


def make_app(remote: RemoteEngine, **kw) -> AttachedRadarApp:
    return AttachedRadarApp(remote, host_name="ops-01", actor="console:test", freeze_gc=False, **kw)


def said(app) -> list[str]:
    return [str(n.message) for n in app._notifications]


def header(app) -> str:
    return render_header(app.header_state(), 80).plain


async def test_attached_console_shows_the_engines_grid(engine: EngineProcess) -> None:
    remote = await RemoteEngine(engine.socket).connect()
    app = make_app(remote)
    try:
        async with app.run_test(size=(80, 24), notifications=True) as pilot:
            await pilot.press("2")
            summary = await eventually(
                lambda: (t := str(app.screen.query_one("#grid-summary").render())).startswith("BTC/USDT") and t,
                20, "the grid of BTC/USDT", pilot)
            m = re.search(r"price ([\d,]+\.\d+)", summary)
            assert m and float(m.group(1).replace(",", "")) > 1000, summary
            assert "envelope_dca" in summary
            assert "PAPER" in header(app) and "kill off" in header(app)
            candles = remote.snapshot().candles
            await eventually(lambda: remote.snapshot().candles > candles, 10, "the next candle", pilot)
            assert app.session.feed_age("BTC/USDT") is not None      # candle events reach the console
    finally:
        await remote.close()


async def test_readonly_attach_is_refused_by_the_engine(engine: EngineProcess) -> None:
    remote = await RemoteEngine(engine.socket, readonly=True).connect()
    app = make_app(remote)                         # NOT a read-only app: the engine must refuse
    try:
        async with app.run_test(size=(80, 24), notifications=True) as pilot:
            await pilot.pause()
            await pilot.press("K")
            await eventually(lambda: isinstance(app.screen, ConfirmScreen), 10, "the kill confirmation", pilot)
            await pilot.press("y")
            await eventually(lambda: any("refused by the engine: read-only console" in m for m in said(app)), 10,
                             "the refusal toast", pilot)
            assert not any("KILL SWITCH ON" in m for m in said(app)), said(app)
            assert "kill off" in header(app)
    finally:
        await remote.close()
    assert status(engine.db)["kill_switch"]["active"] is False
    with sqlite3.connect(engine.db) as conn:
        rows = [r for r in read_audit(conn) if r.command == "kill"]
    assert rows and (rows[0].outcome, rows[0].status, rows[0].readonly, rows[0].source) == ("refused", 403, True,
                                                                                            "console")


async def test_q_closes_the_console_and_the_engine_keeps_running(engine: EngineProcess) -> None:
    remote = await RemoteEngine(engine.socket).connect()
    other = await RemoteEngine(engine.socket).connect()       # a second console at the same time
    app = make_app(remote)
    try:
        async with app.run_test(size=(80, 24), notifications=True) as pilot:
            await pilot.pause()
            await pilot.press("q")
            await eventually(lambda: app.return_value is not None, 5, "the console to close", pilot)
            assert not isinstance(app.screen, ConfirmScreen)
        assert app.return_value == "close"
    finally:
        await remote.close()
    candles = other.snapshot().candles
    await eventually(lambda: other.snapshot().candles > candles, 10, "the engine to trade on")
    assert not other.gone
    await other.close()
    s = status(engine.db)
    assert s["engine_running"] is True and s["kill_switch"]["active"] is False
    assert engine.proc.poll() is None


async def test_engine_gone_then_reattach(tmp_path: Path) -> None:
    eng = EngineProcess(tmp_path / "radar.db").wait_for_socket()
    remote = await RemoteEngine(eng.socket).connect()
    app = make_app(remote)
    try:
        async with app.run_test(size=(80, 24), notifications=True) as pilot:
            await pilot.pause()
            assert "engine gone" not in header(app)
            assert await asyncio.to_thread(eng.stop) < 10
            await eventually(lambda: "engine gone" in header(app), 10, "'engine gone' in the header", pilot)
            await eventually(lambda: "engine gone" in str(app.screen.query_one("RadarHeader").render()), 5,
                             "the header repainted", pilot)
            await pilot.press("K")                            # trading commands: nothing to send to
            await pilot.pause()
            assert not isinstance(app.screen, ConfirmScreen)
            await pilot.press("r")                            # nobody listens yet
            await eventually(lambda: any("still no engine" in m for m in said(app)), 10, "the retry's answer", pilot)
            eng = await asyncio.to_thread(lambda: EngineProcess(tmp_path / "radar.db").wait_for_socket())
            await pilot.press("r")
            await eventually(lambda: "engine gone" not in header(app), 15, "the re-attach", pilot)
            assert any("re-attached" in m for m in said(app))
    finally:
        await remote.close()
        eng.stop()


def test_attach_without_an_engine_names_the_socket(tmp_path: Path) -> None:
    db = tmp_path / "radar.db"
    run = subprocess.run(radar_cmd(db, "attach"), cwd=ROOT, env=env(), capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 1
    assert run.stderr == (f"radar: error: no engine running: {db}.sock does not exist (start one with `radar run`, "
                          "or check --db)\n")
    run = subprocess.run([*radar_cmd(tmp_path / "other.db", "attach"), "--db", str(db), "--readonly"], cwd=ROOT,
                         env=env(), capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 1 and f"{db}.sock" in run.stderr and run.stderr.count("\n") == 1
    assert not db.exists()
