"""The trade-action log for post-mortems: `trades.jsonl`, one JSON object per line.

    tlog = TradeLog(engine, Path("logs/trades.jsonl"), redact=SecretRedactor(secrets).redact)
    tlog.start()                  # before engine.start(): subscribed to the bus from here on
    ...                           # the engine runs
    await tlog.close()            # after the engine stopped: the queued events written, file closed

Sources (nothing here changes what the engine does):

* the engine's event bus (`core.events.bus`): orders (`OrderEvent`), amends, placements and
  flattens (`IntentEvent`), fills (`FillEvent`), positions (`PositionEvent`: cycle opened /
  closed, stop moved), entry refusals (`RiskRejection`), the kill switch (`KillSwitchEvent`),
  reconciliation (`ReconcileEvent`) and an operator's runner changes (`RunnerControlEvent`:
  pause / resume / params), through one bounded subscription;
* two log records the events do not carry, taken by a `logging.Handler` on their loggers only
  and put into the same ordered stream: a runner halted / no longer halted
  (`core.executor.grid_executor`), and an engine-API command about to run, with its validated
  arguments and who sent it (`core.api.server`, every command of the socket and the console).

Every line has the same keys (null when not known or not relevant), then the action's own:

    ts_ms            int   the action's time, ms UTC: the engine's clock (a replay's candle time,
                           the wall clock or the exchange's time live); the wall clock for the kill
                           switch, commands, halts
    wall_ms          int   when the line was written, ms UTC
    action           str   see ACTIONS
    mode             str   paper | live
    replay           bool  the run replays candle files
    runner_id        int   trading_runners id (null for account-wide actions)
    strategy, symbol str
    cycle            int   the cycle number (from the client order id)
    client_order_id  str   the id the order rests under at the venue (amended: `<id>a<n>`)
    venue_order_id   str   the exchange's own order id when an event carries it (none does yet: null)
    purpose          str   entry | stop | take_profit | exit
    level            int   grid level of an entry (-1 for exits)
    side             str   buy | sell
    price            float quote currency
    qty              float base units
    reason           str   why (an exit's tp | sl | end | kill | unprotected, a refusal's code, ...)

Extras: fill: fee (USDT), partial (bool, null when the order's size is not known); stop_moved:
old_price, avg_entry, levels_filled; cycle_opened / cycle_closed: avg_entry / pnl_usdt;
kill_switch: active, flatten, actor; command: command, args, actor, origin; runner_*: actor,
detail, params; reconcile / entry_refused: detail; events_dropped: count.

Lines are written on the event loop by the subscriber task, each with one `write(2)` (nothing
is buffered in the process), so a SIGKILL loses at most the line being written and the events
not taken yet (the task takes them as soon as the loop is free, right after the candle or poll
that published them: at most that last one); the database stays the record of what happened.
Secrets are masked by `redact` (a `SecretRedactor.redact`). The file is
created 0600 in a 0700 folder and appended to, never rotated by Radar (like the run's log:
`logrotate` with `copytruncate` works). The subscriber task runs under the engine's supervisor
(restarted after a failure); what is still queued when it is stopped is written by `close()`.
In paper mode a crash rolls back the candle in progress (one transaction per candle): its
actions may be in the file and are logged again when the candle is processed after the restart.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.events import bus as bus_mod
from core.events.bus import (
    FillEvent,
    IntentEvent,
    KillSwitchEvent,
    OrderEvent,
    PositionEvent,
    ReconcileEvent,
    RiskRejection,
)

log = logging.getLogger(__name__)

#: The file name, next to the run's log (`<log dir>/trades.jsonl`).
FILE_NAME = "trades.jsonl"
#: Every action a line may name.
ACTIONS = ("order_placed", "take_profit_placed", "stop_placed", "stop_recreated", "order_amended", "stop_moved",
           "take_profit_moved", "order_cancelled", "order_rejected", "order_filled", "fill", "cycle_opened",
           "cycle_closed", "flatten", "entry_refused", "kill_switch", "runner_halted", "runner_unhalted",
           "runner_paused", "runner_resumed", "runner_params_pending", "runner_params_applied", "reconcile",
           "command", "events_dropped")
#: The keys every line has, in order.
BASE_KEYS = ("ts_ms", "wall_ms", "action", "mode", "replay", "runner_id", "strategy", "symbol", "cycle",
             "client_order_id", "venue_order_id", "purpose", "level", "side", "price", "qty", "reason")

#: Loggers whose records become lines (see the module docstring), and their templates.
EXECUTOR_LOGGER = "core.executor.grid_executor"
API_LOGGER = "core.api.server"
HALTED_MSG = "%s %s HALTED (%s): entries cancelled and refused, stop kept"
UNHALTED_MSG = "%s %s: no longer halted (%s)"
COMMAND_MSG = "engine API: %s %s by %s (%s)"

_ID_RE = re.compile(r"-([0-9a-f]{8})-(\d+)-([estx])(\d*)((?:[ar]\d+)?)$")
_PURPOSE = {"e": "entry", "s": "stop", "t": "take_profit", "x": "exit"}
_EPS = 1e-9


_NO_ID = (None, None, None, "")
_parsed: dict[str, tuple] = {}


def parse_order_id(client_id: str | None) -> tuple[int | None, str | None, int | None, str]:
    """(cycle, purpose, level, suffix) of one of our client order ids (`core.executor.client_ids`:
    `<prefix><epoch>-<hash>-<cycle>-<purpose letter><level>[a<n>|r<n>]`); Nones for another id."""
    if not client_id:
        return _NO_ID
    got = _parsed.get(client_id)
    if got is not None:
        return got
    m = _ID_RE.search(client_id)
    if m is None:
        got = _NO_ID
    else:
        purpose = _PURPOSE[m.group(3)]
        got = (int(m.group(2)), purpose, int(m.group(4)) if m.group(4) and purpose == "entry" else -1, m.group(5))
    if len(_parsed) > 4096:
        _parsed.clear()
    _parsed[client_id] = got
    return got


_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str).encode


def logical_id(client_id: str | None) -> str:
    """`client_id` without its amendment / re-creation suffix (`a<n>`, `r<n>`)."""
    m = _ID_RE.search(client_id or "")
    return client_id[:m.start(5)] if m is not None and m.group(5) else (client_id or "")


def _num(x: Any) -> float | None:
    if x is None:
        return None
    if type(x) is float:
        return x if x - x == 0.0 else None       # nan and inf are not JSON
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _wall_ms() -> int:
    return int(time.time() * 1000)


class _LogItem:
    """A log record turned into a stream item (put into the subscription, in order)."""

    __slots__ = ("args", "kind", "ts_ms")

    def __init__(self, kind: str, args: tuple, ts_ms: int) -> None:
        self.kind = kind
        self.args = args
        self.ts_ms = ts_ms


class _Handler(logging.Handler):
    """Takes the halt and command records (module docstring) to the trade log's stream."""

    def __init__(self, tlog: TradeLog) -> None:
        super().__init__(logging.DEBUG)
        self.tlog = tlog

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg, args = record.msg, record.args
            if not isinstance(args, tuple):
                return
            if msg == HALTED_MSG and len(args) == 3:
                kind = "runner_halted"
            elif msg == UNHALTED_MSG and len(args) == 3:
                kind = "runner_unhalted"
            elif msg == COMMAND_MSG and len(args) == 4:
                kind = "command"
            else:
                return
            self.tlog._inject(_LogItem(kind, tuple(args), int(record.created * 1000)))
        except Exception:  # pragma: no cover - a log handler never raises
            self.handleError(record)


class TradeLog:
    """See the module docstring.

    Args:
        engine: the Engine (mode, sources, runners: read for each line's context).
        path: the JSON-lines file (its folder is created 0700 unless `tighten_folder` is False
            for an existing folder the operator chose).
        redact: str -> str masking secrets in each line, or None.
        maxsize: the subscription's bound for low-priority events (amends; orders, fills,
            positions are never dropped); drops are written as an "events_dropped" line.

    Attributes:
        lines: lines written. errors: lines that could not be written or built. dropped: events
            the bus dropped for this subscriber.
    """

    def __init__(self, engine: Any, path: str | os.PathLike[str], *, redact: Callable[[str], str] | None = None,
                 maxsize: int = 100_000, tighten_folder: bool = True) -> None:
        from core.storage.log_files import create_private_file, ensure_private_dir

        self.engine = engine
        self.path = Path(path)
        self.redact = redact
        ensure_private_dir(self.path.parent, tighten=tighten_folder)
        create_private_file(self.path)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
        self._mode = getattr(engine, "mode", None)
        self._replay = any(getattr(src, "replay", False) for src in getattr(engine, "sources", ()) or ())
        kinds: tuple[type, ...] = (IntentEvent, OrderEvent, FillEvent, PositionEvent, RiskRejection,
                                   KillSwitchEvent, ReconcileEvent)
        ctl = getattr(bus_mod, "RunnerControlEvent", None)
        if ctl is not None:
            kinds += (ctl,)
        self._control_kind = ctl
        self.sub = engine.bus.subscribe(kinds, maxsize=maxsize)
        self.lines = 0
        self.errors = 0
        self.dropped = 0
        self._task: asyncio.Task | None = None
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.get_ident()
        self._handler = _Handler(self)
        self._loggers = [logging.getLogger(EXECUTOR_LOGGER), logging.getLogger(API_LOGGER)]
        for lg in self._loggers:
            lg.addHandler(self._handler)
        self._runner_ids: dict[tuple[str, str], int] = {}
        self._order_qty: dict[str, float] = {}        # client id -> ordered qty (entries), for `partial`
        self._filled: dict[str, float] = {}           # client id -> qty filled so far
        self._pend: dict[tuple[str, str], Any] = {}    # (strategy, symbol) -> the unpaired Fill/PositionEvent
        self._stop: dict[tuple[str, str], float | None] = {}
        self._pos_qty: dict[tuple[str, str], float] = {}
        self._side: dict[str, str] = {}                # logical client id -> side (from its placement)
        self._stop_cid: dict[tuple[str, str], str] = {}  # (strategy, symbol) -> the live stop's client id
        self._last_error = 0.0

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> None:
        """Start writing (on the running loop): a task under the engine's supervisor when it has
        one (restarted after a failure), else a plain task."""
        if self._task is not None or self._closed:
            return
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        sup = getattr(self.engine, "supervisor", None)
        if sup is not None:
            try:
                self._task = sup.spawn("trade-log", self._run, subsystem="trade_log", critical=False)
                return
            except RuntimeError:          # the supervisor is stopping
                pass
        self._task = self._loop.create_task(self._run(), name="trade-log")

    async def close(self) -> None:
        """Write what is queued, stop, close the file (call once the engine stopped). Idempotent;
        never raises."""
        if self._closed:
            return
        self._closed = True
        for lg in self._loggers:
            lg.removeHandler(self._handler)
        self.sub.close()                       # iteration ends after the queued events
        task, self._task = self._task, None
        if task is not None and not task.done():
            try:
                await asyncio.wait_for(asyncio.shield(task), 10.0)
            except (TimeoutError, asyncio.CancelledError, Exception):
                task.cancel()
        for item in self.sub.take_queued():    # what a cancelled task left (stopped with the engine)
            self._handle(item)
        try:
            os.close(self._fd)
        except OSError as exc:  # pragma: no cover
            log.warning("closing %s failed: %s", self.path, exc)

    async def _run(self) -> None:
        async for item in self.sub:
            self._handle(item)

    def _inject(self, item: _LogItem) -> None:
        """Put a log-derived item into the subscription (ordered with the events)."""
        if self._closed:
            return
        if threading.get_ident() == self._thread or self._loop is None:
            self.sub._put(item)
        else:                                   # a record from another thread
            self._loop.call_soon_threadsafe(self.sub._put, item)

    # ---------------------------------------------------------------- lines
    def _handle(self, item: Any) -> None:
        try:
            if self.sub.dropped_total != self.dropped:
                n = self.sub.dropped_total - self.dropped
                self.dropped = self.sub.dropped_total
                self._write(self._line("events_dropped", _wall_ms(), count=n,
                                       reason="the trade log fell behind; low-priority events (amends) dropped"))
            for line in self._lines(item):
                self._write(line)
        except Exception as exc:
            self.errors += 1
            now = time.monotonic()
            if now - self._last_error > 60:
                self._last_error = now
                log.error("trade log: %s not written: %s: %s", type(item).__name__, type(exc).__name__, exc)

    def _write(self, obj: dict) -> None:
        text = _dumps(obj)
        if self.redact is not None:
            text = self.redact(text)
        data = (text + "\n").encode("utf-8")
        fd = self._fd
        while data:                              # one write(2) per line: nothing buffered in the process
            n = os.write(fd, data)
            data = data[n:]
        self.lines += 1

    def _runner_id(self, strategy: str | None, symbol: str | None) -> int | None:
        key = (strategy or "", symbol or "")
        rid = self._runner_ids.get(key)
        if rid is None:
            for r in getattr(self.engine, "runners", ()) or ():
                if r.name == strategy and r.symbol == symbol:
                    rid = self._runner_ids[key] = int(r.runner_id)
                    break
        return rid

    def _line(self, action: str, ts_ms: int | None, *, strategy: str | None = None, symbol: str | None = None,
              client_id: str | None = None, purpose: str | None = None, level: int | None = None,
              side: str | None = None, price: Any = None, qty: Any = None, reason: str | None = None,
              cycle: int | None = None, **extra: Any) -> dict:
        c, p, lv, _ = parse_order_id(client_id)
        wall = _wall_ms()
        d = {"ts_ms": int(ts_ms) if ts_ms is not None else wall, "wall_ms": wall, "action": action,
             "mode": self._mode, "replay": self._replay,
             "runner_id": self._runner_id(strategy, symbol) if strategy is not None else None,
             "strategy": strategy, "symbol": symbol, "cycle": cycle if cycle is not None else c,
             "client_order_id": client_id, "venue_order_id": None,
             "purpose": purpose if purpose is not None else p, "level": level if level is not None else lv,
             "side": side, "price": _num(price), "qty": _num(qty), "reason": reason}
        for k, v in extra.items():
            d[k] = _num(v) if isinstance(v, float) else v
        return d

    def _lines(self, ev: Any) -> list[dict]:
        t = type(ev)
        if t is IntentEvent:
            return self._intent(ev)
        if t is OrderEvent:
            return self._order(ev)
        if t is FillEvent:
            return self._fill(ev)
        if t is PositionEvent:
            return self._position(ev)
        if t is RiskRejection:
            return [self._line("entry_refused", ev.ts, strategy=ev.strategy, symbol=ev.symbol, reason=ev.reason,
                               detail=ev.detail)]
        if t is KillSwitchEvent:
            return [self._line("kill_switch", None, reason=ev.reason, active=ev.active, flatten=ev.flatten,
                               actor=ev.actor)]
        if t is ReconcileEvent:
            return [self._line("reconcile", ev.ts, strategy=ev.strategy, symbol=ev.symbol, client_id=ev.client_id,
                               reason=ev.action, detail=ev.detail)]
        if t is _LogItem:
            return self._log_item(ev)
        if self._control_kind is not None and t is self._control_kind:
            return [self._line(f"runner_{ev.action}", getattr(ev, "ts_ms", None) or None, strategy=ev.strategy,
                               symbol=ev.symbol, reason=getattr(ev, "detail", None) or None,
                               actor=getattr(ev, "actor", None), params=getattr(ev, "params", None),
                               timeframe=getattr(ev, "timeframe", None))]
        return []

    def _intent(self, ev: IntentEvent) -> list[dict]:
        _, purpose, _, _ = parse_order_id(ev.client_id)
        if ev.action == "place":                   # the OrderEvent that follows makes the line
            if ev.qty is not None:
                self._remember_qty(ev.client_id, ev.qty)
            return []
        if ev.action == "amend":
            if ev.qty is not None:
                self._remember_qty(ev.client_id, ev.qty)
            action = {"stop": "stop_moved", "take_profit": "take_profit_moved"}.get(purpose or "", "order_amended")
            return [self._line(action, ev.ts, strategy=ev.strategy, symbol=ev.symbol, client_id=ev.client_id,
                               side=self._side.get(logical_id(ev.client_id)), price=ev.price,
                               qty=ev.qty if ev.qty is not None else self._order_qty.get(ev.client_id),
                               reason=ev.reason)]
        return [self._line(ev.action, ev.ts, strategy=ev.strategy, symbol=ev.symbol, client_id=ev.client_id,
                           price=ev.price, qty=ev.qty, reason=ev.reason)]

    def _remember_qty(self, cid: str, qty: float) -> None:
        if len(self._order_qty) > 10_000:          # orders that never reported an end: forget them
            self._order_qty.clear()
            self._filled.clear()
        self._order_qty[cid] = float(qty)

    def _remember_side(self, cid: str, side: str) -> None:
        if len(self._side) > 10_000:
            self._side.clear()
        self._side[logical_id(cid)] = side

    def _order(self, ev: OrderEvent) -> list[dict]:
        _, _, _, suffix = parse_order_id(ev.client_id)
        key = (ev.strategy, ev.symbol)
        qty = self._order_qty.get(ev.client_id)
        if ev.status == "open":
            self._remember_side(ev.client_id, ev.side)
            if ev.purpose == "stop":
                action = "stop_recreated" if suffix.startswith("r") else "stop_placed"
                qty = qty if qty is not None else self._pos_qty.get(key)
                self._stop_cid[key] = ev.client_id
            elif ev.purpose == "take_profit":
                action = "take_profit_placed"
            else:
                action = "order_placed"
        else:
            action = f"order_{ev.status}"
            if ev.status in ("cancelled", "rejected", "filled"):
                self._order_qty.pop(ev.client_id, None)
                self._filled.pop(ev.client_id, None)
                self._side.pop(logical_id(ev.client_id), None)
        return [self._line(action, ev.ts, strategy=ev.strategy, symbol=ev.symbol, client_id=ev.client_id,
                           purpose=ev.purpose, side=ev.side, price=ev.price, qty=qty, status=ev.status)]

    def _fill(self, ev: FillEvent) -> list[dict]:
        partial = None
        if ev.kind == "entry":
            ordered = self._order_qty.get(ev.client_id)
            if ordered is not None:
                done = self._filled.get(ev.client_id, 0.0) + ev.qty
                partial = done < ordered * (1.0 - 1e-6)
                if partial:
                    self._filled[ev.client_id] = done
                else:
                    self._order_qty.pop(ev.client_id, None)
                    self._filled.pop(ev.client_id, None)
        out = [self._line("fill", ev.ts, strategy=ev.strategy, symbol=ev.symbol, client_id=ev.client_id,
                          purpose="entry" if ev.kind == "entry" else None, level=ev.level, side=ev.side,
                          price=ev.price, qty=ev.qty, reason=ev.reason, kind=ev.kind, fee=ev.fee, partial=partial)]
        if out[0]["purpose"] is None:              # an exit: the id says stop / take_profit / exit
            out[0]["purpose"] = parse_order_id(ev.client_id)[1] or "exit"
        return out + self._pair(ev)

    def _position(self, ev: PositionEvent) -> list[dict]:
        key = (ev.strategy, ev.symbol)
        out: list[dict] = []
        old = self._stop.get(key)
        if ev.qty and old is not None and ev.stop is not None and ev.stop != old:
            cid = self._stop_cid.get(key)
            out.append(self._line("stop_moved", ev.ts, strategy=ev.strategy, symbol=ev.symbol, client_id=cid,
                                  purpose="stop", side=self._side.get(logical_id(cid)) if cid else None,
                                  price=ev.stop, qty=ev.qty, old_price=old, avg_entry=ev.avg_entry,
                                  levels_filled=ev.levels_filled))
        self._stop[key] = ev.stop if ev.qty else None
        if not ev.qty:
            cid = self._stop_cid.pop(key, None)
            if cid is not None:
                self._side.pop(logical_id(cid), None)
        self._pos_qty[key] = ev.qty
        return out + self._pair(ev)

    def _pair(self, ev: Any) -> list[dict]:
        """A fill and the position it made (published together, in either order, same ts): the
        first entry fill of a position opens a cycle, an exit that leaves it flat closes it."""
        key = (ev.strategy, ev.symbol)
        other = self._pend.pop(key, None)
        if other is None or type(other) is type(ev) or other.ts != ev.ts:
            self._pend[key] = ev
            return []
        fill, pos = (ev, other) if type(ev) is FillEvent else (other, ev)
        cycle = parse_order_id(fill.client_id)[0]
        if fill.kind == "entry" and pos.qty > 0 and abs(pos.qty - fill.qty) <= _EPS * max(pos.qty, 1.0):
            return [self._line("cycle_opened", fill.ts, strategy=fill.strategy, symbol=fill.symbol, cycle=cycle,
                               client_id=fill.client_id, purpose="entry", side=fill.side, price=fill.price,
                               qty=pos.qty, position_side=pos.side, avg_entry=pos.avg_entry, stop=pos.stop)]
        if fill.kind == "exit" and not pos.qty:
            pnl = self._cycle_pnl(fill.strategy, fill.symbol, cycle)
            return [self._line("cycle_closed", fill.ts, strategy=fill.strategy, symbol=fill.symbol, cycle=cycle,
                               client_id=fill.client_id, side=fill.side, price=fill.price, qty=fill.qty,
                               reason=fill.reason, pnl_usdt=pnl)]
        return []

    def _cycle_pnl(self, strategy: str, symbol: str, cycle: int | None) -> float | None:
        if cycle is None:
            return None
        for r in getattr(self.engine, "runners", ()) or ():
            if r.name == strategy and r.symbol == symbol:
                try:
                    cycles = r.cycles
                    return _num(cycles[cycle].pnl) if cycle < len(cycles) else None
                except Exception:
                    return None
        return None

    def _log_item(self, it: _LogItem) -> list[dict]:
        if it.kind in ("runner_halted", "runner_unhalted"):
            strategy, symbol, why = it.args
            return [self._line(it.kind, it.ts_ms, strategy=str(strategy), symbol=str(symbol), reason=str(why))]
        name, args, actor, origin = it.args
        try:
            parsed = json.loads(args)
        except (TypeError, ValueError):
            parsed = str(args)
        return [self._line("command", it.ts_ms, command=str(name), args=parsed, actor=str(actor),
                           origin=str(origin))]
