"""The console shell: hosting, registry (keys, palette, help), confirmations, read-only,
coalesced refresh, quit/detach. Driven by keyboard through Textual's pilot.

Helpers here (`FakeAPI`, `replay_engine_at_open_cycle`) are shared with test_tui_screens.py."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from core.events.bus import CandleEvent, EventBus, KillSwitchEvent
from tests.support.shared_data import shared_file
from tui.app import APP_ACTIONS, RadarApp, SessionState
from tui.refresh import Coalescer, RateLimiter
from tui.screens.base import RadarScreen
from core.api.local_port import LocalPort
from tui.widgets.confirm import ConfirmScreen, TypedConfirmScreen
from tui.widgets.help import HelpScreen
from tui.widgets.palette import PaletteCommand, PaletteScreen, match

BTC_1H = "binance-spot/BTC_USDT-1h.json.gz"


# ------------------------------------------------------------------------------ a small fake EngineAPI
class FakeAPI:
    """Implements the EngineAPI methods the console uses, in memory."""

    def __init__(self, with_position: bool = True) -> None:
        self.bus = EventBus()
        self.kills: list[tuple[str, bool]] = []
        self.resumes: list[str] = []
        self.kill_active = False
        self.price = 100.0
        self.snapshots = 0
        self.position = ({"strategy": "envelope_dca", "symbol": "BTC/USDT", "side": "long", "qty": 0.5,
                          "avg_entry": 95.0, "stop": 80.0, "levels_filled": 2, "unrealized": 2.5}
                         if with_position else None)

    def _grid(self, symbol: str) -> dict:
        return {"strategy": "envelope_dca", "symbol": symbol, "timeframe": "1h", "levels": [97.0, 95.0, 93.0],
                "take_profit": 101.0, "levels_filled": 2 if symbol == "BTC/USDT" and self.position else 0,
                "num_levels": 3, "stop": 80.0, "cycles": 4, "cash": 1000.0, "equity": 1002.5, "cursor_ts": 0,
                "open_orders": [] if self.kill_active else
                [{"client_id": f"rd-{symbol}-L2", "purpose": "entry", "level": 2, "price": 93.0}]}

    def _pos(self, symbol: str) -> dict:
        if symbol == "BTC/USDT" and self.position:
            return dict(self.position)
        return {"strategy": "envelope_dca", "symbol": symbol, "side": "long", "qty": 0.0, "avg_entry": None,
                "stop": None, "levels_filled": 0, "unrealized": 0.0}

    def snapshot(self) -> dict:
        self.snapshots += 1
        syms = {s: [{"strategy": "envelope_dca", "timeframe": "1h", "last_price": self.price * k, "last_ts": 0,
                     "position": self._pos(s), "grid": self._grid(s)}]
                for s, k in (("BTC/USDT", 1.0), ("ETH/USDT", 0.5), ("DOGE/USDT", 0.01))}
        return {"mode": "paper", "equity": 1002.5, "day_pnl": -3.25,
                "kill_switch": {"active": self.kill_active}, "candles": 10, "candles_per_s": 0.0, "symbols": syms}

    def positions(self) -> list[dict]:
        return [self._pos("BTC/USDT")] if self.position else []

    def grid_state(self, symbol: str, strategy: str | None = None, detail: bool = False) -> dict:
        return self._grid(symbol)

    async def kill(self, actor: str, flatten: bool = False, reason: str = "command") -> dict:
        self.kills.append((actor, flatten))
        self.kill_active = True
        if flatten:
            self.position = None
        self.bus.publish(KillSwitchEvent(True, flatten, actor, reason))
        return {"active": True, "cancelled_entries": 3, "flattened": 1 if flatten else 0}

    async def resume(self, actor: str, reason: str = "resume") -> dict:
        self.resumes.append(actor)
        self.kill_active = False
        return {"active": False}

    def events(self, kinds=None, maxsize=None):
        return self.bus.subscribe(kinds, maxsize)


def make_app(api=None, *, alerts=None, jobs=None, health=None, **kw) -> RadarApp:
    """The console on `api` (an EngineAPI or the FakeAPI) through an in-process `LocalPort`."""
    kw.setdefault("host_name", "trade-01")
    kw.setdefault("actor", "console:test")
    api = api or FakeAPI()
    port = api if isinstance(api, LocalPort) else LocalPort(api, alerts=alerts, jobs=jobs, health=health)
    return RadarApp(port, **kw)


async def settle(pilot, n: int = 3) -> None:
    for _ in range(n):
        await pilot.pause()


# ------------------------------------------------------------------------------ replay engine helpers
class _StopAfterFeed:
    """Replays candles up to and including `stop_ts`, then waits (like a quiet live feed)."""

    def __init__(self, inner, stop_ts: int) -> None:
        self.inner, self.stop_ts = inner, stop_ts
        self.symbol, self.timeframe = inner.symbol, inner.timeframe
        self.live = False
        self.last_message_at = None

    async def stream(self, after_ts=None):
        async for ev in self.inner.stream(after_ts):
            yield ev
            if getattr(ev, "ts", None) is not None and ev.ts >= self.stop_ts:
                break
        await asyncio.Event().wait()


def replay_engine_at_open_cycle(tmp_path: Path, n: int = 3000):
    """(engine, stop_ts, cycle): an Engine replaying the first `n` BTC 1h candles up to the candle
    where a backtested cycle is open (its first fill), then idling."""
    from core.backtest.event_engine import run_event_backtest
    from core.backtest.loading import load_from_file
    from core.data.replay import ReplayFeed
    from core.engine.engine import CandleSource, Engine, RunnerSpec
    from core.model.account import Account

    candles = load_from_file(shared_file(BTC_1H))
    candles = candles[:n] if hasattr(candles, "__getitem__") else candles
    res = run_event_backtest(candles, "envelope_dca", {}, Account())
    cycle = next(c for c in res.cycles if c.close_time > c.open_time and c.exit_reason != "end")
    stop_ts = cycle.open_time
    cols = [a.tolist() for a in (candles.ts, candles.open, candles.high, candles.low, candles.close)]

    def history(up_to, k):
        rows = [r for r in zip(*cols) if up_to is None or r[0] <= up_to]
        return rows[-k:]

    src = CandleSource(candles.symbol, candles.timeframe,
                       lambda after: _StopAfterFeed(ReplayFeed.from_candles(candles, speed="max",
                                                                            start_after_ts=after), stop_ts),
                       history)
    eng = Engine(tmp_path / "engine.db", [src], [RunnerSpec("envelope_dca", {}, candles.symbol, candles.timeframe)],
                 Account(), status_interval=0)
    return eng, stop_ts, cycle


async def wait_for(cond, timeout: float = 60.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not cond():
        if loop.time() > end:
            raise AssertionError("timed out waiting")
        await asyncio.sleep(0.01)


# ------------------------------------------------------------------------------ refresh coalescing
def test_coalescer_limits_to_max_hz() -> None:
    now = [0.0]
    c = Coalescer(max_hz=10, heartbeat_s=0, clock=lambda: now[0])
    paints = 0
    for i in range(1000):                 # 1000 events over one second
        now[0] = i / 1000
        c.mark()
        if c.due():
            paints += 1
    assert paints <= 10 + 1
    assert paints >= 9
    now[0] = 5.0
    assert c.due() is False or c.dirty is False           # nothing new: no repaint without heartbeat


def test_coalescer_heartbeat_and_rate_limiter() -> None:
    now = [0.0]
    c = Coalescer(max_hz=10, heartbeat_s=1.0, clock=lambda: now[0])
    assert c.due()
    now[0] = 0.5
    assert not c.due()
    now[0] = 1.01
    assert c.due()
    r = RateLimiter(10, clock=lambda: now[0])
    assert r.allow("a") and not r.allow("a") and r.allow("b")


def test_session_state_atr_and_feed_age() -> None:
    now = [100.0]
    s = SessionState(clock=lambda: now[0], atr_period=3)
    assert s.atr_pct("X") is None and s.feed_age("X") is None
    for c in (10.0, 11.0, 12.0):
        s.on_candle("X", c + 1, c - 1, c)
    assert s.atr_pct("X") == pytest.approx(2.0 / 12.0 * 100)
    now[0] = 105.0
    assert s.feed_age("X") == pytest.approx(5.0)


# ------------------------------------------------------------------------------ registry
def test_registry_keys_are_letters_fkeys_ctrl_or_grammar() -> None:
    from tui.screens.alerts import AlertsScreen
    from tui.screens.positions import PositionsScreen
    from tui.screens.scanner import ScannerScreen

    allowed_special = {"colon", "slash", "question_mark", "escape", "enter"}
    for acts in (APP_ACTIONS, ScannerScreen.ACTIONS, PositionsScreen.ACTIONS, AlertsScreen.ACTIONS):
        for a in acts:
            k = a.key
            assert (not k or k in allowed_special or (len(k) == 1 and (k.isalpha() or k.isdigit()))
                    or k.startswith("ctrl+") or (k[0] == "f" and k[1:].isdigit())), k
    destructive = {a.name for a in APP_ACTIONS if a.destructive}
    assert {"kill", "flatten-all", "cancel-all"} <= destructive
    # no ctrl+z anywhere
    assert all(a.key != "ctrl+z" for a in APP_ACTIONS)
    assert not any(getattr(b, "key", b[0] if isinstance(b, tuple) else "") == "ctrl+z" for b in RadarApp.BINDINGS)


def test_palette_matching() -> None:
    cmds = [PaletteCommand("kill", "Trip"), PaletteCommand("alerts", "Go"), PaletteCommand("ack", "Acknowledge")]
    assert [c.name for c in match(cmds, ":a")] == ["alerts", "ack"]
    assert [c.name for c in match(cmds, "ack")][0] == "ack"


# ------------------------------------------------------------------------------ app: keys, screens
async def test_number_keys_switch_screens_and_header() -> None:
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert type(app.screen).__name__ == "ScannerScreen"
        header = app.screen.query_one("RadarHeader")
        text = header.state
        assert text.mode == "paper" and text.equity == 1002.5 and text.day_pnl == -3.25
        from tui.widgets.header import render_header
        plain = render_header(text, 80).plain
        assert "PAPER" in plain and "−3.25" in plain and "kill off" in plain and "trade-01" in plain
        for key, name in (("3", "PositionsScreen"), ("4", "AlertsScreen"), ("1", "ScannerScreen")):
            await pilot.press(key)
            await settle(pilot)
            assert type(app.screen).__name__ == name
        for key in ("2", "5", "6"):                     # other engineers' screens, or placeholders
            await pilot.press(key)
            await settle(pilot)
            assert isinstance(app.screen, RadarScreen)
        await pilot.press("escape")                   # back
        await settle(pilot)
        assert isinstance(app.screen, RadarScreen)


async def test_live_mode_reads_without_colour() -> None:
    from tui.widgets.header import HeaderState, render_header

    t = render_header(HeaderState(host="h", mode="live", equity=1.0, day_pnl=2.0, kill_active=True, alerts=3), 80)
    assert "LIVE" in t.plain and "+2.00" in t.plain and "KILL ON" in t.plain and "alerts 3" in t.plain


async def test_help_and_palette_from_registry() -> None:
    api = FakeAPI()
    app = make_app(api)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("4")
        await settle(pilot)
        await pilot.press("question_mark")
        await settle(pilot)
        assert isinstance(app.screen, HelpScreen)
        helptext = " ".join(str(s.render()) for s in app.screen.query("Static"))
        assert ":ack" in helptext or "ack" in helptext
        await pilot.press("escape")
        await settle(pilot)
        assert type(app.screen).__name__ == "AlertsScreen"
        await pilot.press("colon")
        await settle(pilot)
        assert isinstance(app.screen, PaletteScreen)
        names = {c.name for c in app.screen.commands}
        assert {"ack", "snooze", "kill", "quit", "positions"} <= names
        await pilot.press(*"positions", "enter")
        await settle(pilot)
        assert type(app.screen).__name__ == "PositionsScreen"


async def test_kill_needs_named_confirmation() -> None:
    api = FakeAPI()
    app = make_app(api)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("K")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmScreen)
        assert "KILL SWITCH" in app.screen.message and "cancel" in app.screen.message
        assert "Positions are NOT closed" in app.screen.message
        await pilot.press("enter")                    # focus is on Cancel: enter alone never confirms
        await settle(pilot)
        assert api.kills == []
        await pilot.press("K")
        await settle(pilot)
        await pilot.press("n")
        await settle(pilot)
        assert api.kills == [] and not isinstance(app.screen, ConfirmScreen)
        await pilot.press("K")
        await settle(pilot)
        await pilot.press("y")
        await settle(pilot, 5)
        assert api.kills == [("console:test", False)]
        assert app.header_state().kill_active


async def test_flatten_all_needs_the_word_typed() -> None:
    api = FakeAPI()
    app = make_app(api)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("colon", *"flatten-all", "enter")
        await settle(pilot)
        assert isinstance(app.screen, TypedConfirmScreen)
        assert app.screen.word == "FLATTEN" and "BTC/USDT" in app.screen.message
        await pilot.press(*"yes", "enter")
        await settle(pilot)
        assert api.kills == [] and isinstance(app.screen, TypedConfirmScreen)
        await pilot.press("ctrl+a", "ctrl+k", *"FLATTEN", "enter")
        await settle(pilot, 5)
        assert api.kills == [("console:test", True)]


async def test_readonly_disables_kill_and_quit() -> None:
    api = FakeAPI()
    app = make_app(api, readonly=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("K")
        await settle(pilot)
        assert not isinstance(app.screen, ConfirmScreen) and api.kills == []
        await app.run_registered(app, "kill")         # palette path too
        await settle(pilot)
        assert not isinstance(app.screen, ConfirmScreen) and api.kills == []
        await pilot.press("colon", *"cancel-all", "enter")
        await settle(pilot)
        assert not isinstance(app.screen, TypedConfirmScreen) and api.kills == []
        await pilot.press("q")
        await settle(pilot)
        assert app.is_running and app.return_value is None
        assert app.header_state().readonly


async def test_q_with_open_position_asks_first() -> None:
    api = FakeAPI(with_position=True)
    app = make_app(api)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("q")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmScreen) and "OPEN" in app.screen.message
        await pilot.press("n")
        await settle(pilot)
        assert app.return_value is None
        await pilot.press("q")
        await settle(pilot)
        await pilot.press("y")
        await settle(pilot)
    assert app.return_value == "quit"


async def test_q_flat_quits_and_d_detaches() -> None:
    app = make_app(FakeAPI(with_position=False))
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("q")
        await settle(pilot)
    assert app.return_value == "quit"
    app = make_app(FakeAPI())
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("d")
        await settle(pilot)
    assert app.return_value == "detach"


async def test_ctrl_z_does_nothing() -> None:
    app = make_app(FakeAPI())
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+z")
        await settle(pilot)
        assert app.is_running and type(app.screen).__name__ == "ScannerScreen"


async def test_engine_events_are_coalesced_and_hidden_screens_not_refreshed() -> None:
    api = FakeAPI()
    app = make_app(api)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        positions = app._screens["positions"]
        calls = {"n": 0}
        orig = positions.refresh_data

        def counting(a):
            calls["n"] += 1
            return orig(a)

        positions.refresh_data = counting
        scanner = app.screen
        s_calls = {"n": 0}
        s_orig = scanner.refresh_data

        def s_counting(a):
            s_calls["n"] += 1
            return s_orig(a)

        scanner.refresh_data = s_counting
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        for i in range(2000):
            api.bus.publish(CandleEvent("BTC/USDT", "1h", i, 1, 2, 0.5, 1.5))
            if i % 100 == 0:
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        elapsed = loop.time() - t0
        assert calls["n"] == 0                          # hidden: never refreshed
        assert 1 <= s_calls["n"] <= int(elapsed * 10) + 2
        assert positions.stale
        await pilot.press("3")
        await settle(pilot, 5)
        assert calls["n"] >= 1                           # repainted when shown


async def test_alert_toast_and_bell_on_critical(tmp_path: Path) -> None:
    from core.alerts import AlertEngine

    alerts = await AlertEngine.open(tmp_path / "a.db")
    try:
        app = make_app(FakeAPI(), alerts=alerts)
        bells = []
        app.bell = lambda: bells.append(1)
        async with app.run_test(size=(80, 24)) as pilot:
            await settle(pilot)
            await alerts.raise_alert("feed.stale:x", "critical", "feed", "BTC feed stale")
            await settle(pilot, 5)
            assert bells == [1]
            assert any("BTC feed stale" in str(n.message) for n in app._notifications)
            app.refresh_now()
            assert app.header_state().alerts == 1
    finally:
        await alerts.close()


# ------------------------------------------------------------------------------ hosting with the real engine
async def test_host_detach_keeps_engine_running_then_sighup(tmp_path: Path) -> None:
    from tui.hosting import ConsoleHost

    eng, stop_ts, _ = replay_engine_at_open_cycle(tmp_path)
    host = ConsoleHost(eng, headless_app=True, app_kwargs={"host_name": "t"})
    task = asyncio.get_running_loop().create_task(host.run())
    await wait_for(lambda: host.app.is_running and eng.runners and eng.runners[0].cursor == stop_ts)
    os.kill(os.getpid(), signal.SIGHUP)               # the SSH session died
    await wait_for(lambda: not host.app.is_running)
    await asyncio.sleep(0.2)
    assert not task.done() and not eng._stopping      # the engine carries on headless
    assert host.detached_by == "SIGHUP"
    host._on_stop_signal()                            # SIGTERM later: graceful stop
    assert await asyncio.wait_for(task, 30) == "detached"


async def test_host_quit_stops_engine(tmp_path: Path) -> None:
    from tui.hosting import ConsoleHost

    eng, stop_ts, _ = replay_engine_at_open_cycle(tmp_path)
    host = ConsoleHost(eng, headless_app=True, install_signals=False, app_kwargs={"host_name": "t"})
    task = asyncio.get_running_loop().create_task(host.run())
    await wait_for(lambda: host.app.is_running and eng.runners and eng.runners[0].cursor == stop_ts)
    assert eng.runners[0].position()["qty"] > 0
    host.app.call_later(host.app.action_quit_radar)   # open position: asks first
    await wait_for(lambda: isinstance(host.app.screen, ConfirmScreen))
    host.app.screen.dismiss(True)
    assert await asyncio.wait_for(task, 30) == "quit"
    assert eng._stopping
