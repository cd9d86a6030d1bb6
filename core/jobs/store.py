"""`optimization_jobs` rows: create, transition, progress, restart recovery (synchronous sqlite3).

Every function takes a `sqlite3.Connection` from `core.storage.db.open_sync` (autocommit);
each write is a single statement, so it is atomic on its own.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from typing import Any

from core.jobs.model import FAILED, INTERRUPTED, QUEUED, RUNNING, STATES, TERMINAL, JobRecord

_COLS = ("id", "kind", "params", "state", "error", "progress", "phase", "result", "created_ms", "started_ms",
         "finished_ms")


def now_ms() -> int:
    """The wall clock, ms UTC."""
    return int(time.time() * 1000)


def this_owner() -> str:
    """`host:pid` of this process, the `owner` of the jobs it queues and runs."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _owner_alive(owner: str | None) -> bool:
    """True when `owner` is a live process of this host other than this one (then its jobs are its own)."""
    if not owner:
        return False
    host, _, pid_text = owner.rpartition(":")
    if host != socket.gethostname() or not pid_text.isdigit() or int(pid_text) == os.getpid():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return False
    except PermissionError:                       # exists, owned by another user
        return True
    return True


def create_job(conn: sqlite3.Connection, kind: str, params: dict[str, Any], owner: str | None = None) -> int:
    """Insert a `queued` job owned by `owner` (default: this process); returns its id.

    Raises:
        TypeError: `params` is not JSON-serialisable.
    """
    cur = conn.execute("INSERT INTO optimization_jobs (kind, params, state, progress, phase, owner, created_ms) "
                       "VALUES (?, ?, ?, 0, 'queued', ?, ?)",
                       (kind, json.dumps(params), QUEUED, owner or this_owner(), now_ms()))
    return int(cur.lastrowid)


def set_state(conn: sqlite3.Connection, job_id: int, state: str, *, error: str | None = None,
              progress: float | None = None, phase: str | None = None, result: Any = None) -> None:
    """Move a job to `state` (started_ms set on running, finished_ms on a terminal state).

    Raises:
        ValueError: `state` is not one of STATES.
    """
    if state not in STATES:
        raise ValueError(f"job state must be one of {', '.join(STATES)}, got {state!r}")
    sets, args = ["state = ?"], [state]
    if state == RUNNING:
        sets.append("started_ms = ?")
        args.append(now_ms())
    if state in TERMINAL:
        sets.append("finished_ms = ?")
        args.append(now_ms())
    for col, val in (("error", error), ("progress", progress), ("phase", phase)):
        if val is not None:
            sets.append(f"{col} = ?")
            args.append(val)
    if result is not None:
        sets.append("result = ?")
        args.append(json.dumps(result))
    conn.execute(f"UPDATE optimization_jobs SET {', '.join(sets)} WHERE id = ?", (*args, int(job_id)))


def set_progress(conn: sqlite3.Connection, job_id: int, percent: float, phase: str) -> None:
    """Record a running job's progress (percent 0–100) and phase."""
    conn.execute("UPDATE optimization_jobs SET progress = ?, phase = ? WHERE id = ?",
                 (float(percent), phase, int(job_id)))


def recover_interrupted(conn: sqlite3.Connection) -> list[int]:
    """Jobs left `running` or `queued` by a process that ended become `failed` with error
    "interrupted" (their worker is gone); returns their ids.

    A job whose `owner` (host:pid) is another live process of this host is left alone: that
    process (e.g. the console while `radar optimize` starts) is still running it. A job of
    this very process, of another host, or without owner counts as interrupted.
    """
    rows = conn.execute("SELECT id, owner FROM optimization_jobs WHERE state IN (?, ?) ORDER BY id",
                        (RUNNING, QUEUED)).fetchall()
    ids = [int(r[0]) for r in rows if not _owner_alive(r[1])]
    if ids:
        conn.execute(f"UPDATE optimization_jobs SET state = ?, error = ?, finished_ms = ? "
                     f"WHERE id IN ({', '.join('?' * len(ids))})", (FAILED, INTERRUPTED, now_ms(), *ids))
    return ids


def _record(row: tuple) -> JobRecord:
    d = dict(zip(_COLS, row))
    d["params"] = json.loads(d["params"])
    d["result"] = json.loads(d["result"]) if d["result"] is not None else None
    return JobRecord(**d)


def get_job(conn: sqlite3.Connection, job_id: int) -> JobRecord | None:
    """The job row, or None."""
    row = conn.execute(f"SELECT {', '.join(_COLS)} FROM optimization_jobs WHERE id = ?", (int(job_id),)).fetchone()
    return None if row is None else _record(row)


def list_jobs(conn: sqlite3.Connection, limit: int = 50) -> list[JobRecord]:
    """The newest jobs first."""
    return [_record(r) for r in conn.execute(
        f"SELECT {', '.join(_COLS)} FROM optimization_jobs ORDER BY id DESC LIMIT ?", (int(limit),)).fetchall()]

