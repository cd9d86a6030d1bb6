"""RemoteEngine: the console's engine API backed by a running engine's API socket (`radar attach`).

    remote = RemoteEngine(socket_path_for(db), readonly=True)
    await remote.connect()                     # EngineNotRunning etc. when nobody listens
    app = AttachedRadarApp(remote, alerts=remote.alerts, jobs=remote.jobs, health=remote.health)

It answers what `RadarApp` asks of an in-process `EngineAPI`:

* queries (`snapshot()`, `positions()`, `grid()`: typed views, `core.api.views`) are
  synchronous reads of a cache. A
  background task refreshes it from `GET /v1/snapshot`: at once after engine events (at most
  `1 / max_hz` apart, the console's refresh rate) and every `idle_s` otherwise; alerts, health
  and jobs every `slow_s` and at once after an alert or health event;
* events: the `/v1/events` websocket's messages are decoded back into the bus event classes
  (`CandleEvent`, `KillSwitchEvent`, ...) and published on a local `EventBus`, so `events()` is a
  real `Subscription` and the console's event pump is the in-process one; a changed snapshot
  also publishes a `RemoteRefresh` (the console repaints), a lost or regained engine a `LinkEvent`;
* commands (`kill`, `resume`, `flatten`, `cancel_entries`) are forwarded; what the engine
  refuses (403 on a read-only connection, ...) raises `CommandRefused` with one clear line.

When the engine goes away (its event stream ends, or the socket stops answering) the cache
keeps the last state, `gone` says why and `on_link_change(False, why)` is called; `reattach()`
tries the socket again. Closing the remote never sends anything to the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.api.client import EngineClient, StreamDropped
from core.api.protocol import (ApiClientError, ApiError, CommandRefused, EngineNotRunning, EngineUnreachable,
                               refusal_text)
from core.api.views import GridStateView, PerformanceView, PositionView, RiskView, SnapshotView
from core.errors import UsageError
from core.events.bus import AlertEvent, EventBus, HealthEvent, Subscription
from tui.remote_services import RemoteAlerts, RemoteHealth, RemoteJobs

log = logging.getLogger(__name__)

#: failed snapshot reads in a row (the socket answers no more) before the engine is called gone
MAX_FAILURES = 3
#: events that change nothing the snapshot shows: they do not trigger a read (the engine's periodic
#: status line would otherwise take the read a candle right after it needs, delaying that one)
NO_WAKE = frozenset({"EngineStatus"})
#: a grid's detail is read while it was asked for within this many seconds (the Grid screen repaints at >= 1 Hz)
WATCH_S = 3.0


@dataclasses.dataclass(frozen=True)
class RemoteRefresh:
    """Published on the local bus when a refresh brought a changed snapshot (the console repaints)."""

    fresh_data = True


@dataclasses.dataclass(frozen=True)
class LinkEvent:
    """Published on the local bus when the engine was lost (connected False, `detail` why) or found."""

    connected: bool
    detail: str = ""
    fresh_data = True


def _given(**args: Any) -> dict[str, Any]:
    """The arguments that are not None (the engine takes a missing one as its default)."""
    return {k: v for k, v in args.items() if v is not None}


def _event_classes() -> dict[str, type]:
    from core.data.feed import FeedFresh, FeedReconnect, FeedStale
    from core.engine.engine import DataGap
    from core.events.bus import EVENT_KINDS

    return {k.__name__: k for k in (*EVENT_KINDS, DataGap, FeedStale, FeedFresh, FeedReconnect)}


_CLASSES: dict[str, type] | None = None


def decode_event(msg: dict) -> Any:
    """The bus event of one `/v1/events` message ({"type", "seq", "event"}), or None for a kind
    this console does not know (a newer engine) or fields that do not fit."""
    global _CLASSES
    if _CLASSES is None:
        _CLASSES = _event_classes()
    cls = _CLASSES.get(str(msg.get("type")))
    data = msg.get("event")
    if cls is None or not isinstance(data, dict):
        return None
    names = {f.name for f in dataclasses.fields(cls)}
    try:
        return cls(**{k: v for k, v in data.items() if k in names})
    except TypeError:
        return None


class RemoteEngine:
    """See the module docstring.

    Args:
        socket_path: the engine's socket (`core.api.protocol.socket_path_for(db)`).
        readonly: a read-only connection: the engine refuses its commands (403).
        source: who this console is, for the engine's audit and actor ("console").
        max_hz: snapshot reads at most this often while events come (the console's rate).
        idle_s: snapshot read period without events. slow_s: alerts/health/jobs read period.
        client_factory: builds the `EngineClient` (tests).

    Attributes:
        alerts, jobs, health: the run's services through the socket (`tui.remote_services`).
        server: the engine's `/v1/version` answer. gone: "" while attached, else why not.
        on_link_change: called with (connected, detail) when the engine is lost or found again.
    """

    #: an engine event does not change the cache by itself: `RemoteRefresh` says when it changed
    fresh_on_events = False

    def __init__(self, socket_path: str | Path, *, readonly: bool = False, source: str = "console",
                 max_hz: float = 10.0, idle_s: float = 1.0, slow_s: float = 1.0,
                 client_factory: Callable[..., EngineClient] = EngineClient) -> None:
        self.socket_path = Path(socket_path)
        self.readonly = readonly
        self.source = source
        self.min_gap_s = 1.0 / max_hz
        self.idle_s = idle_s
        self.slow_s = slow_s
        self.client_factory = client_factory
        self.client: EngineClient | None = None
        self.server: dict = {}
        self.gone = ""
        self.on_link_change: Callable[[bool, str], Any] | None = None
        self.alerts = RemoteAlerts(self)
        self.health = RemoteHealth()
        self.jobs = RemoteJobs()
        self.bus = EventBus()
        self.refreshes = 0
        self._snap: dict = {"mode": "?", "equity": None, "day_pnl": None, "kill_switch": {"active": False},
                            "candles": 0, "candles_per_s": 0.0, "symbols": {}}
        self._view = SnapshotView.from_wire(self._snap)
        self._watched: tuple[str, str] | None = None      # the grid the console shows (its detail is read)
        self._watched_at = 0.0
        self._grids: dict[tuple[str, str], GridStateView] = {}
        self._grid_raw: dict[tuple[str, str], dict] = {}
        self._tasks: list[asyncio.Task] = []
        self._wake: asyncio.Event | None = None
        self._slow_due = True
        self._closing: set[asyncio.Task] = set()
        self._reattach_lock = asyncio.Lock()

    # ------------------------------------------------------------------ link
    async def connect(self) -> RemoteEngine:
        """Open the socket, read the engine's state once and start following it.

        Raises:
            EngineNotRunning, EngineUnreachable, ProtocolMismatch, ApiError: see `core.api.client`.
        """
        global _CLASSES
        if _CLASSES is None:                        # imported now, not on the loop at the first event
            _CLASSES = _event_classes()
        client = self.client_factory(self.socket_path, readonly=self.readonly, source=self.source)
        await client.open()
        try:
            self.server = client.server or {}
            self.jobs.db_path = Path(self.server["engine"]["db"]) if self.server.get("engine", {}).get("db") else None
            await self._read_snapshot(client)
            await self._read_slow(client)
        except BaseException:
            await client.close()
            raise
        self.client = client
        self.gone = ""
        self._wake = asyncio.Event()
        self._tasks = [asyncio.create_task(self._poll(client), name="radar-attach-poll"),
                       asyncio.create_task(self._listen(client), name="radar-attach-events")]
        return self

    async def reattach(self) -> RemoteEngine:
        """Connect again after the engine was lost (nothing done while attached).

        Raises:
            ApiClientError: still no engine on the socket.
        """
        async with self._reattach_lock:
            if self.client is not None and not self.gone:
                return self
            await self._stop_tasks()
            await self.connect()
        self.bus.publish(LinkEvent(True, self.pid_text()))
        self._tell(True, self.pid_text())
        return self

    async def close(self) -> None:
        """Stop following the engine and close the connection (the engine is not told anything)."""
        await self._stop_tasks()
        client, self.client = self.client, None
        if client is not None:
            await client.close()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    async def _stop_tasks(self) -> None:
        tasks, self._tasks = self._tasks, []
        me = asyncio.current_task()
        for t in tasks:
            if t is not me:
                t.cancel()
        await asyncio.gather(*(t for t in tasks if t is not me), return_exceptions=True)

    @property
    def config_dir(self) -> Path | None:
        """The engine's config folder (from its version answer), or None when it did not say."""
        d = (self.server.get("engine") or {}).get("config_dir")
        return Path(d) if d else None

    def pid_text(self) -> str:
        """"engine pid N (headless)" from the version answer."""
        eng = self.server.get("engine") or {}
        return f"engine pid {eng.get('pid', '?')} ({eng.get('ui', '?')})"

    def status_text(self) -> str:
        """"" while attached; else "engine gone: r re-attaches" (the console's header)."""
        return "engine gone: r re-attaches" if self.gone else ""

    def wake(self, slow: bool = False) -> None:
        """Refresh soon (at most `1 / max_hz` after the previous read); `slow`: alerts, health
        and jobs too."""
        if slow:
            self._slow_due = True
        if self._wake is not None:
            self._wake.set()

    def _lost(self, why: str) -> None:
        if self.gone:
            return
        self.gone = why or "the engine went away"
        log.warning("attached engine lost on %s: %s", self.socket_path, self.gone)
        client, self.client = self.client, None
        me = asyncio.current_task()
        for t in self._tasks:
            if t is not me:
                t.cancel()
        if client is not None:
            task = asyncio.get_running_loop().create_task(client.close())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
        self.bus.publish(LinkEvent(False, self.gone))
        self._tell(False, self.gone)

    def _tell(self, connected: bool, detail: str) -> None:
        if self.on_link_change is not None:
            try:
                self.on_link_change(connected, detail)
            except Exception:
                log.exception("link listener failed")

    # ------------------------------------------------------------------ background reads
    async def _read_snapshot(self, client: EngineClient) -> None:
        snap = await client.snapshot()
        self.refreshes += 1
        changed = False
        if snap != self._snap:
            self._snap = snap
            self._view = SnapshotView.from_wire(snap)
            changed = True
        watched = self._watched
        if watched is not None and time.monotonic() - self._watched_at > WATCH_S:
            self._watched = watched = None           # the Grid screen is not shown any more
            self._grids.clear()
        if watched is not None:
            try:
                g = await client.grid(watched[0], watched[1], detail=True)
            except ApiError as exc:                  # the runner went away: its detail with it
                log.warning("attached console: grid of %s refused: %s", watched[0], exc)
                self._grids.pop(watched, None)
            else:
                if g != self._grid_raw.get(watched):
                    self._grid_raw[watched] = g
                    self._grids[watched] = GridStateView.from_wire(g, *watched)
                    changed = True
        if changed:
            self.bus.publish(RemoteRefresh())

    async def _read_slow(self, client: EngineClient) -> None:
        self._slow_due = False
        changed = False
        for svc in (self.alerts, self.health, self.jobs):
            try:
                changed = await svc.refresh(client) or changed
            except ApiError as exc:
                log.warning("attached console: %s refresh failed: %s", type(svc).__name__, exc)
        if changed:
            self.bus.publish(RemoteRefresh())

    async def _poll(self, client: EngineClient) -> None:
        failures = 0
        last_slow = last_read = time.monotonic()
        wake = self._wake
        assert wake is not None
        while True:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(wake.wait(), self.idle_s)
            gap = self.min_gap_s - (time.monotonic() - last_read)
            if gap > 0:                             # at most max_hz reads; none delayed after a quiet spell
                await asyncio.sleep(gap)
            wake.clear()
            last_read = time.monotonic()
            try:
                await self._read_snapshot(client)
                if self._slow_due or time.monotonic() - last_slow >= self.slow_s:
                    last_slow = time.monotonic()
                    await self._read_slow(client)
                failures = 0
            except EngineNotRunning:
                self._lost(f"the engine stopped (nothing listens on {self.socket_path})")
                return
            except EngineUnreachable as exc:
                failures += 1
                if failures >= MAX_FAILURES:
                    self._lost(str(exc))
                    return
            except ApiError as exc:
                log.warning("attached console: snapshot refused: %s", exc)
            except Exception:                       # an answer it could not read: said, and read again
                log.exception("attached console: reading the engine's state failed; retrying")

    async def _listen(self, client: EngineClient) -> None:
        while True:
            try:
                async for msg in client.events():
                    ev = decode_event(msg)
                    if ev is None:
                        continue
                    self.bus.publish(ev)
                    if type(ev).__name__ not in NO_WAKE:
                        self.wake(slow=isinstance(ev, (AlertEvent, HealthEvent)))
            except StreamDropped:
                log.warning("attached console fell behind the engine's events: stream reopened")
                continue
            except EngineNotRunning:
                self._lost(f"the engine stopped (nothing listens on {self.socket_path})")
                return
            except EngineUnreachable as exc:
                self._lost(str(exc))
                return
            except ApiClientError as exc:
                self._lost(f"event stream refused: {exc}")
                return
            self._lost(f"the engine stopped (it closed its API on {self.socket_path})")
            return

    # ------------------------------------------------------------------ queries (the console port's)
    def snapshot(self) -> SnapshotView:
        """The last snapshot read, as a view (parsed once per change)."""
        return self._view

    def positions(self) -> list[PositionView]:
        """Open positions of the last snapshot."""
        return self._view.positions()

    def symbols(self) -> list[str]:
        """The symbols traded, sorted."""
        return self._view.symbols()

    def grid(self, symbol: str, strategy: str | None = None) -> GridStateView:
        """The grid of `symbol` (and `strategy`): with its detail (fills, cycles, chart) once it
        was read. Asking for a grid makes the background task read its detail with every
        snapshot while it is asked for (the Grid screen is shown), and now.

        Raises:
            UsageError: no runner trades it.
        """
        row = self._view.runner(symbol, strategy)
        if row is None:
            raise UsageError(f"no strategy runs on {symbol!r}; running: {', '.join(self.symbols()) or 'none'}")
        key = (row.symbol, row.strategy)
        if self._watched != key:
            self._watched = key
            self.wake()
        self._watched_at = time.monotonic()
        detail = self._grids.get(key)
        if detail is None:
            return row.grid
        return detail

    async def job_results(self, job_id: int) -> list[dict]:
        """The stored optimisation results of job `job_id` (read from the engine).

        Raises:
            CommandRefused: the engine refused or cannot be reached.
        """
        client = self.client
        if client is None:
            raise CommandRefused(f"not sent: {self.status_text() or 'not attached'}")
        try:
            return await client.job_results(job_id)
        except ApiClientError as exc:
            raise CommandRefused(refusal_text(exc)) from None

    async def performance(self, window_days: int = 30, max_points: int = 2000) -> PerformanceView:
        """The book's performance (`GET /v1/performance`).

        Raises:
            CommandRefused: the engine refused (no equity yet, ...) or cannot be reached.
        """
        client = self.client
        if client is None:
            raise CommandRefused(f"not sent: {self.status_text() or 'not attached'}")
        try:
            wire = await client.performance(window_days, max_points)
        except ApiClientError as exc:
            raise CommandRefused(refusal_text(exc)) from None
        return PerformanceView.from_wire(wire)

    async def risk(self) -> RiskView:
        """The risk of the book (`GET /v1/risk`).

        Raises:
            CommandRefused: the engine refused (not running, no runner) or cannot be reached.
        """
        client = self.client
        if client is None:
            raise CommandRefused(f"not sent: {self.status_text() or 'not attached'}")
        try:
            wire = await client.risk()
        except ApiClientError as exc:
            raise CommandRefused(refusal_text(exc)) from None
        return RiskView.from_wire(wire)

    def events(self, kinds: Any = None, maxsize: int | None = None) -> Subscription:
        """A subscription to the engine's events as received over the socket (see the docstring)."""
        return self.bus.subscribe(kinds, maxsize)

    # ------------------------------------------------------------------ commands
    async def _command(self, name: str, **args: Any) -> dict:
        client = self.client
        if client is None:
            raise CommandRefused(f"not sent: {self.status_text() or 'not attached'}")
        try:
            res = await client.command(name, **args)
        except ApiClientError as exc:
            raise CommandRefused(refusal_text(exc)) from None
        finally:
            self.wake(slow=True)
        return res.get("result") or {}

    async def kill(self, actor: str, flatten: bool = False, reason: str = "command") -> dict:
        """Kill switch on through the engine (the engine records its own actor for this
        connection: "<source>:<user>")."""
        return await self._command("kill", flatten=flatten, reason=reason)

    async def resume(self, actor: str, reason: str = "resume") -> dict:
        """Kill switch off through the engine."""
        return await self._command("resume", reason=reason)

    async def flatten(self, actor: str, symbol: str | None = None, strategy: str | None = None) -> dict:
        """Close `symbol`'s position (None: every position) through the engine."""
        return await self._command("flatten", **_given(symbol=symbol, strategy=strategy))

    async def pause(self, actor: str, symbol: str, strategy: str | None = None, reason: str = "console") -> dict:
        """Pause one runner through the engine (no new entries; stop and take-profit kept)."""
        return await self._command("pause", **_given(symbol=symbol, strategy=strategy, reason=reason))

    async def resume_runner(self, actor: str, symbol: str, strategy: str | None = None,
                            reason: str = "console") -> dict:
        """Resume a paused runner through the engine."""
        return await self._command("resume_runner", **_given(symbol=symbol, strategy=strategy, reason=reason))

    async def apply_params(self, actor: str, symbol: str, params: dict, strategy: str | None = None) -> dict:
        """New parameters for one runner (applied now when flat, else at its next flat moment)."""
        return await self._command("apply_params", **_given(symbol=symbol, params=params, strategy=strategy))

    async def job_submit(self, actor: str, kind: str, params: dict) -> dict:
        """Submit a research job to the engine's job manager."""
        return await self._command("job_submit", kind=kind, params=params)

    async def job_cancel(self, actor: str, job_id: int) -> dict:
        """Cancel a research job of the engine."""
        return await self._command("job_cancel", id=int(job_id))

    async def cancel_entries(self, actor: str, symbol: str | None = None) -> dict:
        """Cancel the resting entries of `symbol` (None: every symbol) through the engine."""
        return await self._command("cancel_entries", symbol=symbol)
