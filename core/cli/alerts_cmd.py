"""`radar alerts list|ack|snooze`: the alerts in the database, and operator commands on them.

Works directly on the database, also while an engine runs on it: changes go
through `core.alerts.store` (the engine's own rules) with actor "cli", and a
running AlertEngine picks them up within its poll interval (< 1 s).

* `list [--state S]... [--severity S]... [--limit N] [--json]`  default: unresolved alerts.
* `ack ID`                                  exit 2 when ID is unknown or resolved.
* `snooze ID DURATION`                      DURATION like 30m, 2h, 1d; exit 2 on a bad one.

A database that does not exist is not created: every subcommand says so and
exits 2 (`core.storage.errors.DatabaseMissing`); a storage failure (read-only,
disk full, damaged file) is one line, exit 2.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from core.alerts import store
from core.alerts.durations import ACCEPTED_FORMS, parse_duration_ms
from core.alerts.model import AlertState, CommandResult, Severity
from core.errors import RadarError, UsageError
from core.model.clock import format_ms, system_clock
from core.storage.db import open_sync
from core.storage.errors import missing_database, storage_error

#: The actor recorded for changes made from the command line.
CLI_ACTOR = "cli"

_STATE_CHOICES = [s.value for s in AlertState] + ["open", "all"]
_SEVERITY_CHOICES = [s.value for s in Severity]


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add `alerts` with `list`, `ack` and `snooze` to the top-level parser."""
    p = sub.add_parser("alerts", help="list, acknowledge and snooze alerts")
    asub = p.add_subparsers(dest="alerts_command", metavar="ALERTS_COMMAND")
    asub.required = True

    lp = asub.add_parser("list", help="alerts (default: unresolved ones), most severe first")
    lp.add_argument("--state", action="append", choices=_STATE_CHOICES,
                    help="only this state (repeatable); open = active, acknowledged or snoozed (the default); "
                         "all = every state")
    lp.add_argument("--severity", action="append", choices=_SEVERITY_CHOICES,
                    help="only this severity (repeatable)")
    lp.add_argument("--limit", type=int, default=200, help="at most N alerts (default %(default)s; 0: all)")
    lp.add_argument("--json", action="store_true", help="print JSON (times in ms UTC)")
    lp.set_defaults(func=cmd_list)

    ap = asub.add_parser("ack", help="acknowledge an alert: no more re-notification, visible until resolved")
    ap.add_argument("id", metavar="ID", help="alert id (see `radar alerts list`)")
    ap.set_defaults(func=cmd_ack)

    sp = asub.add_parser("snooze", help="hide and mute an alert for a while; it comes back if still firing")
    sp.add_argument("id", metavar="ID", help="alert id (see `radar alerts list`)")
    sp.add_argument("duration", metavar="DURATION", help=f"how long: {ACCEPTED_FORMS}")
    sp.set_defaults(func=cmd_snooze)


def _open(db: Any, command: str) -> sqlite3.Connection:
    """The existing database `db` (migrated), for `command` (e.g. "radar alerts list").

    Raises:
        DatabaseMissing: `db` does not exist (it is not created).
        StorageError: it cannot be opened (read-only, disk full, damaged, ...).
        RadarError: another failure opening it.
    """
    if not Path(db).exists():
        raise missing_database(db, command)
    try:
        return open_sync(db)
    except (OSError, sqlite3.Error) as exc:
        raise storage_error(exc, db) or RadarError(f"cannot open database {db}: {exc}") from exc


def _failed(exc: BaseException, db: Any, doing: str) -> RadarError:
    """The one-line error of a database failure while `doing` (e.g. "read alerts")."""
    return storage_error(exc, db) or RadarError(f"cannot {doing} in {db}: {exc}")


def _states(values: list[str] | None) -> list[AlertState] | None:
    """The --state values as states; None for all."""
    chosen = set(values or ["open"])
    if "all" in chosen:
        return None
    states: set[AlertState] = set()
    for v in chosen:
        states |= {AlertState.ACTIVE, AlertState.ACKNOWLEDGED, AlertState.SNOOZED} if v == "open" \
            else {AlertState(v)}
    return sorted(states, key=list(AlertState).index)


def cmd_list(args: argparse.Namespace) -> int:
    """`radar alerts list`: a table (or JSON) of the selected alerts; 0.

    Raises:
        UsageError: negative --limit.
        DatabaseMissing: the database does not exist (exit 2; nothing is created).
        RadarError: the database cannot be opened or read.
    """
    if args.limit < 0:
        raise UsageError(f"--limit must be >= 0, got {args.limit}")
    severities = [Severity(s) for s in args.severity] if args.severity else None
    conn = _open(args.db, "radar alerts list")
    try:
        alerts = store.list_alerts(conn, _states(args.state), severities, args.limit or None)
    except sqlite3.Error as exc:
        raise _failed(exc, args.db, "read alerts") from exc
    finally:
        conn.close()
    if args.json:
        print(json.dumps([a.to_dict() for a in alerts], indent=2))
        return 0
    console = Console(file=sys.stdout, width=None if sys.stdout.isatty() else 200, highlight=False)
    if not alerts:
        console.print("no alerts match")
        return 0
    t = Table(title="Alerts (times UTC)")
    for col, just in (("id", "right"), ("severity", "left"), ("state", "left"), ("source", "left"),
                      ("title", "left"), ("count", "right"), ("first seen", "left"), ("last seen", "left"),
                      ("changed by", "left"), ("changed", "left")):
        t.add_column(col, justify=just, no_wrap=col != "title")
    for a in alerts:
        state = a.state.value if a.snoozed_until_ms is None else f"snoozed until {_short(a.snoozed_until_ms)}"
        cells = (str(a.id), a.severity.value, state, a.source, a.title, str(a.count), _short(a.first_seen_ms),
                 _short(a.last_seen_ms), a.changed_by, _short(a.changed_ms))
        t.add_row(*(Text(c) for c in cells))  # Text: no Rich markup in titles
    console.print(t)
    return 0


def _short(ms: int | None) -> str:
    return format_ms(ms).removesuffix(" UTC")


def _run_command(args: argparse.Namespace, fn: Any) -> int:
    """Run a store command with actor "cli"; 0 when ok, else UsageError (exit 2) with its message.

    Raises DatabaseMissing (exit 2) when the database does not exist, StorageError/RadarError when it fails.
    """
    conn = _open(args.db, f"radar alerts {args.alerts_command}")
    try:
        res: CommandResult = fn(conn, args.id, CLI_ACTOR, system_clock())
    except sqlite3.Error as exc:
        raise _failed(exc, args.db, f"change alert {args.id}") from exc
    finally:
        conn.close()
    if not res.ok:
        raise UsageError(res.message)
    print(res.message)
    return 0


def cmd_ack(args: argparse.Namespace) -> int:
    """`radar alerts ack ID`: 0, or exit 2 for an unknown, resolved or malformed ID."""
    return _run_command(args, store.acknowledge)


def cmd_snooze(args: argparse.Namespace) -> int:
    """`radar alerts snooze ID DURATION`: 0, or exit 2 for a bad DURATION or an unknown/resolved/malformed ID."""
    length = parse_duration_ms(args.duration)

    def snooze_for(conn: sqlite3.Connection, alert_id: str, actor: str, now: int) -> CommandResult:
        return store.snooze(conn, alert_id, now + length, actor, now)

    return _run_command(args, snooze_for)
