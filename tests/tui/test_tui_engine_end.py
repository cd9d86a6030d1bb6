"""When the engine ends while the console is up, the console stays on the final state: a replay
that reaches the end of its data says "replay finished" in the header, an engine that fails
says "ENGINE STOPPED" with its error; the trading commands are refused; `q` leaves."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.support.shared_data import shared_file
from tests.tui.test_tui_shell import BTC_1H, FakeAPI, wait_for
from tui.hosting import ConsoleHost
from tui.widgets.confirm import ConfirmScreen
from tui.widgets.header import render_header


def _short_replay_engine(tmp_path: Path, n: int = 400):
    """An Engine replaying the first `n` BTC 1h candles to the end of the data."""
    from core.backtest.loading import load_from_file
    from core.data.replay import ReplayFeed
    from core.engine.engine import CandleSource, Engine, RunnerSpec
    from core.model.account import Account

    full = load_from_file(shared_file(BTC_1H))
    candles = full.between(None, int(full.ts[n]))
    src = CandleSource(candles.symbol, candles.timeframe,
                       lambda after: ReplayFeed.from_candles(candles, speed="max", start_after_ts=after),
                       lambda up_to, k: [])
    return Engine(tmp_path / "engine.db", [src], [RunnerSpec("envelope_dca", {}, candles.symbol, candles.timeframe)],
                  Account(), status_interval=0)


async def _still_responds(app) -> None:
    """The console still takes commands: it switches screens."""
    app.call_later(app.action_show, "positions")
    await wait_for(lambda: type(app.screen).__name__ == "PositionsScreen", 15)
    app.call_later(app.action_show, "scanner")
    await wait_for(lambda: type(app.screen).__name__ == "ScannerScreen", 15)


async def test_replay_end_keeps_the_console_on_the_final_state(tmp_path: Path) -> None:
    eng = _short_replay_engine(tmp_path)
    host = ConsoleHost(eng, headless_app=True, install_signals=False, app_kwargs={"host_name": "t"})
    task = asyncio.get_running_loop().create_task(host.run())
    await wait_for(lambda: eng.finished and host.app.engine_stopped)
    app = host.app
    await _still_responds(app)
    assert app.is_running and not task.done()
    state = app.header_state()
    assert state.engine_status == "replay finished"
    assert "replay finished" in render_header(state, 78).plain
    assert "replay finished" in app.screen.query_one("RadarHeader")._last_plain
    await app.run_registered(app, "kill")                    # nothing to change on a stopped engine
    assert not isinstance(app.screen, ConfirmScreen)
    app.call_later(app.action_quit_radar)
    assert await asyncio.wait_for(task, 30) == "engine-ended"


class FailingEngine:
    """The engine surface the host uses; its run fails once the console is up."""

    def __init__(self) -> None:
        self.finished = False
        self.error: BaseException | None = None
        self.go = asyncio.Event()
        self.stop_requests = 0

    async def start(self) -> None:
        pass

    async def run(self) -> None:
        await self.go.wait()
        self.error = RuntimeError("the replay file is corrupt at line 12")
        raise self.error

    def request_stop(self) -> None:
        self.stop_requests += 1


async def test_engine_failure_is_shown_and_q_still_quits() -> None:
    eng, api = FailingEngine(), FakeAPI()
    host = ConsoleHost(eng, api=api, headless_app=True, install_signals=False, app_kwargs={"host_name": "t"})
    task = asyncio.get_running_loop().create_task(host.run())
    await wait_for(lambda: host.app.is_running and host.app.paints > 0)
    eng.go.set()
    await wait_for(lambda: host.app.engine_stopped)
    app = host.app
    await _still_responds(app)
    status = app.header_state().engine_status
    assert status.startswith("ENGINE STOPPED") and "corrupt at line 12" in status
    assert "ENGINE STOPPED" in app.screen.query_one("RadarHeader")._last_plain
    assert any("corrupt at line 12" in str(n.message) for n in app._notifications)
    await app.run_registered(app, "kill")
    assert api.kills == [] and not isinstance(app.screen, ConfirmScreen)
    app.call_later(app.action_quit_radar)                     # open position, but the engine is gone: no question
    with pytest.raises(RuntimeError, match="corrupt"):
        await asyncio.wait_for(task, 30)
    assert host.outcome == "engine-ended"
