"""`radar status [--json]`: the running engine's state, asked through its API socket.

Connects read-only to `<db>.sock` (`core.api`; the database path as every command resolves
it: `--db`, else `$XDG_DATA_HOME/radar/radar.db`) and prints the engine (pid, mode, console
or headless), equity and day P&L (USDT), the kill switch, health, and per runner its state,
position (unrealised P&L, stop) and open orders.

Exit codes: 0 an engine answered; 1 no engine listens on the socket (the message names it:
no socket file, or a stale one), the engine cannot be reached, or it speaks another
protocol major version. `--json` prints one object: engine_running, socket, message, and
when running protocol, engine{pid, mode, ui, ...}, mode, equity, day_pnl, kill_switch,
candles, health, runners[...], positions[...], open_orders[...] (times ms UTC).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from core.api.protocol import ApiClientError, socket_path_for


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `status` to the top-level parser."""
    p = sub.add_parser("status", help="the running engine's equity, P&L, kill switch, runners, positions and "
                                      "orders (through its API socket)")
    p.add_argument("--json", action="store_true", help="print JSON (times in ms UTC, money in USDT)")
    p.set_defaults(func=cmd_status)


async def collect(sock: Path) -> dict:
    """The status of the engine listening on `sock` (the `--json` object).

    Raises:
        ApiClientError: no engine listens there, it cannot be reached, or speaks another protocol.
    """
    from core.api.client import EngineClient

    async with EngineClient(sock, readonly=True, source="cli") as c:
        snap = await c.snapshot()
        health = await c.health()
        v = c.server or {}
    runners, orders = [], []
    for symbol, rows in sorted(snap["symbols"].items()):
        for r in rows:
            g, p = r.get("grid") or {}, r["position"]
            runners.append({"strategy": r["strategy"], "symbol": symbol, "timeframe": r["timeframe"],
                            "state": r.get("state", "ready"), "last_price": r["last_price"], "last_ts": r["last_ts"],
                            "side": p.get("side"), "qty": p["qty"], "avg_entry": p["avg_entry"], "stop": p["stop"],
                            "unrealized": p["unrealized"], "levels_filled": p.get("levels_filled"),
                            "cycles": g.get("cycles"), "open_orders": len(g.get("open_orders", []))})
            orders += [{"strategy": r["strategy"], "symbol": symbol, **o} for o in g.get("open_orders", [])]
    eng = v.get("engine", {})
    return {"engine_running": True, "socket": str(sock),
            "message": f"engine running: pid {eng.get('pid')}, {snap['mode']} ({eng.get('ui')}), protocol "
                       f"{v.get('protocol')}, socket {sock}",
            "protocol": v.get("protocol"), "engine": eng, "mode": snap["mode"], "equity": snap["equity"],
            "day_pnl": snap["day_pnl"], "kill_switch": snap["kill_switch"], "candles": snap["candles"],
            "health": health.get("overall"), "runners": runners,
            "positions": [r for r in runners if r["qty"]], "open_orders": orders}


def cmd_status(args: argparse.Namespace) -> int:
    """`radar status`: print the engine's status; exit code per the module docstring."""
    sock = socket_path_for(args.db)
    try:
        status = asyncio.run(collect(sock))
    except ApiClientError as err:
        if args.json:
            print(json.dumps({"engine_running": False, "socket": str(sock), "message": str(err)}, indent=2))
        else:
            print(str(err))
        return 1
    if args.json:
        print(json.dumps(status, indent=2))
    else:
        _print(status)
    return 0


def _num(x: Any, fmt: str = ",.2f") -> str:
    return "-" if x is None else format(x, fmt)


def _print(s: dict) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(file=sys.stdout, width=None if sys.stdout.isatty() else 200, highlight=False)
    console.print(Text(s["message"], style="bold green"))
    ks = s["kill_switch"]
    kill = (f"KILL SWITCH ON (by {ks.get('actor')}: {ks.get('reason')})" if ks.get("active") else "kill switch off")
    if ks.get("symbols"):
        kill += "; blocked: " + ", ".join(sorted(ks["symbols"]))
    console.print(f"equity {_num(s['equity'])} USDT, day P&L {_num(s['day_pnl'], '+,.2f')} USDT, "
                  f"{s['candles']} candles, health {s['health']}")
    console.print(Text(kill, style="bold red" if ks.get("active") or ks.get("symbols") else ""))
    t = Table(title="Runners")
    for col in ("strategy", "symbol", "tf", "state", "last", "position", "avg entry", "stop", "unrealised",
                "orders"):
        t.add_column(col, no_wrap=True)
    for r in s["runners"]:
        pos = f"{r['side']} {r['qty']:.6g}" if r["qty"] else "flat"
        t.add_row(r["strategy"], r["symbol"], r["timeframe"], r["state"], _num(r["last_price"], ".6g"), pos,
                  _num(r["avg_entry"], ".6g"), _num(r["stop"], ".6g"), _num(r["unrealized"], "+,.2f"),
                  str(r["open_orders"]))
    console.print(t)
    if s["open_orders"]:
        t = Table(title="Open orders")
        for col in ("strategy", "symbol", "purpose", "level", "price", "client id"):
            t.add_column(col, no_wrap=True)
        for o in s["open_orders"]:
            t.add_row(o["strategy"], o["symbol"], str(o["purpose"]), str(o["level"]), _num(o["price"], ".6g"),
                      str(o["client_id"]))
        console.print(t)
    else:
        console.print("no open orders")
