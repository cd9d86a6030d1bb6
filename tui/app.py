"""RadarApp: the keyboard-driven console over a running Engine, through one port.

    app = RadarApp(LocalPort(EngineAPI(engine, alerts=..., jobs=..., watchdog=...),
                             commands=api_server.run_command), readonly=False)
    await app.run_async()          # see tui.hosting.run_console: the engine is started first

* The console takes the engine's port and nothing else: an in-process engine's
  `core.api.local_port.LocalPort` or an attached console's `tui.remote.RemoteEngine`. Both
  answer typed views (`core.api.views`: snapshot, runner, position, grid) parsed from the same
  API dicts, the run's services (`port.alerts`, `port.jobs`, `port.health`), an event
  subscription and the commands (audited by the engine); no screen reaches into the engine or
  opens its database.

* Screens by number: 1 Scanner, 2 Grid, 3 Positions, 4 Alerts, 5 Jobs, 6 Health (2/5/6 are
  imported from tui.screens.grid/jobs/health when those modules exist; a placeholder otherwise).
  Only the first screen is built before the first frame; the others are built one per loop
  turn after it (or at once when asked for first).
* One registry (`tui.actions`): the app's own `APP_ACTIONS` + each screen's `ACTIONS` make
  the key bindings, the `:` palette and the `?` help. `--readonly` refuses every action not
  `readonly_ok`; destructive actions ask first (K names what it does; flatten-all /
  cancel-all need the word typed).
* Engine events only mark the console dirty; a 10 Hz timer repaints the header and the
  visible screen (`tui.refresh.Coalescer`); hidden screens are repainted when shown.
* `q` stops the engine (asks first when positions are open) -> return value "quit";
  `d` detaches -> "detach" (the host keeps the engine running headless). No ctrl+z.
* When the engine ends (end of a replay, or an error) the console stays on the final state
  (`engine_ended`): the header says "replay finished" or "ENGINE STOPPED: <error>", the
  trading commands are refused, and `q` leaves at once.
* Toasts: WARNING alerts and above only, coalesced, two at most (`tui.toasts`).
* Engine commands that fail or are refused (a RadarError) are a toast, never a crash.
* `radar attach` runs this console on an engine in another process (`tui.attach`,
  `tui.remote`): there `q` / `d` close the console only and `r` re-attaches.
"""

from __future__ import annotations

import gc
import getpass
import logging
import socket
import time
from typing import Any, Callable

from textual.app import App
from textual.binding import Binding
from textual.widgets import Static

from core.api.views import GridStateView, SnapshotView
from core.errors import RadarError
from tui.actions import Action
from tui.confirmations import confirm_text, position_list
from tui.job_control import release_job_control_signals
from tui.refresh import Coalescer
from tui.screens.base import RadarScreen
from tui.session import SessionState
from tui.toasts import ToastCoalescer, alert_toasted, toast_severity
from tui.widgets.confirm import ConfirmScreen, TypedConfirmScreen
from tui.widgets.header import HeaderState, RadarHeader
from tui.widgets.help import HelpScreen
from tui.widgets.palette import PaletteCommand, PaletteScreen

log = logging.getLogger(__name__)

#: (number, name, module, class) of the numbered screens
SCREENS: tuple[tuple[int, str, str, str], ...] = (
    (1, "scanner", "tui.screens.scanner", "ScannerScreen"),
    (2, "grid", "tui.screens.grid", "GridScreen"),
    (3, "positions", "tui.screens.positions", "PositionsScreen"),
    (4, "alerts", "tui.screens.alerts", "AlertsScreen"),
    (5, "jobs", "tui.screens.jobs", "JobsScreen"),
    (6, "health", "tui.screens.health", "HealthScreen"),
    (7, "risk", "tui.screens.risk", "RiskScreen"),
    (8, "performance", "tui.screens.performance", "PerformanceScreen"),
)

APP_ACTIONS: tuple[Action, ...] = tuple(
    Action(name, str(num), f"Go to the {name.capitalize()} screen", f"show({name!r})", readonly_ok=True)
    for num, name, _, _ in SCREENS) + (
    Action("palette", "colon", "Open the command palette", "palette", readonly_ok=True),
    Action("help", "question_mark", "Keys and commands of this screen", "help", readonly_ok=True),
    Action("back", "escape", "Back to the previous screen", "back", readonly_ok=True),
    Action("kill", "K", "Trip the kill switch: cancel pending entries, keep stops, block new entries",
           "kill_switch", destructive=True),
    Action("resume", "", "Clear the kill switch: entries are placed again from the next candle",
           "resume", destructive=True),
    Action("flatten-all", "", "Trip the kill switch and close every position at market (type FLATTEN)",
           "flatten_all", destructive=True),
    Action("cancel-all", "", "Cancel every pending entry order and block new ones (type CANCEL)",
           "cancel_all", destructive=True),
    Action("detach", "d", "Detach the console: the engine keeps running headless", "detach", readonly_ok=True),
    Action("quit", "q", "Stop the engine gracefully and quit (asks when positions are open)", "quit_radar"),
)

TYPED_WORDS = {"flatten-all": "FLATTEN", "cancel-all": "CANCEL"}

#: app actions that change the engine's trading (refused once the engine has stopped)
TRADING_COMMANDS = frozenset({"kill", "resume", "flatten-all", "cancel-all"})

TF_SECONDS = {"m": 60, "h": 3600, "d": 86400, "w": 604800}


class _TickAPI:
    """The engine port seen by one repaint: `snapshot()` and each `grid()` computed once per tick."""

    def __init__(self, api: Any) -> None:
        self._api = api
        self._snap: SnapshotView | None = None
        self._grids: dict[tuple, GridStateView] = {}

    def snapshot(self) -> SnapshotView:
        if self._snap is None:
            self._snap = self._api.snapshot()
        return self._snap

    def grid(self, symbol: str, strategy: str | None = None) -> GridStateView:
        key = (symbol, strategy)
        g = self._grids.get(key)
        if g is None:
            g = self._grids[key] = self._api.grid(symbol, strategy)
        return g

    def __getattr__(self, name: str) -> Any:
        return getattr(self._api, name)


class MissingScreen(RadarScreen):
    """Placeholder for a numbered screen whose module is not there (yet)."""

    def __init__(self, title: str, reason: str) -> None:
        super().__init__()
        self.title_text = title
        self.reason = reason

    def compose(self):
        from textual.widgets import Footer

        yield Static(f"{self.title_text}: not available in this build ({self.reason})", id="missing")
        yield Footer()


def _load_screen(num: int, name: str, module: str, cls_name: str) -> RadarScreen:
    import importlib

    try:
        mod = importlib.import_module(module)
        cls = getattr(mod, cls_name)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            log.error("screen %s cannot be imported: %s", name, exc)
        return MissingScreen(name.capitalize(), "module missing" if exc.name == module else str(exc))
    except Exception as exc:                      # a broken screen must not take the console down
        log.exception("screen %s cannot be imported", name)
        return MissingScreen(name.capitalize(), f"import error: {exc}")
    try:
        screen = cls()
    except Exception as exc:
        log.exception("screen %s cannot be created", name)
        return MissingScreen(name.capitalize(), f"error: {exc}")
    if not getattr(screen, "SCREEN_TITLE", ""):
        screen.SCREEN_TITLE = name.capitalize()
    return screen


SCREEN_NAMES = tuple(name for _, name, _, _ in SCREENS)

#: a console of this process froze its start-up heap (see RadarApp._freeze_startup_heap)
_heap_frozen = False


class _Screens(dict):
    """name -> the installed RadarScreen; a screen not built yet is built when looked up."""

    def __init__(self, load: Callable[[str], RadarScreen]) -> None:
        super().__init__()
        self._load = load

    def __missing__(self, name: str) -> RadarScreen:
        if name not in SCREEN_NAMES:
            raise KeyError(name)
        return self._load(name)

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        return self[name] if name in SCREEN_NAMES else super().get(name, default)


class RadarApp(App[str]):
    """See the module docstring.

    Args:
        port: the engine's port (`core.api.local_port.LocalPort` or `tui.remote.RemoteEngine`):
            typed queries, events, commands, and the run's services as `port.alerts` (AlertEngine
            or its remote look-alike, or None), `port.jobs`, `port.health`; screens reach them
            as `self.app.alerts/jobs/health`.
        readonly: refuse every action that changes anything.
        host_name: shown in the header (default: this machine's name).
        actor: recorded as who acknowledged/killed (default "console:<user>").
        clock: monotonic seconds (tests freeze it).
        start_screen: the screen shown first.
        freeze_gc: `gc.freeze()` the start-up heap (once per process; see `_freeze_startup_heap`).
    """

    TITLE = "Radar"
    #: the share of the event loop repaints may take (`tui.refresh.Coalescer`): the in-process
    #: console shares its loop with the engine; an attached console has its own process
    REPAINT_DUTY = 0.04
    #: the console-wide actions (an attached console has its own: `tui.attach`)
    APP_ACTIONS: tuple[Action, ...] = APP_ACTIONS
    ENABLE_COMMAND_PALETTE = False
    CSS = """
    Screen { layout: vertical; }
    DataTable { height: 1fr; }
    #missing { padding: 1 2; }
    """
    BINDINGS = [Binding("ctrl+q", "radar('quit')", "Quit", show=False, priority=True)] + [
        Binding(a.key, f"radar({a.name!r})", a.description, show=a.key in ("colon", "question_mark", "K", "q", "d"))
        for a in APP_ACTIONS if a.key]

    def __init__(self, port: Any, *, readonly: bool = False, host_name: str | None = None, actor: str | None = None,
                 clock: Callable[[], float] = time.monotonic, start_screen: str = "scanner",
                 max_hz: float = 10.0, freeze_gc: bool = True) -> None:
        super().__init__()
        self.api = port
        self.alerts = getattr(port, "alerts", None)
        self.jobs = getattr(port, "jobs", None)
        self.health = getattr(port, "health", None)
        #: the engine's config folder (an applied result is written there), or None: the default
        self.config_dir = getattr(port, "config_dir", None)
        self.readonly = readonly
        self.host_name = host_name or socket.gethostname()
        try:
            user = getpass.getuser()
        except Exception:
            user = "operator"
        self.actor = actor or f"console:{user}"
        self.clock = clock
        self.session = SessionState(clock)
        self.coalescer = Coalescer(max_hz=max_hz, heartbeat_s=1.0, clock=clock, duty=self.REPAINT_DUTY)
        #: an engine event means the port's snapshot has changed already (in-process); an attached
        #: console's snapshot changes when its port says so (an event with `fresh_data`)
        self._fresh_on_events = bool(getattr(port, "fresh_on_events", True))
        self._kick_timer: Any = None
        self.start_screen = start_screen
        self.freeze_gc = freeze_gc
        self._froze_heap = False
        if freeze_gc:
            self._freeze_startup_heap()             # the engine's data: not walked by the GC while starting
        self.engine_stopped = False
        self.engine_error = ""
        self.toasts = ToastCoalescer()
        self.paints = 0
        self._screens: dict[str, RadarScreen] = _Screens(self._load)
        self._history: list[str] = []
        self._current = ""
        self._sub = None
        self._known_alerts: set[int] = set()
        self._refresh_cost = 0.0                   # seconds of the last refresh_now (see _time_frames)

    # ------------------------------------------------------------------ lifecycle
    def on_mount(self) -> None:
        release_job_control_signals()               # no suspend; see tui.job_control
        self._load(self.start_screen)               # the others after the first frame (_prepare_screens)
        if self.alerts is not None:
            self._known_alerts = {a.id for a in self.alerts.list()}
            self.alerts.listeners.add(self._on_alert_changed)
        events = getattr(self.api, "events", None)
        if events is not None:
            self._sub = events(maxsize=2000)
            self.run_worker(self._pump_events(), name="engine-events", group="engine-events")
        self._current = self.start_screen
        self.push_screen(self.start_screen)
        self.set_interval(self.coalescer.min_interval, self._tick, name="radar-refresh")
        self.call_after_refresh(self.refresh_now)

    def _load(self, name: str) -> RadarScreen:
        """Import, build and install the screen `name` (once)."""
        screen = dict.get(self._screens, name)
        if screen is None:
            num, _, module, cls_name = next(entry for entry in SCREENS if entry[1] == name)
            screen = _load_screen(num, name, module, cls_name)
            dict.__setitem__(self._screens, name, screen)
            self._time_frames(screen)
            self.install_screen(screen, name)
        return screen

    async def _prepare_screens(self) -> None:
        """After the first frame: build the screens not shown yet, one per loop turn, a short
        pause between them (on the loop: module code run in a thread would hold the GIL against
        the engine's SQLite calls, see tui.widgets.chart_build)."""
        import asyncio

        for _, name, _, _ in SCREENS:
            await asyncio.sleep(0.05)
            if dict.get(self._screens, name) is None:
                self._load(name)
        if self._froze_heap:
            gc.freeze()                             # the screens are start-up objects too

    def _time_frames(self, screen: Any) -> None:
        """Report the cost of the screen's compositor frames to the coalescer (adaptive pacing).

        Wraps the screen's `_on_timer_update` (Textual's per-frame layout + render) on the
        instance, before its update timer is created at mount."""
        frame = getattr(screen, "_on_timer_update", None)
        if frame is None:
            return
        observe = self.coalescer.observe

        def timed_frame() -> None:
            t0 = time.perf_counter()
            frame()
            observe(time.perf_counter() - t0 + self._refresh_cost)
            self._refresh_cost = 0.0

        screen._on_timer_update = timed_frame

    def on_unmount(self) -> None:
        from tui.widgets import chart_build

        chart_build.shutdown()                      # the chart's helper process, if it was started
        if self.alerts is not None:
            self.alerts.listeners.remove(self._on_alert_changed)
        if self._sub is not None:
            self._sub.close()

    async def _pump_events(self) -> None:
        from core.events.bus import AlertEvent, CandleEvent, KillSwitchEvent

        sub = self._sub
        try:
            async for ev in sub:
                if type(ev) is CandleEvent:
                    self.session.on_candle(ev.symbol, ev.high, ev.low, ev.close)
                elif isinstance(ev, KillSwitchEvent):
                    if ev.actor != self.actor:      # our own K is reported by its action
                        self.notify(f"kill switch {'ON' if ev.active else 'off'} by {ev.actor}"
                                    f"{' (flatten)' if ev.flatten else ''}: {ev.reason}",
                                    severity="error" if ev.active else "warning", timeout=8)
                elif isinstance(ev, AlertEvent) and self.alerts is None:
                    self._toast(ev.severity, ev.title)
                if self._fresh_on_events or getattr(ev, "fresh_data", False):
                    self.coalescer.mark()
                    self._kick()
        except StopAsyncIteration:
            pass

    def _on_alert_changed(self, alert: Any) -> None:
        self.coalescer.mark()
        if alert.id not in self._known_alerts:
            self._known_alerts.add(alert.id)
            self._toast(getattr(alert.severity, "value", alert.severity), alert.title)

    def _toast(self, severity: Any, title: str) -> None:
        """A toast for an engine alert: WARNING and above only (INFO goes to the alert log and
        the screens, see `tui.toasts`); CRITICAL rings the bell too."""
        if not alert_toasted(severity):
            return
        sev = str(getattr(severity, "value", severity)).lower()
        self.notify(f"{sev.upper()}: {title}", title="alert", severity=toast_severity(sev), timeout=10)
        if sev == "critical":
            self.bell()

    def _on_notify(self, event: Any) -> None:
        """Every toast of the console goes through the coalescer (repeats counted, two at most)."""
        event.prevent_default()                      # instead of App._on_notify
        self.toasts.admit(self._notifications, event.notification)
        self._refresh_notifications()

    # ------------------------------------------------------------------ refresh
    def _tick(self) -> None:
        if self.coalescer.due():
            self.refresh_now()

    def _kick(self) -> None:
        """Fresh data: repaint as soon as the pacing allows (now, or by a one-shot timer at the
        moment it does) instead of at the next 10 Hz tick. At most one timer is pending."""
        if self._kick_timer is not None:
            return
        wait = self.coalescer.wait_s()
        if wait <= 0.0:
            self._tick()
            return

        def fire() -> None:
            self._kick_timer = None
            self._tick()

        self._kick_timer = self.set_timer(wait, fire, name="radar-kick")

    def active_radar_screen(self) -> RadarScreen | None:
        for scr in reversed(self.screen_stack):
            if isinstance(scr, RadarScreen):
                return scr
        return None

    def refresh_now(self) -> None:
        """Repaint the header and the visible screen now; the others are marked stale."""
        t0 = time.perf_counter()
        try:
            self._refresh_now()
        finally:
            self._refresh_cost = time.perf_counter() - t0

    def _refresh_now(self) -> None:
        api = _TickAPI(self.api)
        try:
            snap = api.snapshot()
        except Exception as exc:
            log.error("engine snapshot failed: %s", exc)
            return
        self.session.sample_equity(snap.equity)
        active = self.active_radar_screen()
        for scr in self._screens.values():
            if scr is not active:
                scr.stale = True
        if active is not None:
            self.paint_header(active, api)
            self.refresh_screen(active, api)
        top = self.screen_stack[-1] if self.screen_stack else None
        refresh_message = getattr(top, "refresh_message", None)
        if callable(refresh_message):               # an open confirmation: its counts follow the engine
            refresh_message()
        self.paints += 1
        if self.paints == 1:
            self.call_after_refresh(self._after_first_frame)

    def _after_first_frame(self) -> None:
        if self._froze_heap:
            gc.freeze()                             # what the first screen and frame built
        self.run_worker(self._prepare_screens(), name="prepare-screens", group="prepare-screens")

    def _freeze_startup_heap(self) -> None:
        """Move every object alive now (the engine's data and state, the loaded modules) out of
        the cyclic GC's reach (`gc.freeze`), so a full collection walks only what was allocated
        since, not the whole start-up heap: a full collection of that heap held the event loop
        for 50-150 ms under a replay (and two or three ran while the console started). Done when
        the console is created, again after its first frame and once its screens are built.

        Once per process (the first console): frozen objects are never collected, so a process
        that builds many consoles (tests) does not pin the garbage of the earlier ones."""
        global _heap_frozen
        if not _heap_frozen:
            _heap_frozen = self._froze_heap = True
            gc.freeze()

    def refresh_screen(self, screen: RadarScreen, api: Any = None) -> None:
        if not screen.is_mounted:
            return
        api = api or _TickAPI(self.api)
        try:
            with self.batch_update():
                screen.refresh_data(api)
            screen.stale = False
        except Exception as exc:
            log.exception("refresh of %s failed", type(screen).__name__)
            self.notify(f"{type(screen).__name__}: refresh failed: {exc}", severity="error", timeout=5)

    def header_state(self, api: Any = None) -> HeaderState:
        snap = (api or self.api).snapshot()
        active = self.active_radar_screen()
        title = ""
        if active is not None:
            title = f"{getattr(active, 'SCREEN_NUMBER', '')} {getattr(active, 'SCREEN_TITLE', '')}".strip()
        status = self.engine_status()
        return HeaderState(host=self.host_name, mode=snap.mode, screen=title,
                           equity=snap.equity, day_pnl=snap.day_pnl,
                           kill_active=snap.kill_switch.active, feed_age_s=self.session.max_feed_age(),
                           alerts=self.alerts.unacknowledged_count() if self.alerts is not None else 0,
                           readonly=self.readonly, stopped=bool(status), engine_status=status)

    def engine_status(self) -> str:
        """"" while the engine runs; else how it ended: "replay finished", "ENGINE STOPPED" or
        "ENGINE STOPPED: <error>" (from the snapshot, or the host's word), or what the port says
        ("engine gone: r re-attaches" for an attached console whose engine went away)."""
        gone = self.api.status_text() if hasattr(self.api, "status_text") else ""
        if gone:
            return gone
        try:
            snap = self.api.snapshot()
        except Exception:                           # noqa: BLE001 - the header still paints
            snap = None
        error = self.engine_error or (snap.error if snap is not None else "")
        if error:
            return f"ENGINE STOPPED: {error}"
        if snap is not None and snap.finished:
            return "replay finished"
        return "ENGINE STOPPED" if self.engine_stopped else ""

    def engine_ended(self, error: BaseException | None = None) -> None:
        """The host's word that the engine task ended: the console stays on the final state,
        the header says how it ended (an error is also a toast)."""
        self.engine_stopped = True
        if error is not None:
            self.engine_error = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
            self.notify(f"engine stopped: {self.engine_error}. The console shows the last state; q quits.",
                        severity="error", timeout=30)
        self.coalescer.mark()
        self.refresh_now()

    def paint_header(self, screen: RadarScreen, api: Any = None) -> None:
        try:
            header = screen.query_one(RadarHeader)
        except Exception:
            return
        header.show(self.header_state(api))

    # ------------------------------------------------------------------ registry dispatch
    def app_action(self, name: str) -> Action | None:
        return next((a for a in self.APP_ACTIONS if a.name == name), None)

    async def action_radar(self, name: str) -> None:
        await self.run_registered(self, name)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Every registered key runs: in a read-only console `run_registered` refuses what is not
        `readonly_ok` WITH a message (a key Textual skipped silently would look broken)."""
        return True

    async def run_registered(self, target: Any, name: str) -> None:
        """Run action `name` of `target` (a RadarScreen or the app): refused in read-only unless
        `readonly_ok`; destructive ones confirmed first."""
        act = self.app_action(name) if target is self else target.find_action(name)
        if act is None:
            self.notify(f"unknown command {name!r}", severity="warning")
            return
        if self.readonly and not act.readonly_ok:
            self.notify(f"read-only console: {act.name} is disabled", severity="warning")
            return
        if target is self and act.name in TRADING_COMMANDS and self.engine_status():
            self.notify(f"{act.name}: the engine is not running ({self.engine_status()}): nothing to change",
                        severity="warning")
            return
        if act.destructive:
            self._confirm_then(target, act)
            return
        await target.run_action(act.method)

    def _confirm_then(self, target: Any, act: Action) -> None:
        async def done(ok: bool | None) -> None:
            if ok and target is self and act.name in TRADING_COMMANDS and self.engine_status():
                self.notify(f"{act.name}: the engine stopped meanwhile ({self.engine_status()}): nothing done",
                            severity="warning")
            elif ok:
                await target.run_action(act.method)
            else:
                self.notify(f"{act.name}: cancelled, nothing done", timeout=3)

        word = TYPED_WORDS.get(act.name) if target is self else getattr(target, "confirm_word", lambda a: None)(act)
        source = (lambda: self.confirm_text(act)) if target is self else (lambda: target.confirm_text(act))
        text = source()
        if word:
            self.push_screen(TypedConfirmScreen(f"{act.name}: are you sure?", text, word, source=source), done)
        else:
            label = {"kill": "Trip kill switch", "resume": "Resume trading"}.get(act.name, act.name)
            self.push_screen(ConfirmScreen(f"{act.name}: confirm", text, label, source=source), done)

    def confirm_text(self, act: Action) -> str:
        """The confirmation of app action `act`, counted from the engine now (`tui.confirmations`)."""
        return confirm_text(self.api, act.name, act.description)

    # ------------------------------------------------------------------ app actions
    def action_show(self, name: str) -> None:
        if name not in SCREEN_NAMES:
            return
        self._load(name)                            # built now when not prepared yet
        if name == self._current and self.screen is self._screens[name]:
            return
        while len(self.screen_stack) > 1 and not isinstance(self.screen, RadarScreen):
            self.pop_screen()                       # close modals first
        self._history.append(self._current)
        self._history = self._history[-20:]
        self._current = name
        self.switch_screen(name)
        self.coalescer.mark()

    def action_back(self) -> None:
        while self._history:
            name = self._history.pop()
            if name != self._current and name in SCREEN_NAMES:
                self._load(name)
                self._current = name
                self.switch_screen(name)
                self.coalescer.mark()
                return

    def open_grid(self, symbol: str, strategy: str | None = None) -> None:
        """Show the Grid screen on `symbol` (and `strategy` when several run on it)."""
        grid = self._load("grid")
        show_symbol = getattr(grid, "show_symbol", None)
        if callable(show_symbol):                   # chosen first: the screen is painted on it when shown
            show_symbol(symbol, strategy)
        self.action_show("grid")

    def command_screen(self) -> Any:
        """The screen whose own keys `?` and `:` offer: the view on top when it declares its
        `ACTIONS` (e.g. a job's results over the Jobs screen), else the numbered screen."""
        top = self.screen
        if not isinstance(top, RadarScreen) and getattr(top, "ACTIONS", None) and hasattr(top, "find_action"):
            return top
        return self.active_radar_screen()

    def palette_commands(self) -> list[PaletteCommand]:
        active = self.command_screen()
        acts: list[Action] = list(active.ACTIONS) if active is not None else []
        acts += [a for a in self.APP_ACTIONS if a.name not in {x.name for x in acts}]
        return [PaletteCommand(a.name, a.description, a.key, not self.readonly or a.readonly_ok) for a in acts]

    def action_palette(self) -> None:
        active = self.command_screen()

        async def chosen(name: str | None) -> None:
            if not name:
                return
            if active is not None and active.find_action(name) is not None:
                await self.run_registered(active, name)
            elif self.app_action(name) is not None:
                await self.run_registered(self, name)

        self.push_screen(PaletteScreen(self.palette_commands()), chosen)

    def action_help(self) -> None:
        """`?`: the keys of `command_screen()` (a job's results view has its own) and the console's."""
        shown = self.command_screen()
        self.push_screen(HelpScreen(getattr(shown, "SCREEN_TITLE", ""), tuple(getattr(shown, "ACTIONS", ())),
                                    self.APP_ACTIONS, self.readonly))

    async def _engine_command(self, name: str, call: Any) -> dict | None:
        """Await the engine command `call`; a refusal (a RadarError: the engine not running, an
        attached console's read-only connection, ...) is a toast, and None is returned."""
        try:
            return await call
        except RadarError as exc:
            self.notify(f"{name}: {exc}", severity="error", timeout=10)
            return None
        finally:
            self.coalescer.mark()

    async def action_kill_switch(self) -> None:
        res = await self._engine_command("kill", self.api.kill(self.actor, flatten=False, reason="console K"))
        if res is not None:
            self.notify(f"KILL SWITCH ON: {res.get('cancelled_entries', 0)} entry order(s) cancelled, stops kept",
                        severity="error", timeout=10)

    async def action_resume(self) -> None:
        res = await self._engine_command("resume", self.api.resume(self.actor, reason="console resume"))
        if res is not None:
            self.notify("kill switch cleared: entries resume from the next candle", timeout=8)

    async def action_flatten_all(self) -> None:
        res = await self._engine_command("flatten-all",
                                         self.api.kill(self.actor, flatten=True, reason="console flatten-all"))
        if res is not None:
            self.notify(f"FLATTEN ALL: {res.get('flattened', 0)} position(s) closed, kill switch ON",
                        severity="error", timeout=10)

    async def action_cancel_all(self) -> None:
        res = await self._engine_command("cancel-all",
                                         self.api.kill(self.actor, flatten=False, reason="console cancel-all"))
        if res is not None:
            self.notify(f"CANCEL ALL: {res.get('cancelled_entries', 0)} entry order(s) cancelled, kill switch ON",
                        severity="error", timeout=10)

    def action_detach(self) -> None:
        self.exit("detach")

    def action_quit_radar(self) -> None:
        if self.engine_status():                    # nothing left to stop: leave the final state
            self.exit("quit")
            return
        positions = self.api.positions()
        if not positions:
            self.exit("quit")
            return
        pos_list = position_list(positions)

        def done(ok: bool | None) -> None:
            if ok:
                self.exit("quit")
            else:
                self.notify("quit cancelled: the engine keeps running (d detaches the console)", timeout=4)

        self.push_screen(ConfirmScreen(
            "quit: stop the engine?",
            f"{len(positions)} POSITION(S) ARE OPEN: {pos_list}. Quitting stops the engine after the candle in "
            "progress; the positions and their stops are kept in the state and resume at the next `radar run`, "
            "but nothing watches them meanwhile. (d detaches instead: the engine keeps running.)",
            "Stop engine and quit"), done)

    async def action_quit(self) -> None:               # ctrl+q and anything calling app.quit
        await self.run_registered(self, "quit")

    def detach(self, reason: str = "detach") -> None:
        """Leave the console, the engine carries on (called by the host on SIGHUP)."""
        self.exit("detach")
