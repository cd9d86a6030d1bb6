"""EngineTelegramControl: the Telegram bot's `EngineControl` over a running engine's `EngineAPI`.

Every answer is built from in-memory state (cheap, on the loop); `kill` and `resume` go
through `EngineAPI.kill/resume` (persisted before they return, then entries cancelled).
"""

from __future__ import annotations

import time
from typing import Any

from core.engine.api import EngineAPI


class EngineTelegramControl:
    """`core.telegram.control.EngineControl` for one engine.

    Args:
        api: the engine's API. jobs: the JobManager (for /jobs), or None.
        watchdog: the health Watchdog (feeds in /status), or None.
        flatten_on_kill: /kill also closes positions at market (default False: entries stop,
            stops stay).
    """

    def __init__(self, api: EngineAPI, *, jobs: Any = None, watchdog: Any = None,
                 flatten_on_kill: bool = False) -> None:
        self.api = api
        self.jobs = jobs
        self.watchdog = watchdog
        self.flatten_on_kill = flatten_on_kill
        self.started = time.monotonic()

    async def status_text(self) -> str:
        s = self.api.snapshot()
        ks = s["kill_switch"]
        eng = self.api.engine
        state = "error" if eng.error is not None else "stopped" if eng.store is None else "running"
        lines = [f"engine {state} ({s['mode']}), up {int(time.monotonic() - self.started)} s",
                 f"{s['candles']} candles, equity {s['equity']:,.2f} USDT, day P&L {s['day_pnl']:+,.2f}",
                 f"kill switch: {'ON by ' + ks.get('actor', '') + ': ' + ks.get('reason', '') if ks.get('active') else 'off'}"]
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

    async def jobs_text(self) -> str:
        if self.jobs is None:
            return "no job manager in this run"
        rows = self.jobs.jobs(limit=10)
        if not rows:
            return "no jobs"
        return "\n".join(f"#{j.id} {j.kind} {j.state} {getattr(j, 'percent', 0):.0f}%" for j in rows)

    async def kill(self, actor: str) -> str:
        r = await self.api.kill(actor, flatten=self.flatten_on_kill, reason="telegram /kill")
        return (f"kill switch ON: {r['cancelled_entries']} entry order(s) cancelled, "
                f"{r['flattened']} position(s) flattened; stops kept")

    async def resume(self, actor: str) -> str:
        await self.api.resume(actor, reason="telegram /resume")
        return "kill switch off: entries resume from the next candle"
