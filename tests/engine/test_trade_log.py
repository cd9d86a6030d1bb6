"""trades.jsonl, the JSON-lines trade-action log (`core.engine.trade_log`): written by `radar run`
beside its log; every line parses with the same keys; its fills are the engine's stored fills; an
API command, the kill switch, a halt are there with who did it and secrets masked; a SIGKILL
leaves only whole lines; a stopped supervisor loses nothing; the bounded subscription says when
it dropped events."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import stat
import time
from pathlib import Path
from types import SimpleNamespace

from pydantic import SecretStr

from core.api.client import EngineClient
from core.config.secrets import Secrets
from core.engine.supervisor import Supervisor
from core.engine.trade_log import ACTIONS, BASE_KEYS, TradeLog, parse_order_id
from core.events.bus import EventBus, FillEvent, IntentEvent, KillSwitchEvent, OrderEvent, PositionEvent
from tests.alerts.test_alerts_live_engine import pace_for, start_engine, write_slice
from tests.api.conftest import Run, eventually, open_position_candles  # noqa: F401 - the fixture
from tests.engine.test_engine_replay import only_envelope_config, radar
from tests.support.shared_data import shared_file

BTC_1H = "binance-spot/BTC_USDT-1h.json.gz"
SECRET = "k3y-Zq9SECRETvalue-77"


def read_lines(path: Path) -> list[dict]:
    text = path.read_text(encoding="utf-8")
    assert text == "" or text.endswith("\n"), "a partial last line"
    out = []
    for i, raw in enumerate(text.splitlines()):
        d = json.loads(raw)                                  # every line parses
        assert list(d)[:len(BASE_KEYS)] == list(BASE_KEYS), f"line {i + 1}: keys {list(d)}"
        assert type(d["ts_ms"]) is int and type(d["wall_ms"]) is int, f"line {i + 1}: {d}"
        assert d["action"] in ACTIONS, d["action"]
        out.append(d)
    return out


def stored_fills(db: Path) -> list[tuple]:
    conn = sqlite3.connect(db)
    try:
        return conn.execute("SELECT client_id, ts, kind, reason, side, price, qty, fee FROM trading_fills "
                            "ORDER BY id").fetchall()
    finally:
        conn.close()


def logged_fills(lines: list[dict]) -> list[tuple]:
    return [(d["client_order_id"], d["ts_ms"], d["kind"], d["reason"], d["side"], d["price"], d["qty"], d["fee"])
            for d in lines if d["action"] == "fill"]


def test_radar_run_replay_writes_trades_jsonl_matching_the_stored_fills(tmp_path: Path) -> None:
    cfg = only_envelope_config(tmp_path)
    db = tmp_path / "state" / "radar.db"
    db.parent.mkdir()
    res = radar("--config-dir", str(cfg), "--db", str(db), "run", "--no-ui", "--status-interval", "0",
                "--replay", str(shared_file(BTC_1H)), "--from", "2018-01-01", "--to", "2018-03-01", timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    path = db.parent / "logs" / "trades.jsonl"
    assert (db.parent / "logs" / "radar-run.jsonl").exists()           # beside the run's log
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    lines = read_lines(path)
    fills = stored_fills(db)
    assert len(fills) >= 20
    assert logged_fills(lines) == fills                     # same fills, same order, prices, quantities, fees
    conn = sqlite3.connect(db)
    try:
        cycles = conn.execute("SELECT idx, exit_reason, exit_price, pnl FROM trading_cycles ORDER BY idx").fetchall()
        orders = {r[0]: r[1:] for r in conn.execute("SELECT client_id, cycle, level, purpose, side FROM trading_orders")}
        runner_id = conn.execute("SELECT id FROM trading_runners").fetchone()[0]
    finally:
        conn.close()
    closed = [d for d in lines if d["action"] == "cycle_closed"]
    assert [(d["cycle"], d["reason"], d["price"], d["pnl_usdt"]) for d in closed] == cycles
    opened = [d["cycle"] for d in lines if d["action"] == "cycle_opened"]
    assert opened[:len(cycles)] == [c[0] for c in cycles] and len(opened) - len(cycles) in (0, 1)
    placed = [d for d in lines if d["action"] in ("order_placed", "take_profit_placed", "stop_placed")]
    assert placed and all(orders[d["client_order_id"]] == (d["cycle"], d["level"], d["purpose"], d["side"])
                          for d in placed)
    assert any(d["action"] == "order_amended" for d in lines) and any(d["action"] == "stop_moved" for d in lines)
    assert {d["mode"] for d in lines} == {"paper"} and all(d["replay"] is True for d in lines)
    trading = [d for d in lines if d["strategy"] is not None]
    assert trading and all(d["runner_id"] == runner_id and d["symbol"] == "BTC/USDT" for d in trading)
    assert sorted(d["ts_ms"] for d in lines) == [d["ts_ms"] for d in lines]      # the engine's order


async def test_commands_kill_switch_and_halts_with_who_and_secrets_masked(tmp_path: Path,
                                                                           open_position_candles) -> None:  # noqa: F811
    path = tmp_path / "logs" / "trades.jsonl"
    secrets = Secrets(bitget_api_key=SecretStr(SECRET))
    async with Run(tmp_path / "radar.db", open_position_candles, trade_log=path, secrets=secrets) as run:
        tlog = run.services.trade_log
        r = run.engine.runners[0]
        ex = r.executor
        entries = sum(1 for o in ex.orders.values() if o[0] == "entry")
        async with EngineClient(run.socket, source="cli") as c:
            await c.pause("BTC/USDT", reason="news in 5 min")
            await c.resume_runner("BTC/USDT")
            await c.kill(reason=f"rotating {SECRET}")
        await ex.halt("operator test halt", r.cursor)
        ex.unhalt(r.cursor)
        await eventually(lambda: any(d["action"] == "runner_unhalted" for d in read_lines(path)), 10,
                         "the halt lines")
        assert tlog.errors == 0
    text = path.read_text()
    assert SECRET not in text and "***" in text
    lines = read_lines(path)
    actions = [d["action"] for d in lines]
    i = max(j for j, a in enumerate(actions) if a == "command")            # pause, resume_runner, kill
    cmd = lines[i]
    assert [d["command"] for d in lines if d["action"] == "command"] == ["pause", "resume_runner", "kill"]
    assert cmd["command"] == "kill" and cmd["actor"].startswith("cli:") and cmd["args"] == {"flatten": False, "reason": "rotating ***"}
    ks = lines[actions.index("kill_switch")]
    assert ks["active"] is True and ks["actor"] == cmd["actor"] and ks["reason"] == "rotating ***"
    assert i < actions.index("kill_switch")                      # the command, then what it did
    first = actions.index("command")                          # the pause cancelled the resting entries
    cancelled = [d for d in lines[first:] if d["action"] == "order_cancelled" and d["purpose"] == "entry"]
    assert len(cancelled) == entries >= 1
    paused = lines[actions.index("runner_paused")]
    assert (paused["strategy"], paused["reason"], paused["actor"]) == ("envelope_dca", "news in 5 min", cmd["actor"])
    assert actions.index("runner_paused") < actions.index("runner_resumed") < actions.index("kill_switch")
    halted = lines[actions.index("runner_halted")]
    assert (halted["strategy"], halted["symbol"], halted["reason"]) == ("envelope_dca", "BTC/USDT", "operator test halt")
    assert halted["runner_id"] == r.runner_id
    assert actions.index("runner_halted") < actions.index("runner_unhalted")


def _stored_count(db: Path) -> int:
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.5)
    except sqlite3.Error:
        return 0
    try:
        return conn.execute("SELECT COUNT(*) FROM trading_fills").fetchone()[0]
    except sqlite3.Error:
        return 0
    finally:
        conn.close()


def test_a_sigkill_leaves_whole_lines_and_the_committed_fills(tmp_path: Path) -> None:
    data = write_slice(tmp_path, 0, 3000)
    proc, db, _ = start_engine(tmp_path, data, pace_for(data, 40.0))      # about 75 candles a second
    path = tmp_path / "logs" / "trades.jsonl"
    try:
        deadline = time.monotonic() + 120
        while _stored_count(db) < 10:
            assert proc.poll() is None, Path(proc.stderr_path).read_text()[-3000:]
            assert time.monotonic() < deadline, "no fills stored in time"
            time.sleep(0.05)
        time.sleep(2.0)                                      # more candles, more fills, then the kill
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    lines = read_lines(path)                                 # whole lines only, each parses
    logged = logged_fills(lines)
    stored = stored_fills(db)
    assert len(stored) >= 15, len(stored)
    n = min(len(logged), len(stored))
    assert logged[:n] == stored[:n]                          # the same fills, in the same order
    # what differs is at most the candle of the kill: committed but not yet taken by the log's
    # task, or logged but rolled back (paper: one transaction per candle)
    assert {f[1] for f in stored[n:]} <= {stored[-1][1]}, (len(stored), len(logged))
    assert {f[1] for f in logged[n:]} <= {logged[-1][1]}, (len(stored), len(logged))


def _engine(**kw):
    return SimpleNamespace(bus=EventBus(), mode="paper", sources=[SimpleNamespace(replay=True)], runners=[], **kw)


async def test_a_stopped_supervisor_loses_nothing_close_writes_what_is_queued(tmp_path: Path) -> None:
    eng = _engine(supervisor=Supervisor(None))
    tlog = TradeLog(eng, tmp_path / "t" / "trades.jsonl")
    tlog.start()
    cid = "rdab12-0123abcd-4-e2"
    eng.bus.publish(IntentEvent("s", "X/USDT", 1, "place", cid, 10.0, 2.0))
    eng.bus.publish(OrderEvent("s", "X/USDT", 1, cid, "entry", "buy", 10.0, "open"))
    await asyncio.sleep(0.05)
    assert tlog.lines == 1
    await eng.supervisor.stop()                              # the engine stops: the task is cancelled
    eng.bus.publish(FillEvent("s", "X/USDT", 2, cid, "entry", None, 2, "buy", 10.0, 0.5, 0.01))
    eng.bus.publish(PositionEvent("s", "X/USDT", 2, "long", 0.5, 10.0, 8.0, 1))
    eng.bus.publish(KillSwitchEvent(True, False, "risk", "daily loss"))
    await tlog.close()                                       # ... and what was still queued is written
    lines = read_lines(tmp_path / "t" / "trades.jsonl")
    assert [d["action"] for d in lines] == ["order_placed", "fill", "cycle_opened", "kill_switch"]
    placed, fill = lines[0], lines[1]
    assert (placed["cycle"], placed["level"], placed["qty"], placed["side"]) == (4, 2, 2.0, "buy")
    assert fill["partial"] is True and fill["fee"] == 0.01                   # 0.5 of the 2.0 ordered
    assert eng.bus.subscribers == 0
    assert stat.S_IMODE((tmp_path / "t").stat().st_mode) == 0o700


async def test_the_subscription_is_bounded_and_drops_are_written(tmp_path: Path) -> None:
    eng = _engine()
    tlog = TradeLog(eng, tmp_path / "trades.jsonl", maxsize=5)
    for i in range(20):                                      # the reader is not running: the queue fills
        eng.bus.publish(IntentEvent("s", "X/USDT", i, "amend", "rdab12-0123abcd-0-e0", 10.0 + i, 1.0))
    assert len(tlog.sub) == 5
    tlog.start()
    await tlog.close()
    lines = read_lines(tmp_path / "trades.jsonl")
    assert lines[0]["action"] == "events_dropped" and lines[0]["count"] == 15
    assert [d["price"] for d in lines[1:]] == [25.0, 26.0, 27.0, 28.0, 29.0]     # the newest kept
    assert tlog.dropped == 15


def test_client_ids_give_cycle_purpose_and_level() -> None:
    assert parse_order_id("rd1a2b-5868fd40-12-e3a2") == (12, "entry", 3, "a2")
    assert parse_order_id("rd1a2b-5868fd40-7-sr1") == (7, "stop", -1, "r1")
    assert parse_order_id("rd-5868fd40-0-t") == (0, "take_profit", -1, "")
    assert parse_order_id("someone-elses-order") == (None, None, None, "")
    assert parse_order_id(None) == (None, None, None, "")


def test_the_file_is_appended_to_not_truncated(tmp_path: Path) -> None:
    path = tmp_path / "trades.jsonl"
    path.write_text('{"earlier": 1}\n')
    os.chmod(path, 0o644)

    async def once() -> None:
        eng = _engine()
        tlog = TradeLog(eng, path)
        tlog.start()
        eng.bus.publish(KillSwitchEvent(False, False, "cli:op", "resume"))
        await tlog.close()

    asyncio.run(once())
    raw = path.read_text().splitlines()
    assert raw[0] == '{"earlier": 1}' and json.loads(raw[1])["action"] == "kill_switch"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
