"""The console's port on an engine in this process: the same typed views and commands as an
attached console's `tui.remote.RemoteEngine`, so `RadarApp` has one code path.

    port = LocalPort(EngineAPI(engine, alerts=..., jobs=..., watchdog=...), commands=server.run_command)
    port.snapshot()                     # SnapshotView (core.api.views), parsed from EngineAPI.snapshot()
    port.grid("BTC/USDT")               # GridStateView with detail (fills, cycles, chart)
    await port.kill("console:alice")    # audited like `POST /v1/commands/kill` (source "console")

What the port offers (both implementations):

* queries, synchronous: `snapshot()`, `positions()`, `grid(symbol, strategy)`, `symbols()`;
* `events(kinds, maxsize)`: a `core.events.bus.Subscription` of engine events;
* the run's services as attributes `alerts`, `jobs`, `health` (None when the run has none);
* `await job_results(job_id)`: stored optimisation results;
* `await performance(window_days, max_points)`: a `PerformanceView` of the book;
* `await risk()`: a `RiskView` of the book (VaR/CVaR, worst case, scenarios, groups);
* commands: `kill`, `resume`, `flatten`, `cancel_entries`, `pause`, `resume_runner`,
  `apply_params`: each returns the engine's result dict or raises
  `core.api.protocol.CommandRefused` with one line saying why;
* `status_text()`: "" while the engine is reachable (an attached console says when it is not).

Commands go through the API server's audited path (`ApiServer.run_command`: written to
`api_audit` before they run, refused when that write fails) when `commands` is given — which
`radar run` always does. Without it (unit tests, benchmarks) they call `EngineAPI` directly.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Awaitable, Callable
from typing import Any

from core.api.protocol import CommandRefused
from core.api.views import GridStateView, PerformanceView, PositionView, RiskView, SnapshotView, positions_from_wire
from core.errors import RadarError

#: `ApiServer.run_command`'s shape: (name, args, *, user, uid, source, origin, readonly) -> (status, body)
CommandRunner = Callable[..., Awaitable[tuple[int, dict]]]


class LocalPort:
    """See the module docstring.

    Args:
        api: an `EngineAPI` (or any object with its query and command methods).
        alerts, jobs, health: the run's services (default: the api's `alerts`, `jobs`, `watchdog`).
        commands: the audited command runner (`ApiServer.run_command`), or None.
        source: who the commands come from in the audit ("console").
    """

    readonly = False
    gone = ""

    def __init__(self, api: Any, *, alerts: Any = None, jobs: Any = None, health: Any = None,
                 commands: CommandRunner | None = None, source: str = "console", config_dir: Any = None) -> None:
        self.api = api
        #: the engine's config folder (where an applied result is written), or None: the default
        self.config_dir = config_dir if config_dir is not None else getattr(api, "config_dir", None)
        self.alerts = alerts if alerts is not None else getattr(api, "alerts", None)
        self.jobs = jobs if jobs is not None else getattr(api, "jobs", None)
        self.health = health if health is not None else getattr(api, "watchdog", None)
        self.commands = commands
        self.source = source
        try:
            self.user = getpass.getuser()
        except Exception:
            self.user = "operator"

    # ------------------------------------------------------------------ queries
    def snapshot(self) -> SnapshotView:
        return SnapshotView.from_wire(self.api.snapshot())

    def positions(self) -> list[PositionView]:
        return positions_from_wire(self.api.positions())

    def symbols(self) -> list[str]:
        return self.snapshot().symbols()

    def grid(self, symbol: str, strategy: str | None = None) -> GridStateView:
        """The grid of `symbol` with its detail.

        Raises:
            UsageError: no runner trades it.
        """
        return GridStateView.from_wire(self.api.grid_state(symbol, strategy, detail=True), symbol, strategy or "")

    def events(self, kinds: Any = None, maxsize: int | None = None) -> Any:
        return self.api.events(kinds, maxsize)

    async def job_results(self, job_id: int) -> list[dict]:
        """The stored optimisation results of job `job_id` (`EngineAPI.job_results`).

        Raises:
            CommandRefused: no job manager in this run, or no such job.
        """
        import asyncio

        from core.engine.api import read_job_results

        if self.jobs is None:
            raise CommandRefused("no job manager in this run")
        try:
            return await asyncio.to_thread(read_job_results, self.jobs, int(job_id))
        except RadarError as exc:
            raise CommandRefused(str(exc)) from None

    async def performance(self, window_days: int = 30, max_points: int = 2000) -> PerformanceView:
        """The book's performance (`EngineAPI.performance`).

        Raises:
            CommandRefused: no equity recorded yet, no runner, or a bad window.
        """
        try:
            return PerformanceView.from_wire(await self.api.performance(window_days, max_points))
        except RadarError as exc:
            raise CommandRefused(str(exc)) from None

    async def risk(self) -> RiskView:
        """The risk of the book (`EngineAPI.risk`).

        Raises:
            CommandRefused: the engine is not running, has no runner, or the config is bad.
        """
        try:
            return RiskView.from_wire(await self.api.risk())
        except RadarError as exc:
            raise CommandRefused(str(exc)) from None

    def status_text(self) -> str:
        return ""

    # ------------------------------------------------------------------ commands
    async def _run(self, name: str, args: dict, direct: Callable[[], Awaitable[Any]]) -> dict:
        if self.commands is None:
            try:
                return await direct()
            except (RadarError, LookupError, ValueError) as exc:   # what EngineAPI refuses with
                raise CommandRefused(str(exc)) from None
        status, body = await self.commands(name, {k: v for k, v in args.items() if v is not None},
                                           user=self.user, uid=os.getuid(), source=self.source,
                                           origin=f"in-process console pid {os.getpid()}", readonly=False)
        if status != 200:
            err = body.get("error") or {}
            raise CommandRefused(f"refused by the engine ({status} {err.get('code', '?')}): {err.get('message', '')}")
        return body.get("result") or {}

    async def kill(self, actor: str, flatten: bool = False, reason: str = "command") -> dict:
        return await self._run("kill", {"flatten": flatten, "reason": reason},
                               lambda: self.api.kill(actor, flatten=flatten, reason=reason))

    async def resume(self, actor: str, reason: str = "resume") -> dict:
        return await self._run("resume", {"reason": reason}, lambda: self.api.resume(actor, reason=reason))

    async def flatten(self, actor: str, symbol: str | None = None, strategy: str | None = None) -> dict:
        return await self._run("flatten", {"symbol": symbol, "strategy": strategy},
                               lambda: self.api.flatten(actor, symbol=symbol, strategy=strategy))

    async def pause(self, actor: str, symbol: str, strategy: str | None = None, reason: str = "console") -> dict:
        return await self._run("pause", {"symbol": symbol, "strategy": strategy, "reason": reason},
                               lambda: self.api.pause(actor, symbol, strategy=strategy, reason=reason))

    async def resume_runner(self, actor: str, symbol: str, strategy: str | None = None,
                            reason: str = "console") -> dict:
        return await self._run("resume_runner", {"symbol": symbol, "strategy": strategy, "reason": reason},
                               lambda: self.api.resume_runner(actor, symbol, strategy=strategy, reason=reason))

    async def apply_params(self, actor: str, symbol: str, params: dict, strategy: str | None = None) -> dict:
        return await self._run("apply_params", {"symbol": symbol, "params": params, "strategy": strategy},
                               lambda: self.api.apply_params(actor, symbol, params, strategy=strategy))

    async def job_submit(self, actor: str, kind: str, params: dict) -> dict:
        return await self._run("job_submit", {"kind": kind, "params": params},
                               lambda: self.api.job_submit(actor, kind, params))

    async def job_cancel(self, actor: str, job_id: int) -> dict:
        return await self._run("job_cancel", {"id": int(job_id)}, lambda: self.api.job_cancel(actor, int(job_id)))

    async def cancel_entries(self, actor: str, symbol: str | None = None) -> dict:
        return await self._run("cancel_entries", {"symbol": symbol},
                               lambda: self.api.cancel_entries(actor, symbol=symbol))
