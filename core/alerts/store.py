"""Alert persistence and state changes in SQLite (synchronous; the one place alert rows are written).

Used by the CLI directly on a `core.storage.db.open_sync` connection and by
`AlertEngine` on its own connection in a dedicated worker thread, so a change
made by `radar alerts ack` follows exactly the rules the engine follows.

Every write reads the current row inside a `BEGIN IMMEDIATE` transaction,
applies the change and bumps the `alert_rev` counter; the written row carries
the new counter value in `rev`, so a reader finds every row changed since the
counter value it last saw (`changed_since`).

Functions that run their own transaction say so; the others ("in a
transaction") must be called inside `transaction(conn)`. Every function raises
`sqlite3.Error` on a database failure (the transaction is rolled back).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Iterator
from contextlib import contextmanager

from core.alerts.model import Alert, AlertState, CommandResult, Severity
from core.model.clock import format_ms

_COLUMNS = ("id, dedup_key, severity, source, title, detail, first_seen_ms, last_seen_ms, count, state, "
            "snoozed_until_ms, changed_by, changed_ms, last_notified_ms, notified_count, last_escalated_ms")

#: SQL ordering matching `model.display_order`.
_ORDER = ("ORDER BY (state = 'resolved'), CASE severity WHEN 'critical' THEN 0 WHEN 'error' THEN 1 "
          "WHEN 'warning' THEN 2 ELSE 3 END, last_seen_ms DESC, id DESC")

#: Longest accepted actor name.
MAX_ACTOR_CHARS = 64


def _row_to_alert(row: tuple) -> Alert:
    return Alert(
        id=row[0], key=row[1], severity=Severity(row[2]), source=row[3], title=row[4], detail=row[5],
        first_seen_ms=row[6], last_seen_ms=row[7], count=row[8], state=AlertState(row[9]),
        snoozed_until_ms=row[10], changed_by=row[11], changed_ms=row[12], last_notified_ms=row[13],
        notified_count=row[14], last_escalated_ms=row[15],
    )


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """`BEGIN IMMEDIATE` ... `COMMIT`; rolled back when the body (or the commit) raises."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _bump(conn: sqlite3.Connection) -> int:
    """Increment the change counter (in a transaction); returns the new value."""
    return int(conn.execute("UPDATE alert_rev SET rev = rev + 1 WHERE id = 1 RETURNING rev").fetchall()[0][0])


# --------------------------------------------------------------------------- reads

def get(conn: sqlite3.Connection, alert_id: int) -> Alert | None:
    """The alert with `alert_id`, or None."""
    row = conn.execute(f"SELECT {_COLUMNS} FROM alerts WHERE id = ?", (alert_id,)).fetchone()
    return _row_to_alert(row) if row else None


def get_open_by_key(conn: sqlite3.Connection, key: str) -> Alert | None:
    """The unresolved alert with dedup key `key`, or None."""
    row = conn.execute(f"SELECT {_COLUMNS} FROM alerts WHERE dedup_key = ? AND state <> 'resolved'",
                       (key,)).fetchone()
    return _row_to_alert(row) if row else None


def list_alerts(conn: sqlite3.Connection, states: Collection[AlertState] | None = None,
                severities: Collection[Severity] | None = None, limit: int | None = None) -> list[Alert]:
    """Alerts in display order (unresolved first, most severe, most recently seen).

    Args:
        states: only these states (None: all).
        severities: only these severities (None: all).
        limit: at most this many (None: all).
    """
    where, params = [], []
    if states is not None:
        where.append(f"state IN ({','.join('?' * len(states))})" if states else "0")
        params += [s.value for s in states]
    if severities is not None:
        where.append(f"severity IN ({','.join('?' * len(severities))})" if severities else "0")
        params += [s.value for s in severities]
    sql = f"SELECT {_COLUMNS} FROM alerts"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " " + _ORDER
    if limit is not None:
        sql += " LIMIT ?"
        params.append(int(limit))
    return [_row_to_alert(r) for r in conn.execute(sql, params)]


def current_rev(conn: sqlite3.Connection) -> int:
    """The change counter: goes up with every committed write to alerts."""
    return int(conn.execute("SELECT rev FROM alert_rev WHERE id = 1").fetchone()[0])


def load_view(conn: sqlite3.Connection, keep_resolved: int) -> tuple[list[Alert], int]:
    """Every unresolved alert plus the `keep_resolved` most recently changed resolved ones, and
    the change counter they correspond to (one consistent snapshot)."""
    conn.execute("BEGIN")
    try:
        rev = current_rev(conn)
        rows = conn.execute(f"SELECT {_COLUMNS} FROM alerts WHERE state <> 'resolved'").fetchall()
        rows += conn.execute(f"SELECT {_COLUMNS} FROM alerts WHERE state = 'resolved' "
                             "ORDER BY changed_ms DESC, id DESC LIMIT ?", (keep_resolved,)).fetchall()
    finally:
        conn.execute("COMMIT")
    return [_row_to_alert(r) for r in rows], rev


def changed_since(conn: sqlite3.Connection, rev: int) -> tuple[list[Alert], int]:
    """Alerts written after change counter `rev` (in write order) and the counter they bring it to.

    Cheap when nothing changed: one single-row read.
    """
    if current_rev(conn) == rev:
        return [], rev
    rows = conn.execute(f"SELECT {_COLUMNS}, rev FROM alerts WHERE rev > ? ORDER BY rev", (rev,)).fetchall()
    if not rows:
        return [], rev
    return [_row_to_alert(r[:-1]) for r in rows], int(rows[-1][-1])


def key_last_notified(conn: sqlite3.Connection, since_ms: int) -> dict[str, int]:
    """Per dedup key, the latest notification time at or after `since_ms` (keys without one left out)."""
    return {k: int(t) for k, t in conn.execute(
        "SELECT dedup_key, MAX(last_notified_ms) FROM alerts WHERE last_notified_ms >= ? GROUP BY dedup_key",
        (since_ms,))}


# --------------------------------------------------------------------------- engine writes (in a transaction)

def record_firing(conn: sqlite3.Connection, key: str, severity: Severity, source: str, title: str,
                  detail: str, now_ms: int) -> tuple[Alert, bool]:
    """Record that the condition `key` fires (in a transaction).

    The unresolved alert with `key` gets count + 1, last seen = now (never
    moving back) and the given severity, source, title and detail; its state
    is unchanged. Without one, a new active alert opens (changed_by = source).

    Returns:
        (the alert after the write, True when it was newly opened).
    """
    rev = _bump(conn)
    current = get_open_by_key(conn, key)
    if current is None:
        cur = conn.execute(
            "INSERT INTO alerts (dedup_key, severity, source, title, detail, first_seen_ms, last_seen_ms, count,"
            " state, snoozed_until_ms, changed_by, changed_ms, notified_count, rev)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, 1, 'active', NULL, ?, ?, 0, ?)",
            (key, severity.value, source, title, detail, now_ms, now_ms, source, now_ms, rev))
        alert_id = int(cur.lastrowid)
        created = True
    else:
        conn.execute(
            "UPDATE alerts SET severity = ?, source = ?, title = ?, detail = ?, count = count + 1,"
            " last_seen_ms = MAX(last_seen_ms, ?), rev = ? WHERE id = ?",
            (severity.value, source, title, detail, now_ms, rev, current.id))
        alert_id = current.id
        created = False
    alert = get(conn, alert_id)
    assert alert is not None
    return alert, created


def mark_notified(conn: sqlite3.Connection, alert_id: int, now_ms: int, escalation: bool) -> Alert:
    """Record that a notification for `alert_id` went out at `now_ms` (in a transaction).

    Raises:
        KeyError: no such alert.
    """
    rev = _bump(conn)
    conn.execute(
        "UPDATE alerts SET last_notified_ms = ?, notified_count = notified_count + 1,"
        " last_escalated_ms = CASE WHEN ? THEN ? ELSE last_escalated_ms END, rev = ? WHERE id = ?",
        (now_ms, escalation, now_ms, rev, alert_id))
    alert = get(conn, alert_id)
    if alert is None:
        raise KeyError(f"no alert with id {alert_id}")
    return alert


def _set_state(conn: sqlite3.Connection, alert_id: int, state: AlertState, until_ms: int | None,
               actor: str, now_ms: int) -> Alert:
    rev = _bump(conn)
    conn.execute("UPDATE alerts SET state = ?, snoozed_until_ms = ?, changed_by = ?, changed_ms = ?, rev = ?"
                 " WHERE id = ?", (state.value, until_ms, actor, now_ms, rev, alert_id))
    alert = get(conn, alert_id)
    assert alert is not None
    return alert


def end_snooze(conn: sqlite3.Connection, alert_id: int, now_ms: int, actor: str) -> Alert | None:
    """Make `alert_id` active again if it is snoozed with a deadline at or before `now_ms` (in a transaction).

    Returns:
        the reactivated alert, or None when it is no longer due (resolved,
        acknowledged, snoozed again meanwhile, or unknown).
    """
    alert = get(conn, alert_id)
    if (alert is None or alert.state is not AlertState.SNOOZED or alert.snoozed_until_ms is None
            or alert.snoozed_until_ms > now_ms):
        return None
    return _set_state(conn, alert_id, AlertState.ACTIVE, None, actor, now_ms)


# --------------------------------------------------------------------------- state changes (own transaction)

def resolve_key(conn: sqlite3.Connection, key: str, actor: str, now_ms: int) -> Alert | None:
    """Resolve the unresolved alert with dedup key `key` (own transaction).

    Returns:
        the resolved alert, or None when no alert with `key` is unresolved (nothing written).
    """
    with transaction(conn):
        alert = get_open_by_key(conn, key)
        if alert is None:
            return None
        return _set_state(conn, alert.id, AlertState.RESOLVED, None, actor, now_ms)


def parse_alert_id(value: object) -> int | None:
    """`value` (an int or a decimal string such as "42") as a positive alert id, or None when it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    if isinstance(value, str) and value.strip().isdigit() and value.strip().isascii():
        n = int(value.strip())
        return n if n > 0 else None
    return None


def _check_command(conn: sqlite3.Connection, alert_id: object, actor: object,
                   verb: str) -> tuple[Alert | None, CommandResult | None]:
    """The alert a command applies to, or the failure result explaining why it cannot."""
    if not isinstance(actor, str) or not actor.strip() or len(actor) > MAX_ACTOR_CHARS:
        return None, CommandResult.failure(
            "invalid", f"cannot {verb} alert {alert_id}: actor must be a non-empty name of at most "
                       f"{MAX_ACTOR_CHARS} characters, got {actor!r}")
    n = parse_alert_id(alert_id)
    if n is None:
        return None, CommandResult.failure(
            "invalid", f"cannot {verb}: alert id must be a positive whole number, got {alert_id!r}")
    alert = get(conn, n)
    if alert is None:
        return None, CommandResult.failure("unknown_id", f"cannot {verb}: no alert with id {n}")
    if alert.state is AlertState.RESOLVED:
        return None, CommandResult.failure(
            "resolved", f"cannot {verb} alert {n} ({alert.title}): it was resolved by {alert.changed_by} "
                        f"at {format_ms(alert.changed_ms)}", alert)
    return alert, None


def acknowledge(conn: sqlite3.Connection, alert_id: int | str, actor: str, now_ms: int) -> CommandResult:
    """Acknowledge an active or snoozed alert (own transaction); never raises for bad input.

    An acknowledged alert stays visible until resolved and is not re-notified
    or escalated. Acknowledging an acknowledged alert is ok and changes nothing.

    Returns:
        ok with the updated alert; or a failure naming the problem: "invalid"
        (bad id or actor), "unknown_id", "resolved".

    Raises:
        sqlite3.Error: the database failed (rolled back).
    """
    with transaction(conn):
        alert, failed = _check_command(conn, alert_id, actor, "acknowledge")
        if failed is not None:
            return failed
        assert alert is not None
        if alert.state is AlertState.ACKNOWLEDGED:
            return CommandResult.success(
                f"alert {alert.id} ({alert.title}) was already acknowledged by {alert.changed_by} "
                f"at {format_ms(alert.changed_ms)}", alert)
        alert = _set_state(conn, alert.id, AlertState.ACKNOWLEDGED, None, actor, now_ms)
        return CommandResult.success(f"acknowledged alert {alert.id}: {alert.title}", alert)


def snooze(conn: sqlite3.Connection, alert_id: int | str, until_ms: int, actor: str, now_ms: int) -> CommandResult:
    """Snooze an unresolved alert until `until_ms` (own transaction); never raises for bad input.

    A snoozed alert is hidden and muted; when the deadline passes and it is
    still unresolved the engine makes it active again and notifies it.
    Snoozing a snoozed alert moves its deadline.

    Returns:
        ok with the updated alert; or a failure: "invalid" (bad id, actor, or a
        deadline not after `now_ms`), "unknown_id", "resolved".

    Raises:
        sqlite3.Error: the database failed (rolled back).
    """
    if isinstance(until_ms, bool) or not isinstance(until_ms, int) or until_ms <= now_ms:
        return CommandResult.failure(
            "invalid", f"cannot snooze alert {alert_id}: the deadline must be after now "
                       f"({format_ms(now_ms)}), got {until_ms!r}")
    with transaction(conn):
        alert, failed = _check_command(conn, alert_id, actor, "snooze")
        if failed is not None:
            return failed
        assert alert is not None
        alert = _set_state(conn, alert.id, AlertState.SNOOZED, until_ms, actor, now_ms)
        return CommandResult.success(
            f"snoozed alert {alert.id} until {format_ms(until_ms)}: {alert.title}", alert)
