"""EngineTelegramControl: the Telegram bot's `EngineControl` over a running engine's `EngineAPI`.

Every answer is built from in-memory state (cheap, on the loop), except /daily which reads the
equity points in a thread (`EngineAPI.daily_pnl`). The commands (/kill, /resume, /resume SYMBOL,
/pause SYMBOL, /forceexit SYMBOL) go through the engine's audited command path
(`core.api.server.ApiServer.run_command`, set as `commands` once the API server runs): the same
checks, actions and answers as `radar ctl`, each written to `api_audit` BEFORE it runs with
source "telegram", the Telegram user as the user (e.g. "alice" for actor "telegram:alice") and
origin "telegram bot (engine pid N)". Without that path (no API server in this run, or not up
yet) a command is not run and the answer says so (fail closed). Money USDT, times ms UTC.
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

from core.engine.api import EngineAPI
from core.errors import UsageError

#: `ApiServer.run_command`'s shape: (name, args, *, user, uid, source, origin, readonly) -> (status, body)
CommandRunner = Callable[..., Awaitable[tuple[int, dict]]]


class EngineTelegramControl:
    """`core.telegram.control.EngineControl` for one engine.

    Args:
        api: the engine's API. jobs: the JobManager (for /jobs), or None.
        watchdog: the health Watchdog (feeds in /status), or None.
        flatten_on_kill: /kill also closes positions at market (default False: entries stop,
            stops stay).
        commands: the audited command runner (`ApiServer.run_command`), or None until it is set.
    """

    def __init__(self, api: EngineAPI, *, jobs: Any = None, watchdog: Any = None,
                 flatten_on_kill: bool = False, commands: CommandRunner | None = None) -> None:
        self.api = api
        self.jobs = jobs
        self.watchdog = watchdog
        self.flatten_on_kill = flatten_on_kill
        self.commands = commands
        self.started = time.monotonic()

    async def status_text(self) -> str:
        s = self.api.snapshot()
        ks = s["kill_switch"]
        eng = self.api.engine
        state = "error" if eng.error is not None else "stopped" if eng.store is None else "running"
        lines = [f"engine {state} ({s['mode']}), up {int(time.monotonic() - self.started)} s",
                 f"{s['candles']} candles, equity {s['equity']:,.2f} USDT, day P&L {s['day_pnl']:+,.2f}",
                 f"kill switch: {'ON by ' + ks.get('actor', '') + ': ' + ks.get('reason', '') if ks.get('active') else 'off'}"]
        for sym, rows in s["symbols"].items():
            for r in rows:
                if r.get("state") != "ready" or r.get("pending_params"):
                    extra = f", params pending: {_params(r['pending_params'])}" if r.get("pending_params") else ""
                    lines.append(f"{r['strategy']} {sym}: {r['state']}{extra}")
        if self.watchdog is not None:
            for name, h in self.watchdog.snapshot().items():
                lines.append(f"{name}: {h.status}{' - ' + h.reason if getattr(h, 'reason', '') else ''}")
        return "\n".join(lines)

    async def positions_text(self) -> str:
        pos = self.api.positions()
        if not pos:
            return "no open positions"
        return "\n".join(f"{p['strategy']} {p['symbol']} {p['side']} {p['qty']:.6g} @ {p['avg_entry']:.6g}, "
                         f"stop {p['stop']:.6g}, unrealised {p['unrealized']:+.2f}" for p in pos)

    async def pnl_text(self) -> str:
        lines = []
        total_real = total_unreal = 0.0
        for r in self.api.engine.runners:
            real = sum(c.pnl for c in r.cycles)
            unreal = r.position()["unrealized"]
            total_real += real
            total_unreal += unreal
            lines.append(f"{r.name} {r.symbol}: realised {real:+,.2f}, unrealised {unreal:+,.2f} "
                         f"({len(r.cycles)} cycles)")
        lines.append(f"total: realised {total_real:+,.2f}, unrealised {total_unreal:+,.2f} USDT")
        return "\n".join(lines)

    async def balance_text(self) -> str:
        """Per runner and in total: equity (cash + unrealised P&L at the last close), cash and the
        day's P&L (since the first candle of the UTC day), USDT."""
        b = self.api.balance()
        lines = [f"{r['strategy']} {r['symbol']} {r['timeframe']}: equity {r['equity']:,.2f}, cash {r['cash']:,.2f}, "
                 f"day P&L {r['day_pnl']:+,.2f}" for r in b["runners"]]
        t = b["total"]
        lines.append(f"total: equity {t['equity']:,.2f}, cash {t['cash']:,.2f}, day P&L {t['day_pnl']:+,.2f} USDT")
        return "\n".join(lines)

    async def daily_text(self, days: int) -> str:
        """One line per UTC day (oldest first): the day's P&L in total and per runner, USDT."""
        d = await self.api.daily_pnl(days)
        if not d["days"]:
            return "no equity recorded yet"
        lines = [f"P&L per UTC day, last {days} day(s) (USDT):"]
        for day in d["days"]:
            parts = ", ".join(f"{k} {v:+,.2f}" for k, v in day["runners"].items())
            lines.append(f"{day['day']}: {day['pnl']:+,.2f}" + (f" ({parts})" if len(day["runners"]) > 1 else ""))
        lines.append(f"total: {d['total']:+,.2f} USDT")
        return "\n".join(lines)

    async def jobs_text(self) -> str:
        if self.jobs is None:
            return "no job manager in this run"
        rows = self.jobs.jobs(limit=10)
        if not rows:
            return "no jobs"
        return "\n".join(f"#{j.id} {j.kind} {j.state} {getattr(j, 'percent', 0):.0f}%" for j in rows)

    async def check(self, action: str, symbol: str) -> str | None:
        """Why `action` ("forceexit" | "pause" | "resume_runner") on `symbol` cannot be done now,
        or None (the engine checks again when it runs the command)."""
        try:
            if action == "forceexit":
                if not any(r.position()["qty"] for r in self.api._runners_of(symbol)):
                    return f"no open position on {symbol}"
                return None
            r = self.api.runner(symbol)
        except UsageError as exc:
            return f"{exc} (from Telegram: one runner per symbol; use `radar ctl ... --strategy`)" \
                if "several runners" in str(exc) else str(exc)
        if action == "pause" and getattr(r, "pause_info", None):
            return f"{r.name} on {symbol} is paused already"
        if action == "resume_runner" and not getattr(r, "pause_info", None):
            return f"{r.name} on {symbol} is not paused"
        return None

    async def _run(self, name: str, args: dict, actor: str) -> str:
        """Run engine command `name` through the audited path; its answer line (a refusal says so)."""
        if self.commands is None:
            return "REFUSED: command not run: the engine API (which audits every command) is not running"
        user = actor.split(":", 1)[1] if ":" in actor else actor
        status, body = await self.commands(name, args, user=user or "telegram", uid=None, source="telegram",
                                           origin=f"telegram bot (engine pid {os.getpid()})", readonly=False)
        if status != 200:
            err = body.get("error") or {}
            return f"REFUSED by the engine ({status} {err.get('code', '?')}): {err.get('message', '')}"
        return str(body.get("message", "done"))

    async def kill(self, actor: str) -> str:
        return await self._run("kill", {"flatten": self.flatten_on_kill, "reason": "telegram /kill"}, actor)

    async def resume(self, actor: str) -> str:
        return await self._run("resume", {"reason": "telegram /resume"}, actor)

    async def forceexit(self, actor: str, symbol: str) -> str:
        return await self._run("flatten", {"symbol": symbol}, actor)

    async def pause(self, actor: str, symbol: str) -> str:
        return await self._run("pause", {"symbol": symbol, "reason": "telegram /pause"}, actor)

    async def resume_runner(self, actor: str, symbol: str) -> str:
        return await self._run("resume_runner", {"symbol": symbol, "reason": "telegram /resume"}, actor)


def _params(p: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in p.items())
