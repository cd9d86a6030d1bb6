"""The engine's API server: HTTP + websocket (aiohttp) on a private Unix socket.

    server = await ApiServer(EngineAPI(engine, alerts=..., jobs=..., watchdog=..., lag=...),
                             socket_path_for(db), db_path=db, ui="headless").start()
    ...
    await server.stop()          # streams closed, socket file removed

Access: the socket file is mode 0600 and every request's peer credentials are checked
(`core.api.peercred`: the engine's own uid or root; anyone else gets 403 "peer_refused").
A request marked read-only (`?readonly=1` or `X-Radar-Readonly: 1`) may query but every
command is refused by the engine (403 "readonly"). Every command is audited
(`core.api.audit`) before it runs; when that write fails it does not run (503).

Endpoints (JSON unless said; errors `{"error": {"code", "message"}}`):

    GET  /v1/version              {protocol, major, engine{pid, mode, ui, db, socket, started_ms, user}, client{...}}
    GET  /v1/snapshot             EngineAPI.snapshot()
    GET  /v1/positions            [position]
    GET  /v1/grid/{symbol}        EngineAPI.grid_state (?strategy=, ?detail=1); 404 "bad_symbol"
    GET  /v1/alerts               (?state=&severity=) [alert]
    GET  /v1/jobs                 (?limit=, default 50) [job]
    GET  /v1/jobs/{id}/results    [{result, combos}] stored optimisation results; 404 "unknown_job"
    GET  /v1/health               {overall, subsystems, loop_lag}
    GET  /v1/performance          EngineAPI.performance (?window=days, ?points=); 409 "no_performance"
    GET  /v1/risk                 EngineAPI.risk (VaR/CVaR, worst case, scenarios, groups); 409 "no_risk"
    GET  /v1/audit                (?limit=, default 50, 1 .. 1000) [audit record], newest first
    GET  /v1/events               websocket (`core.api.events`)
    GET  /v1/metrics, /metrics    Prometheus text (`core.api.metrics`)
    POST /v1/commands/{name}      `core.api.commands`; {ok, command, result, message, audit_id}
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from core.api import commands as cmds
from core.api import sockets
from core.api.audit import AuditLog
from core.api.events import EventStream, event_kinds
from core.api.metrics import CONTENT_TYPE, build_registry, render
from core.api.peercred import PeerCred, check_peer, peer_credentials, user_name
from core.api.protocol import (
    PREFIX,
    PROTOCOL_MAJOR,
    PROTOCOL_VERSION,
    READONLY_HEADER,
    SOURCE_HEADER,
    SOURCE_RE,
    dumps,
    socket_path_for,
    truthy,
)
from core.errors import RadarError, UsageError
from core.model.clock import system_clock

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

_Key = getattr(web, "RequestKey", None)          # aiohttp >= 3.13: typed request storage keys
#: What the peer middleware stores on a request: the caller's credentials, source and read-only flag.
PEER: Any = _Key("radar_peer", PeerCred) if _Key else "radar_peer"
SOURCE: Any = _Key("radar_source", str) if _Key else "radar_source"
READONLY: Any = _Key("radar_readonly", bool) if _Key else "radar_readonly"


class ApiSocketBusy(RadarError):
    """The API socket is taken (a live engine listens there, or it is not a socket we may
    replace): this engine does not start (exit code 2)."""

    exit_code = 2


@dataclass
class ServerStats:
    """Counters of the server (read by the metrics): open event streams, streams dropped for
    being slow, commands by (command, outcome), requests refused on peer credentials."""

    event_clients: int = 0
    slow_dropped: int = 0
    commands: Counter = field(default_factory=Counter)
    peers_refused: int = 0


def error_response(status: int, code: str, message: str, **extra: Any) -> web.Response:
    """The JSON error body {"error": {"code", "message"}} (plus `extra` keys) with `status`."""
    return web.json_response({"error": {"code": code, "message": message}, **extra}, status=status, dumps=dumps)


class ApiServer:
    """See the module docstring.

    Args:
        api: the engine's EngineAPI (with its services). socket_path: where to listen.
        db_path: the engine's database (the audit table); None: no audit, commands refused (503).
        ui: "headless" | "console" (reported by /v1/version).
        engine_uid: the uid allowed besides root (default: this process's effective uid).
        queue_limit, send_timeout_s: per event-stream client (`core.api.events.EventStream`).
    """

    def __init__(self, api: Any, socket_path: str | Path, *, db_path: str | Path | None = None,
                 ui: str = "headless", engine_uid: int | None = None, queue_limit: int = 1000,
                 send_timeout_s: float = 5.0, redact: Callable[[str], str] | None = None) -> None:
        self.api = api
        self.redact = redact            # masks the run's secrets in the audit records
        self.socket_path = Path(socket_path)
        self.db_path = Path(db_path) if db_path is not None else None
        self.ui = ui
        self.engine_uid = os.geteuid() if engine_uid is None else engine_uid
        self.queue_limit = queue_limit
        self.send_timeout_s = send_timeout_s
        self.stats = ServerStats()
        self.audit: AuditLog | None = None
        self.started_ms: int | None = None
        self.registry = build_registry(api, self.stats)
        self._streams: set[EventStream] = set()
        self._runner: web.AppRunner | None = None
        self._ident: tuple[int, int] | None = None

    # ---------------------------------------------------------------- lifecycle
    async def start(self) -> ApiServer:
        """Listen on `socket_path` (mode 0600); a stale socket file is replaced.

        Raises:
            ApiSocketBusy: a live engine listens there, or the path is another user's socket or
                not a socket. StorageError: the audit table cannot be opened. OSError: the
                folder cannot be written.
        """
        path = self.socket_path
        state = sockets.probe(path)
        if state == sockets.LIVE:
            raise ApiSocketBusy(f"an engine already listens on {path}: stop it first (`radar status` shows it)")
        if state == sockets.DENIED:
            raise ApiSocketBusy(f"{path} is another user's engine socket (permission denied); not replaced")
        if state == sockets.NOT_SOCKET:
            raise ApiSocketBusy(f"{path} exists and is not a socket; move it away (the engine API listens there)")
        if state == sockets.STALE:
            log.warning("replacing the stale API socket %s (an engine that did not stop cleanly)", path)
        if self.db_path is not None:
            self.audit = await AuditLog(self.db_path, redact=self.redact).open()
        try:
            sock, self._ident = sockets.bind_private(path)
            self._runner = web.AppRunner(self._app(), access_log=None, handle_signals=False, shutdown_timeout=2.0)
            await self._runner.setup()
            await web.SockSite(self._runner, sock).start()
        except BaseException:
            await self.stop()
            raise
        self.started_ms = system_clock()
        log.info("engine API on %s (protocol %s)", path, PROTOCOL_VERSION)
        return self

    async def stop(self) -> None:
        """Close the event streams, stop serving, remove the socket file (if still ours), close
        the audit log. Idempotent; never raises."""
        streams = list(self._streams)
        for s in streams:
            s.close()
        if streams:                  # let each client get its "going away" before the server stops
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(asyncio.gather(*(s.done.wait() for s in streams)), 2.0)
        runner, self._runner = self._runner, None
        try:
            if runner is not None:
                await runner.cleanup()
        except Exception as exc:  # pragma: no cover - best effort at shutdown
            log.warning("stopping the engine API failed: %s", exc)
        sockets.remove_if_ours(self.socket_path, self._ident)
        self._ident = None
        audit, self.audit = self.audit, None
        if audit is not None:
            try:
                await audit.close()
            except Exception as exc:  # pragma: no cover
                log.warning("closing the API audit failed: %s", exc)

    # ---------------------------------------------------------------- app
    def _app(self) -> web.Application:
        app = web.Application(middlewares=[self._errors, self._peer], client_max_size=64 * 1024)
        r = app.router
        r.add_get(f"{PREFIX}/version", self._version)
        r.add_get(f"{PREFIX}/snapshot", self._json(lambda q: self.api.snapshot()))
        r.add_get(f"{PREFIX}/positions", self._json(lambda q: self.api.positions()))
        r.add_get(f"{PREFIX}/grid/{{symbol:.+}}", self._grid)
        r.add_get(f"{PREFIX}/alerts", self._alerts)
        r.add_get(f"{PREFIX}/jobs", self._jobs)
        r.add_get(f"{PREFIX}/jobs/{{job_id}}/results", self._job_results)
        r.add_get(f"{PREFIX}/health", self._json(lambda q: self.api.health()))
        r.add_get(f"{PREFIX}/performance", self._performance)
        r.add_get(f"{PREFIX}/risk", self._risk)
        r.add_get(f"{PREFIX}/audit", self._audit)
        r.add_get(f"{PREFIX}/events", self._events)
        r.add_get(f"{PREFIX}/metrics", self._metrics)
        r.add_get("/metrics", self._metrics)
        r.add_post(f"{PREFIX}/commands/{{name}}", self._command)
        return app

    @web.middleware
    async def _errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            code = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}.get(exc.status, "http_error")
            what = f"{request.method} {request.path}"
            msg = {404: f"no such endpoint: {what} (protocol {PROTOCOL_VERSION}; paths start with {PREFIX}/)",
                   405: f"method not allowed: {what}"}.get(exc.status, f"{exc.reason}: {what}")
            return error_response(exc.status, code, msg)
        except RadarError as exc:          # a bad query value (exit 2) or an engine-side failure
            if exc.exit_code == 2:
                return error_response(400, "bad_argument", str(exc))
            return error_response(500, "engine_error", str(exc))
        except Exception as exc:
            log.exception("engine API %s %s failed", request.method, request.path)
            return error_response(500, "internal", f"{type(exc).__name__}: {exc}")

    @web.middleware
    async def _peer(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        sock = request.transport.get_extra_info("socket") if request.transport is not None else None
        cred = peer_credentials(sock)
        refusal = check_peer(cred, self.engine_uid)
        if refusal is not None:
            self.stats.peers_refused += 1
            log.warning("engine API refused a connection: %s", refusal)
            resp = error_response(403, "peer_refused", refusal)
            resp.force_close()
            return resp
        source = request.headers.get(SOURCE_HEADER, "unknown").strip().lower()
        if not SOURCE_RE.match(source):
            return error_response(400, "bad_source", f"{SOURCE_HEADER} must be a short lowercase word such as "
                                                     f"console, cli or telegram, got {source[:40]!r}")
        request[PEER] = cred
        request[SOURCE] = source
        request[READONLY] = truthy(request.query.get("readonly")) or truthy(request.headers.get(READONLY_HEADER))
        return await handler(request)

    # ---------------------------------------------------------------- queries
    def _json(self, fn: Callable[[web.Request], Any]) -> Handler:
        async def handler(request: web.Request) -> web.Response:
            return web.json_response(fn(request), dumps=dumps)
        return handler

    async def _version(self, request: web.Request) -> web.Response:
        peer: PeerCred = request[PEER]
        eng = self.api.engine
        return web.json_response({
            "protocol": PROTOCOL_VERSION, "major": PROTOCOL_MAJOR,
            "engine": {"pid": os.getpid(), "mode": eng.mode, "ui": self.ui, "db": str(eng.db_path),
                       "socket": str(self.socket_path), "started_ms": self.started_ms,
                       "user": user_name(self.engine_uid), "running": eng.store is not None,
                       "config_dir": str(self.api.config_dir) if getattr(self.api, "config_dir", None) else None},
            "client": {"user": peer.user, "pid": peer.pid, "source": request[SOURCE],
                       "readonly": request[READONLY]}}, dumps=dumps)

    async def _grid(self, request: web.Request) -> web.Response:
        symbol = request.match_info["symbol"]
        try:
            state = self.api.grid_state(symbol, request.query.get("strategy") or None,
                                        detail=truthy(request.query.get("detail")))
        except UsageError as exc:
            return error_response(404, "bad_symbol", str(exc))
        return web.json_response(state, dumps=dumps)

    async def _alerts(self, request: web.Request) -> web.Response:
        if self.api.alerts is None:
            return error_response(409, "no_alerts", "no alert engine in this run")
        q = request.query
        return web.json_response(self.api.alerts_list(q.get("state") or None, q.get("severity") or None), dumps=dumps)

    async def _jobs(self, request: web.Request) -> web.Response:
        if self.api.jobs is None:
            return error_response(409, "no_jobs", "no job manager in this run")
        raw = request.query.get("limit", "50")
        if not raw.isdigit() or not 1 <= int(raw) <= 1000:
            return error_response(400, "bad_argument", f"limit must be a whole number 1 .. 1000, got {raw!r}")
        return web.json_response(await self.api.jobs_list(int(raw)), dumps=dumps)

    async def _job_results(self, request: web.Request) -> web.Response:
        if self.api.jobs is None:
            return error_response(409, "no_jobs", "no job manager in this run")
        raw = request.match_info["job_id"]
        if not raw.isdigit():
            return error_response(400, "bad_argument", f"job id must be a whole number, got {raw!r}")
        try:
            rows = await self.api.job_results(int(raw))
        except UsageError as exc:
            return error_response(404, "unknown_job", str(exc))
        return web.json_response(rows, dumps=dumps)

    async def _performance(self, request: web.Request) -> web.Response:
        """`EngineAPI.performance` (?window=DAYS 2 .. 366, default 30; ?points=N 3 .. 20000, default
        2000); 409 "no_performance" while no equity is recorded."""
        q = request.query
        window, points = q.get("window", "30"), q.get("points", "2000")
        if not window.isdigit() or not 2 <= int(window) <= 366:
            return error_response(400, "bad_argument", f"window must be a whole number 2 .. 366 (days), got {window!r}")
        if not points.isdigit() or not 3 <= int(points) <= 20000:
            return error_response(400, "bad_argument", f"points must be a whole number 3 .. 20000, got {points!r}")
        try:
            perf = await self.api.performance(int(window), int(points))
        except UsageError as exc:
            return error_response(409, "no_performance", str(exc))
        return web.json_response(perf, dumps=dumps)

    async def _risk(self, request: web.Request) -> web.Response:
        """`EngineAPI.risk`; 409 "no_risk" while the engine is not running or has no runner."""
        try:
            rep = await self.api.risk()
        except UsageError as exc:
            return error_response(409, "no_risk", str(exc))
        return web.json_response(rep, dumps=dumps)

    async def _audit(self, request: web.Request) -> web.Response:
        """The newest `api_audit` rows first (`core.api.audit.AuditRecord` fields; times ms UTC)."""
        if self.audit is None:
            return error_response(409, "no_audit", "this engine has no audit log")
        raw = request.query.get("limit", "50")
        if not raw.isdigit() or not 1 <= int(raw) <= 1000:
            return error_response(400, "bad_argument", f"limit must be a whole number 1 .. 1000, got {raw!r}")
        return web.json_response(await self.audit.recent(int(raw)), dumps=dumps)

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=render(self.registry), headers={"Content-Type": CONTENT_TYPE})

    async def _events(self, request: web.Request) -> web.StreamResponse:
        try:
            kinds = event_kinds(request.query.get("kinds"))
        except ValueError as exc:
            return error_response(400, "bad_argument", str(exc))
        peer: PeerCred = request[PEER]
        stream = EventStream(self.api.engine.bus, kinds, self.stats, queue_limit=self.queue_limit,
                             send_timeout_s=self.send_timeout_s, who=f"{request[SOURCE]}:{peer.user} {peer.process()}")
        self._streams.add(stream)
        try:
            return await stream.serve(request)
        finally:
            self._streams.discard(stream)

    # ---------------------------------------------------------------- commands
    async def _command(self, request: web.Request) -> web.Response:
        name = cmds.command_name(request.match_info["name"])
        peer: PeerCred = request[PEER]
        status, body = await self.run_command(name, await request.read(), user=peer.user, uid=peer.uid,
                                              source=request[SOURCE], readonly=request[READONLY],
                                              origin=f"unix:{self.socket_path} {peer.process()}")
        return web.json_response(body, status=status, dumps=dumps)

    async def run_command(self, name: str, raw: bytes | dict, *, user: str, uid: int | None, source: str,
                          origin: str, readonly: bool = False) -> tuple[int, dict]:
        """Run engine command `name` audited, as `POST /v1/commands/{name}` does; the in-process
        console calls it directly (`core.api.local_port.LocalPort`), so both are audited alike.

        `raw`: the JSON body (bytes) or the arguments (dict). Returns (HTTP status, body): 200
        {ok, command, result, message, audit_id}, else {error: {code, message}, audit_id}. When the
        audit record cannot be written first, nothing runs (503 "audit_unavailable"). Never raises
        for a refused or failed command."""
        bad: cmds.CommandError | None = None
        if isinstance(raw, dict):
            args: Any = raw
        else:
            try:
                args = cmds.parse_body(raw)
            except cmds.CommandError as exc:
                bad, args = exc, raw.decode("utf-8", errors="replace")
        if self.audit is None:
            return 503, {"error": {"code": "audit_unavailable", "message": "command not run: this engine has no audit log"}}
        try:
            audit_id = await self.audit.begin(os_user=user, uid=uid, source=source, command=name, origin=origin,
                                              args=args, readonly=readonly)
        except Exception as exc:
            log.error("engine API: %s refused, the audit record cannot be written: %s", name, exc)
            return 503, {"error": {"code": "audit_unavailable",
                                   "message": f"command not run: it cannot be audited ({exc})"}}
        actor = f"{source}:{user}"
        try:
            if readonly:
                raise cmds.CommandError(403, "readonly", "this connection is read-only: the engine refuses "
                                                         "commands on it (connect without readonly to command)")
            if bad is not None:
                raise bad
            checked = cmds.validate(self.api, name, args)
            log.warning("engine API: %s %s by %s (%s)", name, dumps(checked), actor, origin)
            result, message = await cmds.execute(self.api, name, checked, actor)
            status, outcome = 200, "ok"
            body: dict = {"ok": True, "command": name, "result": result, "message": message}
        except cmds.CommandError as exc:
            status, outcome, message = exc.status, exc.outcome, exc.message
            body = {"error": {"code": exc.code, "message": message}}
        except Exception as exc:
            log.exception("engine API: %s by %s failed", name, actor)
            status, outcome = 500, "failed"
            message = f"{name} failed: {type(exc).__name__}: {exc} (part of it may be done: see the engine's log)"
            body = {"error": {"code": "failed", "message": message}}
        try:
            await self.audit.finish(audit_id, outcome, status, message)
        except Exception as exc:
            log.error("engine API: the outcome of audited command #%d (%s) was not recorded: %s", audit_id, name, exc)
        self.stats.commands[(name if name in cmds.ARGS else "unknown", outcome)] += 1
        body["audit_id"] = audit_id
        return status, body


async def start_api_server(engine: Any, db_path: str | Path, services: Any = None, *, ui: str = "headless",
                           config_dir: str | Path | None = None, **kwargs: Any) -> ApiServer:
    """Serve `engine` (and the run's `services`: alerts, jobs, watchdog, lag) on `<db_path>.sock`.

    Raises:
        ApiSocketBusy, StorageError, OSError: see `ApiServer.start`.
    """
    from core.engine.api import EngineAPI

    api = EngineAPI(engine, alerts=getattr(services, "alerts", None), jobs=getattr(services, "jobs", None),
                    watchdog=getattr(services, "watchdog", None), lag=getattr(services, "lag", None),
                    config_dir=config_dir)
    return await ApiServer(api, socket_path_for(db_path), db_path=db_path, ui=ui, **kwargs).start()
