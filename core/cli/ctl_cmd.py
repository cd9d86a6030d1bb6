"""`radar ctl ...`: operator commands to the running engine, through its API socket.

    radar ctl kill [--flatten] [--reason TEXT]   kill switch on: entries cancelled (stops kept);
                                                 --flatten also closes every position at market
    radar ctl resume [--reason TEXT]             kill switch off
    radar ctl flatten [SYMBOL]                   close SYMBOL's position (no SYMBOL: every position)
    radar ctl cancel-entries [SYMBOL]            cancel resting entries (no SYMBOL: every symbol)
    radar ctl ack ID                             acknowledge alert ID
    radar ctl snooze ID MINUTES                  snooze alert ID for MINUTES

Each command is audited by the engine (`api_audit`: the OS user, source "cli", the command,
its arguments, the outcome) and its answer printed (`--json`: the engine's JSON answer).
Exit codes: 0 done; 1 no engine listens on `<db>.sock` (named), or it failed the command;
2 the engine refused it (bad symbol, unknown alert, ...).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from core.api.protocol import socket_path_for


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `ctl` and its subcommands to the top-level parser."""
    p = sub.add_parser("ctl", help="command the running engine (kill, resume, flatten, cancel-entries, ack, snooze)")
    p.add_argument("--json", action="store_true", help="print the engine's JSON answer")
    ctl = p.add_subparsers(dest="ctl_command", metavar="COMMAND")
    ctl.required = True
    k = ctl.add_parser("kill", help="kill switch on: cancel entries, keep stops, block new entries")
    k.add_argument("--flatten", action="store_true", help="also close every position at market")
    k.add_argument("--reason", default=None, help="why (recorded with the kill switch)")
    r = ctl.add_parser("resume", help="kill switch off: entries resume from the next candle")
    r.add_argument("--reason", default=None, help="why (recorded with the kill switch)")
    f = ctl.add_parser("flatten", help="close a symbol's position at market (no SYMBOL: every position)")
    f.add_argument("symbol", nargs="?", default=None, metavar="SYMBOL", help="e.g. BTC/USDT")
    c = ctl.add_parser("cancel-entries", help="cancel resting entry orders (no SYMBOL: every symbol)")
    c.add_argument("symbol", nargs="?", default=None, metavar="SYMBOL", help="e.g. BTC/USDT")
    a = ctl.add_parser("ack", help="acknowledge an alert")
    a.add_argument("alert_id", type=_positive, metavar="ID")
    s = ctl.add_parser("snooze", help="snooze an alert for MINUTES")
    s.add_argument("alert_id", type=_positive, metavar="ID")
    s.add_argument("minutes", type=_positive, metavar="MINUTES")
    p.set_defaults(func=cmd_ctl)


def _positive(text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return int(text)


def _call(args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    """(command name, arguments) of the parsed `ctl` subcommand."""
    cmd = args.ctl_command
    if cmd == "kill":
        return "kill", {"flatten": args.flatten, "reason": args.reason}
    if cmd == "resume":
        return "resume", {"reason": args.reason}
    if cmd in ("flatten", "cancel-entries"):
        return cmd.replace("-", "_"), {"symbol": args.symbol}
    if cmd == "ack":
        return "ack", {"id": args.alert_id}
    return "snooze", {"id": args.alert_id, "minutes": args.minutes}


async def send(sock: Any, name: str, args: dict[str, Any]) -> dict:
    """Send command `name` with `args` to the engine on `sock` as source "cli"; its answer.

    Raises:
        ApiClientError: no engine, unreachable, other protocol, or refused (`ApiError`).
    """
    from core.api.client import EngineClient

    async with EngineClient(sock, source="cli") as c:
        return await c.command(name, **args)


def cmd_ctl(args: argparse.Namespace) -> int:
    """`radar ctl ...`: send the command, print the answer; exit code per the module docstring.

    Raises:
        ApiClientError (a RadarError): printed by `radar` as one line with its exit code.
    """
    name, call = _call(args)
    answer = asyncio.run(send(socket_path_for(args.db), name, call))
    if args.json:
        print(json.dumps(answer, indent=2))
    else:
        print(f"{answer['message']} (audit #{answer['audit_id']})")
    return 0
