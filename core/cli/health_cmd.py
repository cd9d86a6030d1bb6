"""`radar health [--json] [--strict]`: is an engine running on the database, and how are its subsystems?

Reads the heartbeat and the latest health per subsystem that a running engine
writes (`core.health.heartbeat`), read-only: the database is never created or
changed. "No engine running" when there is no heartbeat, the engine stopped
cleanly, its beat is older than `STALE_FACTOR` x its interval, or (same host)
its process is gone; the subsystems then shown are the last known ones.

Exit codes: 0 engine running and nothing down (degraded too, unless --strict);
1 no engine running (a database that does not exist is not created: "no engine
running: database ... does not exist"), a subsystem down (or degraded with
--strict), or the database cannot be read (one line: read-only, damaged, ...);
2 bad usage. `--json` prints one object: engine_running, overall
("ok"|"degraded"|"down"|"no_engine"), message, heartbeat (or null),
checked_ms and subsystems (times ms UTC).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sqlite3
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from core.errors import RadarError
from core.health import store
from core.health.status import HealthStatus, SubsystemHealth, format_seconds, worst
from core.model.clock import format_ms, system_clock
from core.storage.errors import storage_error

#: `overall` when no engine is running.
NO_ENGINE = "no_engine"

_STYLE = {HealthStatus.OK: "green", HealthStatus.DEGRADED: "yellow", HealthStatus.DOWN: "bold red"}


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add `health` to the top-level parser."""
    p = sub.add_parser("health", help="is an engine running on the database, and how are its subsystems")
    p.add_argument("--json", action="store_true", help="print JSON (times in ms UTC)")
    p.add_argument("--strict", action="store_true", help="exit 1 when a subsystem is degraded, too")
    p.set_defaults(func=cmd_health)


def _pid_gone(beat: store.Heartbeat) -> bool:
    """True when the engine ran on this host and its process no longer exists."""
    if beat.host != socket.gethostname() or beat.pid <= 0:
        return False
    try:
        os.kill(beat.pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # e.g. permission denied: it exists
        return False
    return False


def _read(db: Path) -> tuple[store.Heartbeat | None, list[SubsystemHealth]]:
    """The heartbeat and the health rows, read-only; (None, []) when the database does not exist.

    Raises:
        RadarError (exit code 1, like "no engine"): the database cannot be opened or read;
            a storage failure is worded by `core.storage.errors.storage_error`.
    """
    if not db.exists():
        return None, []
    try:
        conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise _unreadable(exc, db, "cannot open database") from exc
    try:
        conn.execute("PRAGMA busy_timeout=5000")
        return store.read_heartbeat(conn), store.read_health(conn)
    except sqlite3.Error as exc:
        raise _unreadable(exc, db, "cannot read health from") from exc
    finally:
        conn.close()


def _unreadable(exc: sqlite3.Error, db: Path, doing: str) -> RadarError:
    """A RadarError (exit 1) with the storage wording of `exc` when it has one, else "`doing` `db`: `exc`"."""
    clear = storage_error(exc, db)
    return RadarError(str(clear) if clear is not None else f"{doing} {db}: {exc}")


def _no_engine_message(db: Path, beat: store.Heartbeat | None, now: int) -> str | None:
    """Why no engine is running, or None when one is."""
    if not db.exists():
        return f"no engine running: database {db} does not exist"
    if beat is None:
        return f"no engine running: no heartbeat in {db}"
    who = f"pid {beat.pid} on {beat.host}, mode {beat.mode}"
    if beat.stopped_ms is not None:
        return f"no engine running: the engine ({who}) stopped at {format_ms(beat.stopped_ms)}"
    if not beat.is_fresh(now):
        return (f"no engine running: last heartbeat {format_ms(beat.ts_ms)}, "
                f"{format_seconds(beat.age_ms(now) / 1000)} ago ({who}; expected every "
                f"{format_seconds(beat.interval_ms / 1000)})")
    if _pid_gone(beat):
        return f"no engine running: the engine process ({who}) is gone; last heartbeat {format_ms(beat.ts_ms)}"
    return None


def _since(ms: int, now: int) -> str:
    return f"{format_ms(ms).removesuffix(' UTC')} ({format_seconds(max(0, now - ms) / 1000)} ago)"


def cmd_health(args: argparse.Namespace) -> int:
    """`radar health`: print the engine's heartbeat and subsystem health; exit code per the module docstring.

    Raises:
        RadarError: the database exists but cannot be read.
    """
    db = Path(args.db)
    now = system_clock()
    beat, health = _read(db)
    gone = _no_engine_message(db, beat, now)
    status = worst(h.status for h in health)
    overall = NO_ENGINE if gone else status.value
    if gone:
        message = gone
    else:
        assert beat is not None
        message = (f"engine running: pid {beat.pid} on {beat.host}, mode {beat.mode}, up "
                   f"{format_seconds(max(0, now - beat.started_ms) / 1000)}, last heartbeat "
                   f"{format_seconds(beat.age_ms(now) / 1000)} ago; overall {status.value}")
    code = 1 if gone or status is HealthStatus.DOWN or (args.strict and status is HealthStatus.DEGRADED) else 0
    if args.json:
        out: dict[str, Any] = {"engine_running": gone is None, "overall": overall, "message": message,
                               "heartbeat": beat.to_dict() if beat else None, "checked_ms": now,
                               "subsystems": [h.to_dict() for h in health]}
        print(json.dumps(out, indent=2))
        return code
    console = Console(file=sys.stdout, width=None if sys.stdout.isatty() else 200, highlight=False)
    console.print(Text(message, style="bold red" if gone else _STYLE[status]))
    if not health:
        if not gone:
            console.print("no subsystem has reported yet")
        return code
    t = Table(title="Last known health (stale)" if gone else "Health (times UTC)")
    for col in ("subsystem", "status", "reason", "since"):
        t.add_column(col, no_wrap=col != "reason")
    for h in health:
        t.add_row(Text(h.subsystem), Text(h.status.value, style=_STYLE[h.status]), Text(h.reason),
                  Text(_since(h.since_ms, now)))
    console.print(t)
    return code
