"""EngineClient: the async client of a running engine's API (`core.api.server`) over its socket.

    async with EngineClient(socket_path_for(db), readonly=True, source="cli") as c:
        snap = await c.snapshot()
        async for msg in c.events(["FillEvent"]): ...     # {"type", "seq", "event"}

On open it asks `/v1/version` and refuses an engine of another major protocol version
(`ProtocolMismatch`). Every method returns the decoded JSON of its endpoint (money USDT,
times ms UTC). Errors (all `core.api.protocol.ApiClientError`, RadarErrors):

* `EngineNotRunning`: no socket file, or nobody listens on it (names the socket path);
* `EngineUnreachable`: permission denied, timeout, connection lost;
* `ProtocolMismatch`: another major protocol version;
* `ApiError`: the engine answered an error (status, code, message), e.g. 403 "readonly".
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp

from core.api.protocol import (
    PREFIX,
    PROTOCOL_MAJOR,
    PROTOCOL_VERSION,
    READONLY_HEADER,
    SOURCE_HEADER,
    ApiClientError,
    ApiError,
    EngineNotRunning,
    EngineUnreachable,
    ProtocolMismatch,
)
from core.api.sockets import reachable

_BASE = "http://radar"


class StreamDropped(ApiClientError):
    """The engine closed the event stream because this client read too slowly."""


class EngineClient:
    """See the module docstring.

    Args:
        socket_path: the engine's socket (`core.api.protocol.socket_path_for(db)`).
        readonly: mark every request read-only (the engine then refuses commands, 403).
        source: who this client is, recorded in the audit: "console", "cli", "telegram", ...
        timeout_s: seconds for a query; command_timeout_s: for a command (venue calls).
        check_version: ask /v1/version on open and refuse another major version.
    """

    def __init__(self, socket_path: str | Path, *, readonly: bool = False, source: str = "cli",
                 timeout_s: float = 10.0, command_timeout_s: float = 60.0, check_version: bool = True) -> None:
        self.socket_path = Path(socket_path)
        self.readonly = readonly
        self.source = source
        self.timeout_s = timeout_s
        self.command_timeout_s = command_timeout_s
        self.check_version = check_version
        self.server: dict | None = None          # the /v1/version answer once open
        self._session: aiohttp.ClientSession | None = None
        self._stack: contextlib.ExitStack | None = None

    async def __aenter__(self) -> EngineClient:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def open(self) -> EngineClient:
        """Connect (lazily) and check the protocol version; returns self.

        Raises:
            EngineNotRunning, EngineUnreachable, ProtocolMismatch: see the module docstring.
        """
        if not os.path.exists(self.socket_path):
            raise EngineNotRunning(f"no engine running: {self.socket_path} does not exist "
                                   "(start one with `radar run`, or check --db)")
        self._stack = contextlib.ExitStack()
        name = self._stack.enter_context(reachable(self.socket_path))
        headers = {SOURCE_HEADER: self.source}
        if self.readonly:
            headers[READONLY_HEADER] = "1"
        self._session = aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=name), headers=headers)
        if self.check_version:
            try:
                v = await self.version()
            except ApiError as exc:
                await self.close()
                if exc.status == 404:
                    raise ProtocolMismatch(f"the engine on {self.socket_path} does not serve protocol "
                                           f"v{PROTOCOL_MAJOR} (this client speaks {PROTOCOL_VERSION})") from None
                raise
            except BaseException:
                await self.close()
                raise
            if v.get("major") != PROTOCOL_MAJOR:
                await self.close()
                raise ProtocolMismatch(f"the engine on {self.socket_path} speaks protocol {v.get('protocol')}, this "
                                       f"client {PROTOCOL_VERSION}: major versions differ; use the radar version of "
                                       "the running engine")
            self.server = v
        return self

    async def close(self) -> None:
        """Close the connection (idempotent)."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()
        stack, self._stack = self._stack, None
        if stack is not None:
            stack.close()

    # ---------------------------------------------------------------- transport
    def _where(self) -> str:
        return str(self.socket_path)

    def _connect_error(self, exc: BaseException) -> ApiClientError:
        os_err = getattr(exc, "os_error", None) or exc.__cause__ or exc
        if isinstance(os_err, (FileNotFoundError, ConnectionRefusedError)):
            return EngineNotRunning(f"no engine running: nothing listens on {self._where()} (the socket file of "
                                    "an engine that stopped without cleaning up?)")
        if isinstance(os_err, PermissionError):
            return EngineUnreachable(f"permission denied on {self._where()}: the engine runs as another user")
        return EngineUnreachable(f"cannot talk to the engine on {self._where()}: {exc}")

    async def _request(self, method: str, path: str, *, params: dict | None = None, body: Any = None,
                       timeout_s: float | None = None, raw: bool = False) -> Any:
        if self._session is None:
            raise ApiClientError("the client is not open (use `async with EngineClient(...)`)")
        t = timeout_s or self.timeout_s
        try:
            async with self._session.request(method, _BASE + path, params=params, json=body,
                                             timeout=aiohttp.ClientTimeout(total=t)) as resp:
                text = await resp.text()
                status = resp.status
        except aiohttp.ClientConnectorError as exc:
            raise self._connect_error(exc) from None
        except TimeoutError:
            raise EngineUnreachable(f"the engine on {self._where()} did not answer {method} {path} "
                                    f"within {t:g} s") from None
        except aiohttp.ClientError as exc:
            raise EngineUnreachable(f"lost the engine on {self._where()} during {method} {path}: {exc}") from None
        if status >= 400:
            try:
                err = json.loads(text)["error"]
                raise ApiError(status, str(err.get("code")), str(err.get("message")))
            except (ValueError, KeyError, TypeError, AttributeError):
                raise ApiError(status, "http_error", text[:300] or f"HTTP {status}") from None
        return text if raw else json.loads(text)

    # ---------------------------------------------------------------- queries
    async def version(self) -> dict:
        """{protocol, major, engine{pid, mode, ui, db, socket, started_ms, user, running}, client{...}}."""
        return await self._request("GET", f"{PREFIX}/version")

    async def snapshot(self) -> dict:
        """`EngineAPI.snapshot()`: mode, equity, day_pnl, kill_switch, candles, symbols{...}."""
        return await self._request("GET", f"{PREFIX}/snapshot")

    async def positions(self) -> list[dict]:
        """The open positions (strategy, symbol, side, qty, avg_entry, stop, unrealized USDT)."""
        return await self._request("GET", f"{PREFIX}/positions")

    async def grid(self, symbol: str, strategy: str | None = None, detail: bool = False) -> dict:
        """The grid of `symbol` (ApiError 404 "bad_symbol" when no runner trades it); `detail`
        adds the open cycle's fills, the last cycles and the chart (`core.engine.grid_detail`)."""
        params = {"strategy": strategy} if strategy else {}
        if detail:
            params["detail"] = "1"
        return await self._request("GET", f"{PREFIX}/grid/{quote(symbol, safe='')}", params=params or None)

    async def alerts(self, state: str | None = None, severity: str | None = None) -> list[dict]:
        """Alerts (default: unresolved) in display order."""
        params = {k: v for k, v in (("state", state), ("severity", severity)) if v}
        return await self._request("GET", f"{PREFIX}/alerts", params=params or None)

    async def jobs(self, limit: int = 50) -> list[dict]:
        """The newest research jobs first."""
        return await self._request("GET", f"{PREFIX}/jobs", params={"limit": str(limit)})

    async def job_results(self, job_id: int) -> list[dict]:
        """The stored optimisation results of job `job_id`: [{result, combos}] (ApiError 404
        "unknown_job")."""
        return await self._request("GET", f"{PREFIX}/jobs/{int(job_id)}/results")

    async def health(self) -> dict:
        """{overall, subsystems[...], loop_lag{...}}."""
        return await self._request("GET", f"{PREFIX}/health")

    async def risk(self) -> dict:
        """`EngineAPI.risk()`: the book's VaR/CVaR, worst case, scenarios and group exposure
        (`core.risk.report.risk_report`); ApiError 409 "no_risk" while the engine is not running
        or has no runner."""
        return await self._request("GET", f"{PREFIX}/risk")

    async def performance(self, window_days: int = 30, max_points: int = 2000) -> dict:
        """`EngineAPI.performance()`: the book's equity/drawdown curves (at most `max_points`),
        monthly returns, rolling Sharpe over `window_days` days, cycle statistics per asset and
        the win/loss distribution (`core.performance.summary`); ApiError 409 "no_performance"
        before any equity is recorded."""
        return await self._request("GET", f"{PREFIX}/performance",
                                   params={"window": str(int(window_days)), "points": str(int(max_points))})

    async def audit(self, limit: int = 50) -> list[dict]:
        """The newest audited commands first: {id, ts_ms, os_user, uid, source, origin, command, args,
        readonly, outcome, status, message, done_ms} (times ms UTC)."""
        return await self._request("GET", f"{PREFIX}/audit", params={"limit": str(limit)})

    async def metrics(self) -> str:
        """The Prometheus text exposition."""
        return await self._request("GET", f"{PREFIX}/metrics", raw=True)

    async def events(self, kinds: Iterable[str] | None = None) -> AsyncIterator[dict]:
        """The engine's events as they come: {"type", "seq", "event"} (the hello is skipped).
        Ends when the engine stops its API.

        Raises:
            StreamDropped: the engine dropped this stream (read too slowly).
            EngineUnreachable: the stream was cut (a reader dropped mid-message, the engine gone).
            ApiError: the stream was refused (e.g. an unknown kind: 400).
        """
        if self._session is None:
            raise ApiClientError("the client is not open (use `async with EngineClient(...)`)")
        params = {"kinds": ",".join(kinds)} if kinds else None
        try:
            ws = await self._session.ws_connect(_BASE + f"{PREFIX}/events", params=params, heartbeat=30.0)
        except aiohttp.WSServerHandshakeError as exc:
            raise ApiError(exc.status, "refused", f"event stream refused: {exc.message}") from None
        except aiohttp.ClientConnectorError as exc:
            raise self._connect_error(exc) from None
        closed_with = None                           # the code of the engine's close frame
        async with ws:
            while True:
                msg = await ws.receive()
                if msg.type == aiohttp.WSMsgType.TEXT:
                    data = json.loads(msg.data)
                    if data.get("type") != "hello":
                        yield data
                elif msg.type == aiohttp.WSMsgType.CLOSE:
                    closed_with = msg.data
                    break
                elif msg.type in (aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                    break
        code = closed_with if closed_with is not None else ws.close_code
        if code == aiohttp.WSCloseCode.TRY_AGAIN_LATER:
            raise StreamDropped(f"the engine on {self._where()} dropped this event stream: read too slowly")
        if code not in (aiohttp.WSCloseCode.OK, aiohttp.WSCloseCode.GOING_AWAY):
            raise EngineUnreachable(f"the event stream of the engine on {self._where()} was cut (close code {code}; "
                                    "the engine drops a reader that falls behind)")

    # ---------------------------------------------------------------- commands
    async def command(self, name: str, **args: Any) -> dict:
        """POST /v1/commands/{name} with `args` (None values left out): {ok, command, result,
        message, audit_id}. Raises ApiError when refused (403 readonly, 400 bad argument, ...)."""
        body = {k: v for k, v in args.items() if v is not None}
        return await self._request("POST", f"{PREFIX}/commands/{name}", body=body, timeout_s=self.command_timeout_s)

    async def kill(self, flatten: bool = False, reason: str | None = None) -> dict:
        """Kill switch on (entries cancelled, stops kept); `flatten`: close every position too."""
        return await self.command("kill", flatten=flatten, reason=reason)

    async def resume(self, reason: str | None = None) -> dict:
        """Kill switch off."""
        return await self.command("resume", reason=reason)

    async def flatten(self, symbol: str | None = None, strategy: str | None = None) -> dict:
        """Force-exit the position of `symbol` (None: every position; `strategy`: that runner of
        `symbol` only) at market."""
        return await self.command("flatten", symbol=symbol, strategy=strategy)

    async def pause(self, symbol: str, strategy: str | None = None, reason: str | None = None) -> dict:
        """Pause one runner: no new entries (resting ones cancelled), its position keeps its stops."""
        return await self.command("pause", symbol=symbol, strategy=strategy, reason=reason)

    async def resume_runner(self, symbol: str, strategy: str | None = None, reason: str | None = None) -> dict:
        """Lift the pause of one runner (the kill switch is `resume`)."""
        return await self.command("resume_runner", symbol=symbol, strategy=strategy, reason=reason)

    async def apply_params(self, symbol: str, params: dict, strategy: str | None = None) -> dict:
        """New params for one grid runner: result state "applied" (flat) or "pending" (until flat)."""
        return await self.command("apply_params", symbol=symbol, strategy=strategy, params=params)

    async def job_submit(self, params: dict, kind: str = "optimize") -> dict:
        """Queue a research job (`core.jobs.optimize_job.optimize_params` output): result {id, ...}."""
        return await self.command("job_submit", kind=kind, params=params)

    async def job_cancel(self, job_id: int) -> dict:
        """Cancel a queued or running job (ApiError 404 "unknown_job", 409 "job_finished")."""
        return await self.command("job_cancel", id=job_id)

    async def cancel_entries(self, symbol: str | None = None) -> dict:
        """Cancel the resting entries of `symbol` (None: every symbol)."""
        return await self.command("cancel_entries", symbol=symbol)

    async def ack(self, alert_id: int) -> dict:
        """Acknowledge an alert."""
        return await self.command("ack", id=alert_id)

    async def snooze(self, alert_id: int, minutes: int) -> dict:
        """Snooze an alert for `minutes`."""
        return await self.command("snooze", id=alert_id, minutes=minutes)
