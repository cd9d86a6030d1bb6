"""`radar ctl ...`: operator commands to the running engine, through its API socket.

    radar ctl kill [--flatten] [--reason TEXT]   kill switch on: entries cancelled (stops kept);
                                                 --flatten also closes every position at market
    radar ctl resume [--reason TEXT]             kill switch off (every runner)
    radar ctl flatten [SYMBOL] [--strategy S]    force-exit SYMBOL's position at market (no SYMBOL:
                                                 every position), reason "forceexit"
    radar ctl cancel-entries [SYMBOL]            cancel resting entries (no SYMBOL: every symbol)
    radar ctl ack ID                             acknowledge alert ID
    radar ctl snooze ID MINUTES                  snooze alert ID for MINUTES
    radar ctl pause SYMBOL [--strategy S] [--reason TEXT]
                                                 pause one runner: no new entries (resting ones
                                                 cancelled), its position keeps its stop and
                                                 take-profit; survives a restart
    radar ctl resume-runner SYMBOL [--strategy S] [--reason TEXT]
                                                 lift that runner's pause (`resume` is the kill switch)
    radar ctl apply-params SYMBOL KEY=VALUE ... [--strategy S]
                                                 new params for one grid runner: applied now when it
                                                 is flat, else pending until it is flat
    radar ctl job-cancel ID                      cancel research job ID
    radar ctl audit [--limit N] [--json]         the audited commands, newest first: who, when
                                                 (UTC), source, command, arguments, outcome

`--strategy` picks the runner when several strategies run on SYMBOL. Each command is audited by
the engine (`api_audit`: the OS user, source "cli", the command, its arguments, the outcome)
and its answer printed (`--json`: the engine's JSON answer). Exit codes: 0 done; 1 no engine
listens on `<db>.sock` (named), or it failed the command; 2 the engine refused it (bad symbol,
unknown alert, bad params, ...).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from core.api.protocol import socket_path_for
from core.errors import UsageError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `ctl` and its subcommands to the top-level parser."""
    p = sub.add_parser("ctl", help="command the running engine (kill, resume, flatten, cancel-entries, ack, snooze, "
                                   "pause, resume-runner, apply-params, job-cancel, audit)")
    p.add_argument("--json", action="store_true", help="print the engine's JSON answer")
    ctl = p.add_subparsers(dest="ctl_command", metavar="COMMAND")
    ctl.required = True
    k = ctl.add_parser("kill", help="kill switch on: cancel entries, keep stops, block new entries")
    k.add_argument("--flatten", action="store_true", help="also close every position at market")
    k.add_argument("--reason", default=None, help="why (recorded with the kill switch)")
    r = ctl.add_parser("resume", help="kill switch off: entries resume from the next candle")
    r.add_argument("--reason", default=None, help="why (recorded with the kill switch)")
    f = ctl.add_parser("flatten", help="force-exit a symbol's position at market (no SYMBOL: every position)")
    f.add_argument("symbol", nargs="?", default=None, metavar="SYMBOL", help="e.g. BTC/USDT")
    f.add_argument("--strategy", default=None, help="only this strategy's runner on SYMBOL")
    c = ctl.add_parser("cancel-entries", help="cancel resting entry orders (no SYMBOL: every symbol)")
    c.add_argument("symbol", nargs="?", default=None, metavar="SYMBOL", help="e.g. BTC/USDT")
    a = ctl.add_parser("ack", help="acknowledge an alert")
    a.add_argument("alert_id", type=_positive, metavar="ID")
    s = ctl.add_parser("snooze", help="snooze an alert for MINUTES")
    s.add_argument("alert_id", type=_positive, metavar="ID")
    s.add_argument("minutes", type=_positive, metavar="MINUTES")
    pa = ctl.add_parser("pause", help="pause one runner: no new entries, its position keeps its stops")
    pa.add_argument("symbol", metavar="SYMBOL", help="e.g. BTC/USDT")
    pa.add_argument("--strategy", default=None, help="the runner's strategy when several run on SYMBOL")
    pa.add_argument("--reason", default=None, help="why (recorded)")
    ru = ctl.add_parser("resume-runner", help="lift one runner's pause (the kill switch is `resume`)")
    ru.add_argument("symbol", metavar="SYMBOL", help="e.g. BTC/USDT")
    ru.add_argument("--strategy", default=None, help="the runner's strategy when several run on SYMBOL")
    ru.add_argument("--reason", default=None, help="why (recorded)")
    ap = ctl.add_parser("apply-params", help="new params for one grid runner: now when flat, else when flat again")
    ap.add_argument("symbol", metavar="SYMBOL", help="e.g. BTC/USDT")
    ap.add_argument("params", nargs="+", type=_key_value, metavar="KEY=VALUE", help="e.g. ma_period=10")
    ap.add_argument("--strategy", default=None, help="the runner's strategy when several run on SYMBOL")
    jc = ctl.add_parser("job-cancel", help="cancel a queued or running research job")
    jc.add_argument("job_id", type=_positive, metavar="ID")
    au = ctl.add_parser("audit", help="the audited commands, newest first")
    au.add_argument("--limit", type=_positive, default=50, help="how many (default 50, at most 1000)")
    au.add_argument("--json", dest="audit_json", action="store_true", help="print the engine's JSON answer")
    p.set_defaults(func=cmd_ctl)


def _key_value(text: str) -> tuple[str, Any]:
    """("key", value) of "key=value"; the value read as JSON (7, 0.05, true), else kept as text."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip() or not raw.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE such as ma_period=10, got {text!r}")
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    return key.strip(), value


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
    if cmd == "flatten":
        if args.strategy is not None and args.symbol is None:
            raise UsageError("flatten --strategy needs a SYMBOL")
        return "flatten", {"symbol": args.symbol, "strategy": args.strategy}
    if cmd == "cancel-entries":
        return "cancel_entries", {"symbol": args.symbol}
    if cmd == "ack":
        return "ack", {"id": args.alert_id}
    if cmd in ("pause", "resume-runner"):
        return cmd.replace("-", "_"), {"symbol": args.symbol, "strategy": args.strategy, "reason": args.reason}
    if cmd == "apply-params":
        keys = [k for k, _ in args.params]
        dup = sorted({k for k in keys if keys.count(k) > 1})
        if dup:
            raise UsageError(f"apply-params: {', '.join(dup)} given twice")
        return "apply_params", {"symbol": args.symbol, "strategy": args.strategy, "params": dict(args.params)}
    if cmd == "job-cancel":
        return "job_cancel", {"id": args.job_id}
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
    if args.ctl_command == "audit":
        return _cmd_audit(args)
    name, call = _call(args)
    answer = asyncio.run(send(socket_path_for(args.db), name, call))
    if args.json:
        print(json.dumps(answer, indent=2))
    else:
        print(f"{answer['message']} (audit #{answer['audit_id']})")
    return 0


async def _read_audit(sock: Any, limit: int) -> list[dict]:
    from core.api.client import EngineClient

    async with EngineClient(sock, readonly=True, source="cli") as c:
        return await c.audit(limit)


def audit_line(row: dict) -> str:
    """One audit record as a line: #id, when (UTC), who, source, command, arguments, outcome."""
    from datetime import datetime, timezone

    when = datetime.fromtimestamp(row["ts_ms"] / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    who = str(row.get("os_user") or "?") + (" (read-only)" if row.get("readonly") else "")
    args = row.get("args")
    text = args if isinstance(args, str) else json.dumps(args, sort_keys=True, separators=(",", ":"))
    status = f" {row['status']}" if row.get("status") is not None else ""
    msg = f": {row['message']}" if row.get("message") else ""
    return (f"#{row['id']:<5} {when}  {who:<12} {row.get('source', '?'):<9} {row['command']:<14} {text}  "
            f"-> {row['outcome']}{status}{msg}")


def _cmd_audit(args: argparse.Namespace) -> int:
    """`radar ctl audit`: the engine's audited commands, newest first."""
    if args.limit > 1000:
        raise UsageError(f"--limit must be at most 1000, got {args.limit}")
    rows = asyncio.run(_read_audit(socket_path_for(args.db), args.limit))
    if args.json or args.audit_json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no audited commands")
        return 0
    for row in rows:
        print(audit_line(row))
    return 0
