"""The headless paper engine replaying a file gives exactly the event backtest's result;
resume is idempotent; one engine per database; the kill switch; what --live needs."""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from core.backtest.event_engine import run_event_backtest
from core.backtest.loading import load_from_file
from core.backtest.report import build_report
from core.engine.api import EngineAPI
from core.engine.engine import CandleSource, Engine, RunnerSpec
from core.events.bus import FillEvent, KillSwitchEvent, RiskRejection
from core.executor.kill_switch import KillSwitch
from core.executor.state_store import EngineLock, StateStore
from core.model.account import Account
from core.model.candles import Candles
from core.paths import DEFAULT_CONFIG_DIR
from tests.support.shared_data import shared_file

PROJECT = Path(__file__).resolve().parents[2]
RADAR = [sys.executable, "-m", "core.cli.main"]
BTC_1H = "binance-spot/BTC_USDT-1h.json.gz"


def only_envelope_config(tmp: Path) -> Path:
    """A copy of the packaged config where only envelope_dca is enabled."""
    dst = tmp / "config"
    shutil.copytree(DEFAULT_CONFIG_DIR, dst)
    doc = yaml.safe_load((dst / "strategies.yaml").read_text())
    for name, entry in doc["strategies"].items():
        entry["enabled"] = name == "envelope_dca"
    (dst / "strategies.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return dst


def radar(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    return subprocess.run([*RADAR, *args], cwd=PROJECT, env=env, capture_output=True, text=True, timeout=timeout)


def assert_same_result(got: dict, want: dict) -> None:
    """Same JSON; floats within 1e-9 relative (they should be identical)."""
    assert got.keys() == want.keys()
    for key in want:
        if key == "cycles":
            assert len(got[key]) == len(want[key])
            for a, b in zip(got[key], want[key]):
                assert a.keys() == b.keys()
                for f in b:
                    _close(a[f], b[f], f"cycle {f}")
        else:
            _close(got[key], want[key], key)
    assert got == want, "numbers are close but not identical"


def _close(a, b, what: str) -> None:
    if isinstance(b, float) and isinstance(a, float):
        assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12), f"{what}: {a!r} != {b!r}"
    else:
        assert a == b, f"{what}: {a!r} != {b!r}"


def test_replay_equals_event_backtest_full_btc(tmp_path: Path) -> None:
    data = shared_file(BTC_1H)
    cfg = only_envelope_config(tmp_path)
    db, report = tmp_path / "r.db", tmp_path / "r.json"
    run = radar("--config-dir", str(cfg), "--db", str(db), "run", "--no-ui", "--replay", str(data),
                "--speed", "max", "--report", str(report), "--status-interval", "0")
    assert run.returncode == 0, run.stderr[-3000:]
    speed = re.search(r"radar run: (\d+) candles, ([\d,]+) candles/s", run.stderr)
    assert speed, run.stderr[-2000:]
    print(f"\nheadless replay: {speed.group(1)} candles at {speed.group(2)} candles/s (persistence on)")
    bt = radar("--config-dir", str(cfg), "backtest", "--strategy", "envelope_dca", "--engine", "event",
               "--data", str(data), "--json")
    assert bt.returncode == 0, bt.stderr[-2000:]
    want = json.loads(bt.stdout)
    got = json.loads(report.read_text())
    assert isinstance(got, list) and len(got) == 1
    assert got[0]["strategy"] == "envelope_dca" and got[0]["symbol"] == "BTC/USDT" and got[0]["timeframe"] == "1h"
    assert want["n_cycles"] > 50
    assert_same_result(got[0], want)
    # a second run on the finished database changes nothing
    again = radar("--config-dir", str(cfg), "--db", str(db), "run", "--no-ui", "--replay", str(data),
                  "--report", str(tmp_path / "again.json"), "--status-interval", "0")
    assert again.returncode == 0, again.stderr[-2000:]
    assert json.loads((tmp_path / "again.json").read_text()) == got
    # the JSON-lines log beside the database
    lines = (tmp_path / "logs" / "radar-run.jsonl").read_text().splitlines()
    assert lines and all({"ts", "level", "logger", "msg"} <= json.loads(x).keys() for x in lines)


# ------------------------------------------------------------------ in-process engine on a slice

def _slice(n: int) -> Candles:
    c = load_from_file(shared_file(BTC_1H))
    return c.between(None, int(c.ts[n]))


def _source(candles: Candles) -> CandleSource:
    from core.data.replay import ReplayFeed

    cols = [a.tolist() for a in (candles.ts, candles.open, candles.high, candles.low, candles.close)]

    def history(up_to, n):
        rows = [r for r in zip(*cols) if up_to is None or r[0] <= up_to]
        return rows[-n:]

    return CandleSource(candles.symbol, candles.timeframe,
                        lambda after: ReplayFeed.from_candles(candles, speed="max", start_after_ts=after), history)


def _engine(db: Path, candles: Candles) -> Engine:
    spec = RunnerSpec("envelope_dca", {}, candles.symbol, candles.timeframe)
    return Engine(db, [_source(candles)], [spec], Account(), status_interval=0)


async def test_engine_in_process_equals_backtest_and_api(tmp_path: Path) -> None:
    candles = _slice(3000)
    eng = _engine(tmp_path / "e.db", candles)
    api = EngineAPI(eng)
    fills = api.events((FillEvent,), maxsize=10)
    await eng.run()
    assert eng.finished
    want = run_event_backtest(candles, "envelope_dca", {}, Account()).to_spec_json()
    got = build_report(tmp_path / "e.db", Account())
    assert got == [want]
    n_fills = 0
    while True:
        try:
            fills.get_nowait()
            n_fills += 1
        except asyncio.QueueEmpty:
            break
    assert n_fills == sum(c["levels_filled"] + 1 for c in want["cycles"])   # none dropped past maxsize
    snap = api.snapshot()
    assert snap["mode"] == "paper" and snap["kill_switch"]["active"] is False
    (row,) = snap["symbols"]["BTC/USDT"]
    assert row["last_price"] == float(candles.close[-1])
    assert api.positions() == []
    assert api.grid_state("BTC/USDT")["cycles"] == want["n_cycles"]


async def test_second_engine_on_same_db_is_refused(tmp_path: Path) -> None:
    from core.executor.state_store import EngineLocked

    db = tmp_path / "l.db"
    with EngineLock(db):
        eng = _engine(db, _slice(200))
        with pytest.raises(EngineLocked, match="another radar engine"):
            await eng.start()


async def test_kill_switch_persisted_blocks_entries(tmp_path: Path) -> None:
    db = tmp_path / "k.db"
    store = StateStore(db)
    KillSwitch(store).trip("test", reason="before start")
    store.close()
    eng = _engine(db, _slice(1500))
    rejections = eng.bus.subscribe((RiskRejection,), maxsize=5)
    await eng.run()
    rep = build_report(db, Account())[0]
    assert rep["n_cycles"] == 0 and rep["final_equity"] == 10_000.0
    assert len(rejections) == 1 and rejections.dropped_total == 0      # once per episode, never dropped
    store = StateStore(db)
    assert store.conn.execute("SELECT count(*) FROM trading_orders WHERE purpose='entry'").fetchone()[0] == 0
    store.close()


async def test_kill_command_cancels_entries_keeps_stop_and_flattens(tmp_path: Path) -> None:
    full = _slice(3000)
    open_at = []
    run_event_backtest(full, "envelope_dca", {}, Account(),
                       observer=lambda t, m: open_at.append(t) if m.levels_filled and m.levels_filled < 3 else None)
    candles = full.between(None, int(full.ts[open_at[0] + 1]))      # ends with a position open
    db = tmp_path / "f.db"

    def engine() -> Engine:
        src = _source(candles)
        src.replay = False                   # like a live feed: no end-of-data exit
        return Engine(db, [src], [RunnerSpec("envelope_dca", {}, candles.symbol, candles.timeframe)],
                      Account(), status_interval=0)

    await engine().run()
    eng2 = engine()                          # restart on the same database, position open
    api2 = EngineAPI(eng2)
    ks_events = api2.events((KillSwitchEvent,))
    await eng2.start()
    r2 = eng2.runners[0]
    pos = r2.position()
    assert pos["qty"] > 0 and 0 < pos["levels_filled"] < 3
    assert any(o["purpose"] == "entry" for o in r2.grid_state()["open_orders"])
    res = await api2.kill("tester", flatten=False)
    assert res["active"] and res["cancelled_entries"] == 3 - pos["levels_filled"]
    assert r2.position() == pos                                    # stop and position kept
    assert all(o["purpose"] != "entry" for o in r2.grid_state()["open_orders"])
    res = await api2.kill("tester", flatten=True)
    assert res["flattened"] == 1 and r2.position()["qty"] == 0
    assert len(ks_events) == 2
    await eng2.stop()
    store = StateStore(db)
    assert KillSwitch(store).active
    (reason,) = store.conn.execute("SELECT reason FROM trading_fills ORDER BY id DESC LIMIT 1").fetchone()
    assert reason == "kill"
    store.close()
    eng3 = engine()
    await eng3.start()
    assert eng3.kill_switch.active                                 # persisted across restarts
    await EngineAPI(eng3).resume("tester")
    await eng3.stop()
    store = StateStore(db)
    assert not KillSwitch(store).active
    store.close()


def test_live_needs_keys_and_a_live_eligible_strategy(tmp_path: Path) -> None:
    env_keys = ("BITGET_API_KEY", "BITGET_API_SECRET", "BITGET_API_PASSPHRASE")
    saved = {k: os.environ.pop(k, None) for k in env_keys}
    try:
        run = radar("--db", str(tmp_path / "x.db"), "run", "--no-ui", "--live")
        assert run.returncode == 2
        assert "needs the API keys" in run.stderr and "BITGET_API_KEY" in run.stderr
        os.environ.update({k: "dummy" for k in env_keys})
        run = radar("--db", str(tmp_path / "x.db"), "run", "--no-ui", "--live")
        assert run.returncode == 2
        assert "live_eligible: true" in run.stderr
        assert "dummy" not in run.stderr + run.stdout
        run = radar("--db", str(tmp_path / "x.db"), "run", "--no-ui", "--live", "--replay", "x.json.gz")
        assert run.returncode == 2 and "cannot be combined with --replay" in run.stderr
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    assert not (tmp_path / "x.db").exists()
