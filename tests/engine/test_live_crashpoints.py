"""Aimed crash-point test: the engine SIGKILLs itself at each named crash point of the order path
(`core.executor.crashpoints`), is restarted on the same database after every kill, and must keep
every invariant; at the end it runs to completion and equals an uninterrupted run.

LIVE (one parametrized case per crash point): a worker process (tests/support/crashpoint_worker.py)
runs the live engine, envelope_dca on BTC/USDT:USDT over real BTC 1h candles, with the real ccxt
bitget client against the Bitget stand-in served by this test process (`CrashStandIn`: each
candle's price path is walked once, every order-creating request that reached the exchange is
recorded). The worker gets `RADAR_CRASHPOINT=<point>:<k>`; the k of each kill is computed from an
uninterrupted reference run of the same scenario (its pass log, and for the order points its
write-ahead intents in order), so each kill lands where it is aimed: spread over the window,
and at both call sites where a point has two (`_place` and `_amend_renaming`). Where a restart
first REDOES the killed step (the re-sent order, the stop re-sized or the emergency close at the
restart's reconciliation, the take-profit close of the replayed candle), one kill hits that redo.
`during_reconcile` is passed once per start: each of its kills follows a "setup" kill at another
point, so the killed reconciliation had something to repair (the next one repairs both).

Scenarios (chosen so each point is reached several times in a short window):
* "grid": 4 levels 1 % / 0.7 % apart, 4 % stop, 120 candles: place/amend of entries every candle,
  fills, stops re-sized as levels fill, take-profits, stop-outs;
* "no_stop": the same strategy, 60 candles, the stand-in's place-tpsl-order endpoint failing
  (HTTP 500) throughout and one stop attempt: every entry fill finds no stop placeable and closes
  the position at market (`during_emergency_close`); the preset stops the entries carry protect
  the position meanwhile.

Invariants (after EVERY restart's reconciliation, the worker pausing before it trades, and at the
end; a failure names the invariant in the coverage matrix):
* kill aimed: the crash point log shows the kill at the named point and pass, and the store's
  in-flight write-ahead intent is the one aimed at (action and client id);
* reconciled: the runner is ready after the restart;
* no pending intent: none is left after the reconciliation;
* no duplicate send: no client id of ours reached the exchange's order handlers twice (placed
  orders, amended-to ids, stops), none was sent twice at all (place/modify calls), the exchange's
  orders and plans carry each id once;
* fills: every exchange fill of ours is in trading_fills and vice versa, qty to 1e-9: entries per
  client id (amended ids included); exits per (cycle, stop | market exit), a fill of a triggered
  pos_loss counting for its stop's cycle, one of a preset stop (loss_plan) for the cycle of the
  entry that carried it (the store books a stop-out under the cycle's stop id);
* store = exchange: `assert_consistent` (position qty, our resting entries = the store's open
  entries, no pending order, cash = balance to the cent when flat, every recorded position has
  its stop);
* stop: the exchange's protection log never shows a position its stops do not cover. The bound
  is 0 s, not a tolerance: every entry carries its preset stop from the moment it fills (and the
  whole-position stop covers any size), so the position is covered at the exchange whether the
  engine is alive or dead; a kill cannot age a position unprotected, nor can the market moving
  while the engine is dead (the "moving" runs).
  After each reconciliation an open position has exactly one whole-position stop (pos_loss), at
  the book's stop price, under a client id the store knows as a stop (not in "no_stop");
* same as uninterrupted: the final cycles (reason, levels, qty, avg entry, exit price, P&L), the
  book's cash, the exchange's balance and position equal the reference run's. No crash point
  legitimately changes timing here: the market does not move while the engine is dead and each
  redo happens at the same mark (a take-profit close redone after a `during_tp_close` kill closes
  at the same candle close as the uninterrupted close).

WINDOWS (`test_live_close_executed_not_recorded`): `during_tp_close` and `during_emergency_close` are
passed after the close's write-ahead record and BEFORE the close is sent, while the crash point
registry describes the take-profit point as "close order sent, ledger/cycle not yet recorded". The
window after the send is reached from outside, 3 kills each: the stand-in executes the k-th market
exit and holds its answer while the test kills the worker (take-profit), or the worker kills itself
inside the critical alert that follows an executed emergency close. Both show an engine bug (xfail
strict, `WINDOW_BUGS`).

MARKET MOVING WHILE DEAD (`test_live_market_moves_while_dead`): in the runs above the market waits
for the restart. Here, one run per scenario is killed at several points and after each kill the test
walks the next DEAD_WALK candles itself: fills and stop-outs happen while the engine is dead and the
reconciliation must find them (`filled_while_down`, `closed_while_down`). The result then differs
from the uninterrupted run (the engine could not re-quote while dead): every invariant above except
the equality is asserted after each reconciliation and at the end.

PAPER (`test_paper_crash_point`): the paper engine through the CLI (`radar run --replay`, as
tests/engine/test_crash_recovery.py) with the points the paper path passes; >= 3 kills each; after
each kill the committed database is at a candle boundary (no pending intent or order: the candle's
transaction died with the process); at the end the report and the trading tables equal the
uninterrupted run's row by row.

`test_zz_coverage_matrix` prints the matrix (crash point x venue x kills x where x result) and the
timings as the last lines of the output; it is also written to RADAR_CRASHPOINT_MATRIX when set.
"""

from __future__ import annotations

import asyncio
import collections
import gzip
import itertools
import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from core.backtest.loading import load_from_file
from core.executor.client_ids import parse_client_id
from core.executor.crashpoints import CRASH_POINTS, ENV_COUNT, ENV_LOG, ENV_TARGETS, read_log
from core.executor.state_store import StateStore
from tests.engine.test_crash_recovery import _cmd, _tables
from tests.engine.test_engine_replay import only_envelope_config
from tests.engine.test_live_engine import assert_consistent, sent_client_ids
from tests.support.bitget_private_stub import PLACE_TPSL, server_error
from tests.support.crashpoint_stand_in import CrashStandIn
from tests.support.live_harness import PREFIX, STUB_SYM, futures_candles
from tests.support.shared_data import shared_file

PROJECT = Path(__file__).resolve().parents[2]
BTC_1H = "binance-spot/BTC_USDT-1h.json.gz"

LIVE_POINTS = ("after_record_before_send", "after_send_before_record", "after_fill_before_stop",
               "during_stop_resize", "during_emergency_close", "during_tp_close", "during_reconcile")
PAPER_POINTS = ("after_record_before_send", "after_send_before_record", "after_fill_before_stop",
                "during_reconcile")
#: aimed kills per crash point (the acceptance asks >= 3)
KILLS = 3
#: live runs side by side (a worker process each; this process serves their stand-ins): on 2 cores
#: 2 (3 is no faster: the two cores are busy)
PARALLEL = min(4, max(2, os.cpu_count() or 2))
WORKER_TIMEOUT_S = 120
#: points whose step a restart does again first (pass 1 of the restarted process is the killed step's redo)
REDO = {"after_record_before_send", "during_stop_resize", "during_emergency_close", "during_tp_close"}
#: the order points: aimed at write-ahead intents (place / amend) of the reference run
ORDER_POINTS = {"after_record_before_send", "after_send_before_record"}
PAPER_CANDLES = 2000

#: crash points with a known engine bug: point -> reason (the case is xfail(strict=True))
KNOWN_BUGS: dict[str, str] = {}


# ---------------------------------------------------------------------------- scenarios
@dataclass(frozen=True)
class Scenario:
    name: str
    start: int
    n: int
    params: dict
    stop_retries: int
    tpsl_down: bool = False          # place-tpsl-order answers HTTP 500 throughout

    def stand_in(self, mark: float) -> CrashStandIn:
        s = CrashStandIn(mark=mark)
        if self.tpsl_down:
            s.add_fault(PLACE_TPSL, respond=server_error(), times=None)
        return s


PARAMS = {"envelope_start": 0.01, "envelope_step": 0.007, "num_levels": 4, "sl_percent": 0.04}
GRID = Scenario("grid", 0, 120, PARAMS, stop_retries=3)
NO_STOP = Scenario("no_stop", 0, 60, PARAMS, stop_retries=1, tpsl_down=True)
SCENARIO_OF = {p: GRID for p in LIVE_POINTS} | {"during_emergency_close": NO_STOP}


# ---------------------------------------------------------------------------- results
@dataclass
class Kill:
    """One SIGKILL: the target, where it landed (phase, in-flight intent), aimed or setup."""

    target: str
    aimed: bool
    phase: str = ""                   # "reconcile" (before the worker said reconciled) | "trading"
    site: str = ""                    # the in-flight write-ahead intent ("place", "amend", ...) or "poll"
    pass_n: int = 0


@dataclass
class PointResult:
    point: str
    venue: str
    kills: list[Kill] = field(default_factory=list)
    checks: int = 0                   # invariant checkpoints passed (after reconciliations, at the end)
    failure: str | None = None        # "<invariant>: <detail>"
    ref_passes: int = 0
    seconds: float = 0.0
    actions: set = field(default_factory=set)     # reconciliation actions seen after the kills
    dead_candles: int = 0             # candles the market walked while the engine was dead
    result: dict | None = None

    @property
    def aimed(self) -> list[Kill]:
        return [k for k in self.kills if k.aimed]


class Broken(AssertionError):
    """An invariant failed: `invariant` names it for the matrix."""

    def __init__(self, invariant: str, detail: str) -> None:
        super().__init__(f"{invariant}: {detail}")
        self.invariant = invariant


def check(invariant: str, ok: bool, detail: str = "") -> None:
    if not ok:
        raise Broken(invariant, detail)


def invariant(name: str, fn, *args) -> None:
    """Run an assertion helper; its AssertionError becomes a Broken naming `name`."""
    try:
        fn(*args)
    except Broken:
        raise
    except AssertionError as e:
        raise Broken(name, str(e) or repr(e)) from e


# ---------------------------------------------------------------------------- worker process
def _clean_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in (ENV_TARGETS, ENV_LOG, ENV_COUNT)}
    env["PYTHONPATH"] = str(PROJECT)
    env.update(extra)
    return env


@dataclass
class WorkerRun:
    pid: int
    returncode: int
    reconciled: dict | None
    result: dict | None
    stderr: Path
    events: list[dict] = field(default_factory=list)


async def run_worker(scen: Scenario, url: str, db: Path, log: Path, target: str | None, on_reconciled=None,
                     tag: str = "", kill_when: asyncio.Event | None = None, extra: dict | None = None) -> WorkerRun:
    """One worker process: until it is killed or done. `on_reconciled(event)` (a coroutine
    function) runs while the worker waits after its reconciliation (nothing trades meanwhile); its
    exception is raised after the worker was killed. `kill_when`: SIGKILL the worker when set."""
    spec = {"url": url, "db": str(db), "data": str(shared_file(BTC_1H)), "start": scen.start, "n": scen.n,
            "params": scen.params,
            "stop_retries": scen.stop_retries, "pause": on_reconciled is not None, **(extra or {})}
    env = _clean_env(**{ENV_LOG: str(log), ENV_COUNT: "1"}, **({ENV_TARGETS: target} if target else {}))
    err = db.with_name(f"{db.stem}.{tag or 'w'}.stderr")
    with _append(err) as ferr:
        p = await asyncio.create_subprocess_exec(sys.executable, "-m", "tests.support.crashpoint_worker",
                                                 json.dumps(spec), cwd=PROJECT, env=env, stdin=asyncio.subprocess.PIPE,
                                                 stdout=asyncio.subprocess.PIPE, stderr=ferr)
    reconciled = result = None
    events: list[dict] = []

    async def killer() -> None:
        await kill_when.wait()
        if p.returncode is None:
            p.send_signal(signal.SIGKILL)
    kt = asyncio.create_task(killer()) if kill_when is not None else None
    try:
        async with asyncio.timeout(WORKER_TIMEOUT_S):
            while True:
                line = await p.stdout.readline()
                if not line:
                    break
                ev = json.loads(line)
                events.append(ev)
                if ev["event"] == "reconciled":
                    reconciled = ev
                    if on_reconciled is not None:
                        await on_reconciled(ev)
                        p.stdin.write(b"go\n")
                        await p.stdin.drain()
                elif ev["event"] == "result":
                    result = ev
            rc = await p.wait()
    finally:
        if kt is not None:
            kt.cancel()
        if p.returncode is None:
            p.kill()
            await p.wait()
    return WorkerRun(p.pid, rc, reconciled, result, err, events)


def _append(path: Path):
    """The worker's stderr file (engine warnings: read back when an invariant fails)."""
    return open(path, "ab")                 # closed by the caller's `with`


def _tail(path: Path, n: int = 2500) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return ""


# ---------------------------------------------------------------------------- invariants
def _no_epoch(cid: str) -> str:
    """A client id without its database's epoch (the reference run has another database)."""
    parsed = parse_client_id(cid, PREFIX)
    if parsed is None:
        return cid
    return PREFIX + "-" + cid.partition("-")[2]


def check_no_duplicate_send(si: CrashStandIn) -> None:
    dups = si.duplicate_sends(PREFIX)
    check("no duplicate send", not dups, f"client ids that reached the exchange's order handlers twice: {dups[:5]}")
    sent = sent_client_ids(si)
    twice = sorted(c for c, n in collections.Counter(sent).items() if n > 1)
    check("no duplicate send", not twice, f"client ids sent twice (place-order clientOid / modify-order "
                                          f"newClientOid): {twice[:5]}")
    ours = [o.client_oid for o in si.orders.values() if parse_client_id(o.client_oid, PREFIX)]
    ours += [p.client_oid for p in si.plans.values() if parse_client_id(p.client_oid, PREFIX)]
    twice = sorted(c for c, n in collections.Counter(ours).items() if n > 1)
    check("no duplicate send", not twice, f"client ids held twice by the exchange: {twice[:5]}")


def exchange_fills(si: CrashStandIn) -> tuple[dict, dict]:
    """The stand-in's fills of ours: ({entry client id: qty}, {(cycle, "stop" | "exit"): qty})."""
    plans = {p.order_id: p for p in si.plans.values()}
    entries: dict[str, float] = collections.defaultdict(float)
    exits: dict[tuple[int, str], float] = collections.defaultdict(float)
    for t in si.trades:
        o = si.orders[t["orderId"]]
        qty = float(t["baseVolume"])
        parsed = parse_client_id(o.client_oid, PREFIX)
        if parsed is not None:
            purpose, _level, cycle, _epoch = parsed
            if purpose == "entry":
                entries[o.client_oid] += qty
            else:
                exits[(cycle, purpose)] += qty
            continue
        plan = plans.get(o.client_oid[:-1]) if o.client_oid.endswith("x") else None
        check("fills", plan is not None, f"a fill of an order that is neither ours nor a stop's: {o}")
        owner = plan.client_oid
        if parse_client_id(owner, PREFIX) is None:                 # a preset stop: its entry's cycle
            check("fills", plan.source_order in si.orders, f"a triggered plan of no entry of ours: {plan}")
            owner = si.orders[plan.source_order].client_oid
        parsed = parse_client_id(owner, PREFIX)
        check("fills", parsed is not None, f"a triggered stop that is not ours: {plan}")
        exits[(parsed[2], "stop")] += qty
    return dict(entries), dict(exits)


def store_fills(db: Path) -> tuple[dict, dict]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT client_id, kind, qty FROM trading_fills ORDER BY id").fetchall()
    finally:
        conn.close()
    entries: dict[str, float] = collections.defaultdict(float)
    exits: dict[tuple[int, str], float] = collections.defaultdict(float)
    for cid, kind, qty in rows:
        parsed = parse_client_id(cid, PREFIX)
        check("fills", parsed is not None, f"a stored fill under a client id that is not ours: {cid}")
        if kind == "entry":
            entries[cid] += qty
        else:
            exits[(parsed[2], "stop" if parsed[0] == "stop" else "exit")] += qty
    return dict(entries), dict(exits)


def check_fills(si: CrashStandIn, db: Path) -> None:
    xe, xx = exchange_fills(si)
    se, sx = store_fills(db)
    for what, x, s in (("entry", xe, se), ("exit", xx, sx)):
        lost = sorted(set(x) - set(s), key=str)
        invented = sorted(set(s) - set(x), key=str)
        check("fills", not lost, f"{what} fills at the exchange missing from trading_fills: "
                                 f"{[(k, x[k]) for k in lost[:5]]}")
        check("fills", not invented, f"{what} fills in trading_fills the exchange never made: "
                                     f"{[(k, s[k]) for k in invented[:5]]}")
        off = [(k, x[k], s[k]) for k in x if abs(x[k] - s[k]) > 1e-9]
        check("fills", not off, f"{what} fill qty differs (exchange, store): {off[:5]}")


def check_stop(si: CrashStandIn, db: Path, scen: Scenario, at_reconcile: bool) -> None:
    check("stop", si.unprotected == [], f"/test/mark found a position without its stop at {si.unprotected[:5]}")
    worst = si.longest_unprotected_s(STUB_SYM)
    gaps = [(round(b - a, 3), ev) for a, b, _ in si.unprotected_intervals(STUB_SYM)
            for ev in [next((s.event for s in si.protection_log if s.t == a), "?")]]
    check("stop", worst == 0.0, f"the exchange held an uncovered position for {worst:.3f} s (bound 0 s): {gaps[:5]}")
    pos = si.position(STUB_SYM)
    if not at_reconcile or pos.qty == 0 or scen.tpsl_down:
        return
    stops = si.live_plans(STUB_SYM, "pos_loss")
    check("stop", len(stops) == 1, f"position {pos.qty} after the reconciliation has {len(stops)} pos_loss stops")
    store = StateStore(db)
    try:
        rid = store.runners()[0]["id"]
        book = store.load_state(rid)["grid"]["book"]
        row = store.order(stops[0].client_oid)
    finally:
        store.close()
    check("stop", row is not None and row["purpose"] == "stop",
          f"the exchange's stop {stops[0].client_oid} is not a stop of the store ({row})")
    check("stop", abs(stops[0].trigger_price - book["stop"]) <= 0.1 + 1e-9 * book["stop"],
          f"the exchange's stop is at {stops[0].trigger_price}, the book's at {book['stop']}")


def check_no_pending(db: Path) -> None:
    store = StateStore(db)
    try:
        rid = store.runners()[0]["id"]
        pend = store.pending_intents(rid)
    finally:
        store.close()
    check("no pending intent", not pend, f"left after the reconciliation: {[(i['action'], i['client_id']) for i in pend]}")


def check_all(si: CrashStandIn, db: Path, scen: Scenario, at_reconcile: bool) -> None:
    check_no_pending(db)
    check_no_duplicate_send(si)
    check_fills(si, db)
    invariant("store = exchange", assert_consistent, si, db)
    check_stop(si, db, scen, at_reconcile)


def in_flight(db: Path) -> list[tuple[str, str]]:
    """(action, client id) of the write-ahead intents a kill left pending."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT action, client_id FROM trading_intents WHERE status='pending' ORDER BY id").fetchall()
    finally:
        conn.close()


# ---------------------------------------------------------------------------- reference runs
@dataclass
class Reference:
    result: dict
    balance: float
    position: float
    passes: dict
    intents: list[tuple[str, str]]       # (action, client id without epoch) of place/amend, in order
    seconds: float


async def reference_run(scen: Scenario, tmp: Path, mark: float) -> Reference:
    t0 = time.monotonic()
    db, log = tmp / f"ref-{scen.name}.db", tmp / f"ref-{scen.name}.log"
    async with scen.stand_in(mark) as si:
        run = await run_worker(scen, si.base_url, db, log, None, tag="ref")
        assert run.returncode == 0 and run.result is not None, (run.returncode, _tail(run.stderr))
        assert run.result["finished"], run.result
        await asyncio.to_thread(check_all, si, db, scen, False)
        balance, position = si.balance, si.position(STUB_SYM).qty
    conn = sqlite3.connect(db)
    try:
        intents = [(a, _no_epoch(c)) for a, c in conn.execute(
            "SELECT action, client_id FROM trading_intents WHERE action IN ('place', 'amend') ORDER BY id")]
    finally:
        conn.close()
    return Reference(run.result, balance, position, read_log(log).passes, intents, time.monotonic() - t0)


# ---------------------------------------------------------------------------- kill plans
@dataclass
class Step:
    """One worker run to be killed: at crash point `target` ("name:k"), or (`how`) from outside at
    a window no crash point marks: "exit_answer" (the k-th market exit of the process executed,
    its answer held back: killed in flight) or "alert" (inside the k-th emergency-close alert:
    the close executed and settled, the exit not recorded)."""

    target: str
    aimed: bool
    expect: tuple[str, str] | None = None     # the in-flight intent aimed at (action, client id w/o epoch)
    how: str = "crashpoint"


def _spread(total: int, n: int) -> list[int]:
    """n pass numbers (1-based) spread evenly over `total` passes."""
    return [max(1, round(total * (i + 1) / (n + 1))) for i in range(n)]


def plan_kills(point: str, ref: Reference) -> list[Step]:
    """The kill targets of `point` (module docstring): each k counted in the restarted process."""
    if point == "during_reconcile":
        f = ref.passes.get("after_fill_before_stop", 0)
        s = ref.passes.get("after_send_before_record", 0)
        t = ref.passes.get("during_tp_close", 0)
        return [Step(f"after_send_before_record:{max(1, s // 4)}", False), Step("during_reconcile:1", True),
                Step(f"after_fill_before_stop:{max(1, f // 4)}", False), Step("during_reconcile:1", True),
                Step(f"during_tp_close:{max(2, t // 4)}", False), Step("during_reconcile:1", True)]
    redo = point in REDO
    sited = point in ORDER_POINTS and len(ref.intents) == ref.passes.get(point)   # pass i = intent i
    if sited:
        seq = ref.intents
        total = len(seq)

        def first(action: str, frac: float) -> int:
            lo = int(total * frac)
            return next((i + 1 for i in range(lo, total) if seq[i][0] == action), lo + 1)
        js = [first("place", 0.25), first("amend", 0.5), first("place", 0.75)]
    else:
        total = ref.passes.get(point, 0)
        js = _spread(total, KILLS)
    if redo:                       # kill 2: the restart's redo of kill 1's step
        js = [js[0], js[0], *js[1:KILLS - 1]]
    steps, done = [], 0            # done: reference passes behind the restarted process
    for j in js[:KILLS]:
        k = j - done
        assert k >= 1, (point, js)
        steps.append(Step(f"{point}:{k}", True, ref.intents[j - 1] if sited else None))
        done = j - 1 if redo else j
    return steps


# ---------------------------------------------------------------------------- one live crash point
def walk_while_dead(si: CrashStandIn, candles, count: int) -> int:
    """The market goes on while the engine is dead: walk the next `count` candles of the window (as
    the worker would: protection check, then the path O-L-H-C / O-H-L-C). Returns how many."""
    ts, o, h, lo, c = (a.tolist() for a in (candles.ts, candles.open, candles.high, candles.low, candles.close))
    walked = 0
    for i, t in enumerate(ts):
        close = t + 3_600_000
        if close <= si.walked_until:
            continue
        if walked == count:
            break
        if not si.protected(STUB_SYM):
            si.unprotected.append(close)
        si.public.now_ms = close
        for p in ((o[i], lo[i], h[i], c[i]) if c[i] >= o[i] else (o[i], h[i], lo[i], c[i])):
            si.set_mark(STUB_SYM, p)
        si.walked_until = close
        walked += 1
    return walked


async def live_point(point: str, scen: Scenario, ref: Reference, tmp: Path, mark: float,
                     steps: list[Step] | None = None, dead_walk: int = 0) -> PointResult:
    """Kill the live engine at `steps` (default: `plan_kills`), restart after each, run to the end;
    the invariants after every reconciliation and at the end. With `dead_walk` the market walks
    that many candles while the engine is dead (the result then differs from the reference's)."""
    res = PointResult(point, "live", ref_passes=ref.passes.get(point, 0))
    t0 = time.monotonic()
    db, log = tmp / f"{point}.db", tmp / f"{point}.log"
    candles = futures_candles(shared_file(BTC_1H), scen.n, scen.start) if dead_walk else None

    async def after_reconcile(ev: dict) -> None:
        check("reconciled", ev["state"] == "ready", f"runner {ev['state']} after the reconciliation: {ev['actions']}")
        res.actions.update(a[0] for a in ev["actions"])
        await asyncio.to_thread(check_all, si, db, scen, True)    # the other stand-ins keep serving
        res.checks += 1

    async with scen.stand_in(mark) as si:
        try:
            for i, step in enumerate(steps if steps is not None else plan_kills(point, ref)):
                name, _, k = step.target.partition(":")
                if step.how == "exit_answer":
                    si.hold_exit_at = si.exits_seen + int(k)
                    si.exit_held.clear()
                    run = await run_worker(scen, si.base_url, db, log, None, after_reconcile, tag=str(i),
                                           kill_when=si.exit_held)
                    si.release()
                    ok = run.returncode == -signal.SIGKILL and si.exit_held.is_set()
                elif step.how == "alert":
                    run = await run_worker(scen, si.base_url, db, log, None, after_reconcile, tag=str(i),
                                           extra={"kill_on_alert": ["closed at market", int(k)]})
                    ok = run.returncode == -signal.SIGKILL and any(e["event"] == "killing" for e in run.events)
                else:
                    run = await run_worker(scen, si.base_url, db, log, step.target, after_reconcile, tag=str(i))
                    kills = [x[:2] for x in read_log(log).kills if x[2] == run.pid]
                    ok = run.returncode == -signal.SIGKILL and kills == [(name, int(k))]
                if dead_walk and run.returncode == 0:
                    break                       # the window ended before this kill: the final run follows
                check("kill aimed", ok, f"{step.target}: worker exit {run.returncode} (the run ended before the "
                                        f"pass?) {_tail(run.stderr, 800)}")
                pend = in_flight(db)
                res.kills.append(Kill(step.target, step.aimed, "trading" if run.reconciled else "reconcile",
                                      ",".join(a for a, _ in pend) or "poll", int(k)))
                if step.expect is not None:
                    got = [(a, _no_epoch(c)) for a, c in pend]
                    check("kill aimed", got == [step.expect], f"{step.target}: in flight {got}, aimed at {step.expect}")
                if dead_walk:
                    res.dead_candles += walk_while_dead(si, candles, dead_walk)
            run = await run_worker(scen, si.base_url, db, log, None, after_reconcile, tag="final")
            check("completed", run.returncode == 0 and run.result is not None and run.result["finished"],
                  f"final run: exit {run.returncode}, {run.result}{_tail(run.stderr)}")
            await asyncio.to_thread(check_all, si, db, scen, False)
            res.checks += 1
            res.result = run.result
            if not dead_walk:
                same_as_reference(run.result, si, ref)
        except Broken as e:
            res.failure = str(e)
        except AssertionError as e:
            res.failure = f"assertion: {e}"
    res.seconds = time.monotonic() - t0
    return res


def same_as_reference(got: dict, si: CrashStandIn, ref: Reference) -> None:
    want = ref.result
    check("same as uninterrupted", len(got["cycles"]) == len(want["cycles"]),
          f"{len(got['cycles'])} cycles, uninterrupted {len(want['cycles'])}")
    for i, (a, b) in enumerate(zip(got["cycles"], want["cycles"])):
        same = a[0] == b[0] and a[1] == b[1] and all(math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9)
                                                     for x, y in zip(a[2:], b[2:]))
        check("same as uninterrupted", same, f"cycle {i}: {a}, uninterrupted {b}")
    check("same as uninterrupted", abs(got["cash"] - want["cash"]) < 0.01, f"cash {got['cash']}, {want['cash']}")
    check("same as uninterrupted", abs(si.balance - ref.balance) < 0.01, f"balance {si.balance}, {ref.balance}")
    check("same as uninterrupted", abs(si.position(STUB_SYM).qty - ref.position) < 1e-9,
          f"position {si.position(STUB_SYM).qty}, {ref.position}")


#: the market walks this many candles while the engine is dead, in the "moving" runs
DEAD_WALK = 3
MOVING = {"grid": GRID, "no_stop": NO_STOP}


def moving_plan(scen: Scenario, ref: Reference) -> list[Step]:
    """Kills at several points of one run whose market goes on while the engine is dead: what
    filled or triggered meanwhile must be found by the reconciliation (fills, stop-outs)."""
    p = ref.passes

    def k(point: str, lo: int = 1) -> str:
        return f"{point}:{max(lo, p.get(point, 0) // 8)}"
    if scen.tpsl_down:
        return [Step(k("during_emergency_close", 2), True), Step(k("after_fill_before_stop"), True),
                Step(k("during_emergency_close", 2), True), Step("during_reconcile:1", True),
                Step(k("during_emergency_close", 2), True)]
    return [Step(k("after_fill_before_stop"), True), Step(k("after_send_before_record"), True),
            Step(k("during_stop_resize", 2), True), Step(k("during_tp_close", 2), True),
            Step(k("after_record_before_send", 2), True), Step("during_reconcile:1", True),
            Step(k("after_fill_before_stop"), True), Step(k("during_tp_close", 2), True)]


#: kills at windows no crash point marks (the crash point's description names them): the market
#: close EXECUTED at the exchange, the engine killed before it recorded the exit
WINDOWS = {
    # the take-profit close executed, its answer lost with the process (`flatten` awaiting it)
    "tp_close_executed": (GRID, "exit_answer", "during_tp_close"),
    # the emergency close executed and its write-ahead record settled, killed inside the critical
    # alert that `Protection._emergency_close` awaits before the executor records the exit
    "emergency_close_executed": (NO_STOP, "alert", "during_emergency_close"),
}


def window_plan(name: str, ref: Reference) -> list[Step]:
    _scen, how, point = WINDOWS[name]
    js = _spread(ref.passes.get(point, 0), KILLS)
    return [Step(f"{name}:{k}", True, how=how) for k in [js[0]] + [b - a for a, b in itertools.pairwise(js)]]


async def all_live(points: list[str], moving: list[str], windows: list[str], tmp: Path
                   ) -> tuple[dict[str, PointResult], dict[str, PointResult], dict[str, Reference]]:
    scens = ({SCENARIO_OF[p].name: SCENARIO_OF[p] for p in points} | {m: MOVING[m] for m in moving}
             | {WINDOWS[w][0].name: WINDOWS[w][0] for w in windows})
    marks = {n: float(futures_candles(shared_file(BTC_1H), 1, s.start).open[0]) for n, s in scens.items()}
    refs = dict(zip(scens, await asyncio.gather(*(reference_run(s, tmp, marks[n]) for n, s in scens.items()))))
    sem = asyncio.Semaphore(PARALLEL)

    async def one(p: str) -> PointResult:
        s = SCENARIO_OF[p]
        async with sem:
            return await live_point(p, s, refs[s.name], tmp, marks[s.name])

    async def move(m: str) -> PointResult:
        s = MOVING[m]
        async with sem:
            r = await live_point(f"moving-{m}", s, refs[m], tmp, marks[m], moving_plan(s, refs[m]), DEAD_WALK)
        r.point = m
        return r

    async def window(w: str) -> PointResult:
        s = WINDOWS[w][0]
        async with sem:
            r = await live_point(w, s, refs[s.name], tmp, marks[s.name], window_plan(w, refs[s.name]))
        r.ref_passes = refs[s.name].passes.get(WINDOWS[w][2], 0)
        return r
    # the longest first: the pool of PARALLEL workers ends together
    done = await asyncio.gather(*(move(m) for m in moving), *(one(p) for p in points), *(window(w) for w in windows))
    by = {r.point: r for r in done[len(moving):]}
    return by, {r.point: r for r in done[:len(moving)]}, refs


# ---------------------------------------------------------------------------- paper
def _paper_slice(tmp: Path) -> Path:
    c = load_from_file(shared_file(BTC_1H))
    n = PAPER_CANDLES
    rows = [[int(t), o, h, lo, cl, v] for t, o, h, lo, cl, v in zip(
        c.ts[:n].tolist(), c.open[:n].tolist(), c.high[:n].tolist(), c.low[:n].tolist(), c.close[:n].tolist(),
        c.volume[:n].tolist())]
    path = tmp / "data" / "BTC_USDT-1h.json.gz"
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt") as f:
        json.dump(rows, f)
    return path


def _paper(cfg: Path, db: Path, data: Path, log: Path, target: str | None, report: Path | None = None):
    env = _clean_env(**{ENV_LOG: str(log), ENV_COUNT: "1"}, **({ENV_TARGETS: target} if target else {}))
    p = subprocess.Popen(_cmd(cfg, db, data, report), cwd=PROJECT, env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True)
    try:
        _, err = p.communicate(timeout=WORKER_TIMEOUT_S)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    return p.pid, p.returncode, err


def paper_plan(point: str, passes: dict) -> list[Step]:
    if point == "during_reconcile":
        return [Step(f"after_send_before_record:{max(2, passes.get('after_send_before_record', 0) // 4)}", False),
                Step("during_reconcile:1", True),
                Step(f"after_fill_before_stop:{max(2, passes.get('after_fill_before_stop', 0) // 4)}", False),
                Step("during_reconcile:1", True), Step("during_reconcile:1", True)]
    # a kill rolls the whole candle back: the restart passes the candle's points again. Kill 2 (k=1)
    # hits that replay; the others are spread (k >= 2 moves past the replayed pass).
    q = max(2, passes.get(point, 0) // (KILLS + 1))
    return [Step(f"{point}:{q}", True), Step(f"{point}:1", True), Step(f"{point}:{q}", True)]


def paper_point(point: str, tmp: Path, ref: dict) -> PointResult:
    res = PointResult(point, "paper", ref_passes=ref["passes"].get(point, 0))
    t0 = time.monotonic()
    db, log, report = tmp / f"paper-{point}" / "r.db", tmp / f"paper-{point}.log", tmp / f"paper-{point}.json"
    db.parent.mkdir(parents=True, exist_ok=True)
    try:
        for step in paper_plan(point, ref["passes"]):
            pid, rc, err = _paper(ref["cfg"], db, ref["data"], log, step.target)
            name, _, k = step.target.partition(":")
            kills = [x for x in read_log(log).kills if x[2] == pid]
            check("kill aimed", rc == -signal.SIGKILL and [x[:2] for x in kills] == [(name, int(k))],
                  f"{step.target}: exit {rc}, kill lines {kills}; {err[-800:]}")
            pend = in_flight(db)
            conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
            try:
                pending_orders = conn.execute("SELECT client_id FROM trading_orders WHERE status='pending'").fetchall()
            finally:
                conn.close()
            check("candle boundary", not pend and not pending_orders,
                  f"after a kill at {step.target}: pending intents {pend}, pending orders {pending_orders}")
            res.checks += 1
            res.kills.append(Kill(step.target, step.aimed, "reconcile" if name == "during_reconcile" else "candle",
                                  "rolled back", int(k)))
        _pid, rc, err = _paper(ref["cfg"], db, ref["data"], log, None, report)
        check("completed", rc == 0, f"final run exit {rc}: {err[-2000:]}")
        check("same as uninterrupted", json.loads(report.read_text()) == ref["report"], "the reports differ")
        got = _tables(db)
        for name, rows in ref["tables"].items():
            check("same as uninterrupted", got[name] == rows, f"table {name} differs from the uninterrupted run")
        check("no duplicate send", all(n == 1 and st == "done" for _c, n, st in got["place_intents"]),
              f"place intents: {[r for r in got['place_intents'] if r[1] != 1 or r[2] != 'done'][:5]}")
        res.checks += 1
    except Broken as e:
        res.failure = str(e)
    res.seconds = time.monotonic() - t0
    return res


# ---------------------------------------------------------------------------- fixtures
def _selected(request, test_name: str, param: str = "point") -> list[str]:
    """The parameters of `test_name` that this session runs (all of the module's other cases
    share the fixtures: only what is selected is run)."""
    pts = []
    for item in request.session.items:
        if item.module is request.module and getattr(item, "originalname", "") == test_name:
            cs = getattr(item, "callspec", None)
            if cs is not None:
                pts.append(cs.params[param])
    return pts


@pytest.fixture(scope="module")
def timings() -> dict:
    return {}


@pytest.fixture(scope="module")
def live_runs(request, tmp_path_factory, timings):
    points = _selected(request, "test_live_crash_point")
    moving = _selected(request, "test_live_market_moves_while_dead", "scenario")
    windows = _selected(request, "test_live_close_executed_not_recorded", "window")
    if not points and not moving and not windows:
        points, moving, windows = list(LIVE_POINTS), list(MOVING), list(WINDOWS)
    tmp = tmp_path_factory.mktemp("live_crashpoints")
    t0 = time.monotonic()
    results, moved, refs = asyncio.run(all_live(points, moving, windows, tmp))
    timings["live"] = time.monotonic() - t0
    timings.update({f"reference {n}": r.seconds for n, r in refs.items()})
    return results, moved


@pytest.fixture(scope="module")
def live_results(live_runs):
    return live_runs[0]


@pytest.fixture(scope="module")
def moving_results(live_runs):
    return live_runs[1]


@pytest.fixture(scope="module")
def paper_results(request, tmp_path_factory, timings):
    points = _selected(request, "test_paper_crash_point") or list(PAPER_POINTS)
    tmp = tmp_path_factory.mktemp("paper_crashpoints")
    t0 = time.monotonic()
    data = _paper_slice(tmp)
    cfg = only_envelope_config(tmp)
    ref_db, ref_report, ref_log = tmp / "ref" / "r.db", tmp / "ref.json", tmp / "ref.log"
    ref_db.parent.mkdir()
    _pid, rc, err = _paper(cfg, ref_db, data, ref_log, None, ref_report)
    assert rc == 0, err[-3000:]
    ref = {"cfg": cfg, "data": data, "report": json.loads(ref_report.read_text()), "tables": _tables(ref_db),
           "passes": read_log(ref_log).passes}
    timings["reference paper"] = time.monotonic() - t0
    out = {p: paper_point(p, tmp, ref) for p in points}
    timings["paper"] = time.monotonic() - t0
    return out


def _param(point: str):
    bug = KNOWN_BUGS.get(point)
    return pytest.param(point, marks=pytest.mark.xfail(strict=True, reason=bug)) if bug else point


# ---------------------------------------------------------------------------- tests
def test_every_crash_point_is_covered() -> None:
    assert set(LIVE_POINTS) == set(CRASH_POINTS), "a crash point without a live case (or a stale one)"
    assert set(PAPER_POINTS) <= set(CRASH_POINTS)


@pytest.mark.parametrize("point", [_param(p) for p in LIVE_POINTS])
def test_live_crash_point(point: str, live_results) -> None:
    r = live_results[point]
    assert r.failure is None, f"{point} (live): {r.failure}"
    assert len(r.aimed) >= 3, f"{point}: only {len(r.aimed)} aimed kills"
    assert all(k.target.startswith(point + ":") for k in r.aimed)


#: windows with a known engine bug: window -> reason (xfail strict; remove the entry with the fix)
WINDOW_BUGS: dict[str, str] = {}


@pytest.mark.parametrize("window", [pytest.param(w, marks=pytest.mark.xfail(strict=True, reason=WINDOW_BUGS[w]))
                                    if w in WINDOW_BUGS else w for w in WINDOWS])
def test_live_close_executed_not_recorded(window: str, live_results) -> None:
    """Killed after a market close EXECUTED at the exchange and before the engine recorded the
    exit (the window `during_tp_close` / `during_emergency_close` describe; the crash points sit
    before the send): the restart must book the exit as the uninterrupted run does (same order,
    same reason), all invariants held."""
    r = live_results[window]
    assert r.failure is None, f"{window} (live): {r.failure}"
    assert len(r.aimed) >= 3, f"{window}: only {len(r.aimed)} kills"


@pytest.mark.parametrize("scenario", list(MOVING))
def test_live_market_moves_while_dead(scenario: str, moving_results) -> None:
    """Kills at several points while the market goes on (DEAD_WALK candles after each kill): the
    result differs from the uninterrupted run's (the engine could not re-quote while dead), so
    what must hold is every invariant after every reconciliation and at the end (fills found,
    stop-outs recorded at the exchange's fills, store = exchange, cash = balance when flat, never
    a position without its stop), and the reconciliations did find what happened while dead."""
    r = moving_results[scenario]
    assert r.failure is None, f"market moving while dead ({scenario}): {r.failure}"
    assert len(r.aimed) >= 4 and r.dead_candles >= 4 * DEAD_WALK, (r.kills, r.dead_candles)
    assert r.actions & {"filled_while_down", "closed_while_down"}, f"nothing happened while dead: {r.actions}"


@pytest.mark.parametrize("point", PAPER_POINTS)
def test_paper_crash_point(point: str, paper_results) -> None:
    r = paper_results[point]
    assert r.failure is None, f"{point} (paper): {r.failure}"
    assert len(r.aimed) >= 3, f"{point}: only {len(r.aimed)} aimed kills"


def _verdict(r: PointResult) -> str:
    if r.failure is None:
        return "ok"
    known = r.point in WINDOW_BUGS or (r.venue == "live" and r.point in KNOWN_BUGS)
    return ("FAILED (engine bug, xfail) " if known else "FAILED ") + r.failure[:90]


def matrix(results: list[PointResult], moved: list[PointResult], timings: dict) -> str:
    """Fixed-width: one row per crash point and venue (aimed kills, setup kills at other points
    before a during_reconcile kill, the point's passes in the uninterrupted run, where the kills
    landed, invariant checkpoints passed, result); then the runs whose market moved while dead."""
    head = (f"{'crash point':<26} {'venue':<6} {'kills':>5} {'setup':>5} {'passes':>6} {'checks':>6}  "
            f"{'where (phase: in flight)':<62} result")
    lines = [head, "-" * len(head)]

    def row(label: str, r: PointResult, where: str) -> str:
        return (f"{label:<26} {r.venue:<6} {len(r.aimed):>5} {len(r.kills) - len(r.aimed):>5} {r.ref_passes or '-':>6} "
                f"{r.checks:>6}  {where:<62} {_verdict(r)}")
    for r in results:
        where = collections.Counter(f"{k.phase}: {k.site}" for k in r.aimed)
        lines.append(row(r.point, r, ", ".join(f"{s} x{n}" for s, n in where.items())))
    if moved:
        lines += ["", f"market moving while dead ({DEAD_WALK} candles after each kill; invariants, not equality):"]
        for r in moved:
            where = collections.Counter(k.target.partition(":")[0] for k in r.aimed)
            lines.append(row(f"mixed ({r.point})", r, ", ".join(f"{s} x{n}" for s, n in where.items())))
            found = sorted(r.actions & {"filled_while_down", "closed_while_down", "qty_adjusted", "adopted",
                                        "never_sent", "stop_replaced", "stop_checked"})
            lines.append(f"{'':<26} {'':<6} {r.dead_candles:>5} candles walked while dead; reconciled: {', '.join(found)}")
    lines.append("")
    lines.append("timings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))
    lines.append("per run (s): " + ", ".join(f"{r.venue} {r.point} {r.seconds:.1f}" for r in [*results, *moved]))
    return "\n".join(lines)


def test_zz_coverage_matrix(live_results, moving_results, paper_results, timings, capsys) -> None:
    """The coverage matrix, printed as the last lines of the test output (and to RADAR_CRASHPOINT_MATRIX)."""
    rows = [live_results[p] for p in LIVE_POINTS if p in live_results]
    rows += [live_results[w] for w in WINDOWS if w in live_results]
    rows += [paper_results[p] for p in PAPER_POINTS if p in paper_results]
    text = matrix(rows, [moving_results[m] for m in MOVING if m in moving_results], timings)
    if os.environ.get("RADAR_CRASHPOINT_MATRIX"):
        Path(os.environ["RADAR_CRASHPOINT_MATRIX"]).write_text(text + "\n")
    with capsys.disabled():
        print("\n\ncrash-point coverage matrix\n" + text)
    assert rows
