"""Commands through the real client: refused on a read-only connection (by the ENGINE: 403, nothing
changed), audited in the database (who, source, when, from where, what, outcome), checked in full
before anything is done (bad symbol, unknown command, malformed body, bad arguments)."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

import aiohttp
import pytest

from core.api.audit import read_audit
from core.api.client import EngineClient
from core.api.peercred import user_name
from core.api.protocol import ApiError
from core.api.sockets import reachable
from core.executor.kill_switch import KillSwitch
from tests.api.conftest import Run


def audit_rows(run: Run) -> list:
    conn = sqlite3.connect(run.db)
    try:
        return read_audit(conn, 100)
    finally:
        conn.close()


async def test_readonly_connection_is_refused_by_the_engine(run: Run) -> None:
    ks = run.engine.kill_switch
    pos = run.engine.runners[0].position()
    async with EngineClient(run.socket, readonly=True, source="console") as c:
        for call in (c.kill(flatten=True), c.flatten("BTC/USDT"), c.cancel_entries(), c.resume(), c.ack(1)):
            with pytest.raises(ApiError) as err:
                await call
            assert (err.value.status, err.value.code) == (403, "readonly")
            assert "read-only" in err.value.message
    # `?readonly=1` on a raw connection (what `curl` would send) is refused the same way
    with reachable(run.socket) as name:
        async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=name)) as s:
            async with s.post("http://radar/v1/commands/kill?readonly=1", json={}) as resp:
                body = await resp.json()
                assert resp.status == 403 and body["error"]["code"] == "readonly"
    assert not ks.active and run.engine.runners[0].position() == pos            # nothing changed
    rows = audit_rows(run)
    assert len(rows) == 6 and all(r.outcome == "refused" and r.status == 403 and r.readonly for r in rows)
    assert [r.command for r in reversed(rows)] == ["kill", "flatten", "cancel_entries", "resume", "ack", "kill"]
    assert {r.source for r in rows} == {"console", "unknown"}


async def test_kill_is_executed_and_audited(run: Run) -> None:
    runner = run.engine.runners[0]
    assert runner.position()["qty"] > 0
    t0 = time.time_ns() // 1_000_000
    async with EngineClient(run.socket, source="cli") as c:
        ans = await c.kill(flatten=True, reason="test kill")
    t1 = time.time_ns() // 1_000_000
    assert ans["ok"] and ans["command"] == "kill"
    assert ans["result"]["active"] and ans["result"]["flattened"] == 1 and ans["result"]["cancelled_entries"] >= 1
    assert runner.position()["qty"] == 0
    assert run.engine.kill_switch.active and run.engine.kill_switch.actor == f"cli:{user_name(os.geteuid())}"
    assert run.engine.kill_switch.reason == "test kill"
    (row,) = audit_rows(run)
    assert row.id == ans["audit_id"]
    assert (row.os_user, row.uid, row.source, row.command) == (user_name(os.geteuid()), os.geteuid(), "cli", "kill")
    assert row.args == {"flatten": True, "reason": "test kill"}
    assert (row.outcome, row.status, row.readonly) == ("ok", 200, False)
    assert row.message == ans["message"] and "1 position(s) flattened" in row.message
    assert t0 <= row.ts_ms <= row.done_ms <= t1
    comm = Path(f"/proc/{os.getpid()}/comm").read_text().strip()
    assert row.origin == f"unix:{run.socket} pid {os.getpid()} ({comm})"
    assert KillSwitch(run.engine.store).active                                  # persisted

    async with EngineClient(run.socket, source="cli") as c:
        ans = await c.resume()
    assert ans["ok"] and not run.engine.kill_switch.active
    assert audit_rows(run)[0].command == "resume" and audit_rows(run)[0].outcome == "ok"


async def test_flatten_cancel_entries_ack_snooze(run: Run) -> None:
    runner = run.engine.runners[0]
    alert = await run.services.alerts.raise_alert("test:api", "warning", "test", "an alert to acknowledge")
    async with EngineClient(run.socket, source="cli") as c:
        ans = await c.cancel_entries("BTC/USDT")
        assert ans["result"]["cancelled_entries"] >= 1 and ans["result"]["symbols"] == ["BTC/USDT"]
        assert not any(o["purpose"] == "entry" for o in runner.grid_state()["open_orders"])
        assert runner.position()["qty"] > 0 and runner.position()["stop"] > 0       # stop kept
        ans = await c.flatten("BTC/USDT")
        assert ans["result"] == {"flattened": 1, "cancelled_entries": 0, "symbols": ["BTC/USDT"]}
        assert runner.position()["qty"] == 0 and runner.cycles[-1].exit_reason == "forceexit"
        assert not run.engine.kill_switch.active
        ans = await c.ack(alert.id)
        assert ans["ok"] and ans["result"]["alert"]["state"] == "acknowledged"
        assert run.services.alerts.get(alert.id).changed_by == f"cli:{user_name(os.geteuid())}"
        ans = await c.snooze(alert.id, 30)
        a = run.services.alerts.get(alert.id)
        assert ans["ok"] and a.state.value == "snoozed"
        assert 29 * 60_000 <= a.snoozed_until_ms - a.changed_ms <= 30 * 60_000
    assert [r.command for r in audit_rows(run)] == ["snooze", "ack", "flatten", "cancel_entries"]
    assert all(r.outcome == "ok" for r in audit_rows(run))


@pytest.mark.parametrize("name, body, status, code, words", [
    ("flatten", {"symbol": "ETH/USDT"}, 400, "bad_symbol", "no strategy runs on 'ETH/USDT'; running: BTC/USDT"),
    ("explode", {}, 404, "unknown_command", "unknown command 'explode'; commands: kill, resume"),
    ("kill", b"{not json", 400, "malformed_body", "malformed body: expected a JSON object"),
    ("kill", b"[1, 2]", 400, "malformed_body", "expected a JSON object, got list"),
    ("kill", {"flatten": "yes"}, 400, "bad_argument", 'kill: flatten must be true or false, got "yes"'),
    ("kill", {"flaten": True}, 400, "bad_argument", "kill: unknown argument(s) 'flaten'; expected: flatten, reason"),
    ("snooze", {"id": 3}, 400, "missing_argument", "snooze: missing argument(s) minutes"),
    ("snooze", {"id": 3, "minutes": 0}, 400, "bad_argument", "minutes must be 1 .. 525600, got 0"),
    ("ack", {"id": 9999}, 404, "unknown_id", "no alert with id 9999"),
])
async def test_bad_commands_are_refused_whole_and_audited(run: Run, name: str, body, status: int, code: str,
                                                          words: str) -> None:
    runner = run.engine.runners[0]
    before = (runner.position(), runner.grid_state()["open_orders"], run.engine.kill_switch.as_dict())
    with reachable(run.socket) as path:
        async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=path),
                                         headers={"X-Radar-Source": "cli"}) as s:
            kw = {"data": body} if isinstance(body, bytes) else {"json": body}
            async with s.post(f"http://radar/v1/commands/{name}", **kw) as resp:
                got = await resp.json()
                assert resp.status == status and resp.content_type == "application/json"
    assert got["error"]["code"] == code and words in got["error"]["message"]
    assert (runner.position(), runner.grid_state()["open_orders"], run.engine.kill_switch.as_dict()) == before
    (row,) = audit_rows(run)
    assert (row.id, row.command, row.outcome, row.status) == (got["audit_id"], name, "refused", status)
    assert words in row.message
    if isinstance(body, bytes):
        assert row.args == body.decode() or row.args == [1, 2]


async def test_an_unauditable_command_is_not_run(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(**kw):
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(run.server.audit, "begin", broken)
    async with EngineClient(run.socket, source="cli") as c:
        with pytest.raises(ApiError) as err:
            await c.kill()
    assert (err.value.status, err.value.code) == (503, "audit_unavailable")
    assert "command not run" in err.value.message and "database is locked" in err.value.message
    assert not run.engine.kill_switch.active
