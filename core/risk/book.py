"""The book whose risk `radar risk` measures: per runner its open position (qty, average entry,
stop) and its resting entry levels, at the last price.

Two sources, one shape (`Book` of `RunnerBook`):

* `book_from_runners(runners)`: the runners of a running engine (in memory; call it on the
  engine's loop thread).
* `book_from_db(db_path, risk)`: the runners' persisted state (`core.executor.state_store`,
  trading tables of migration 5) a headless run left. A replay closes its open cycles at the
  end of the data (reason "end"); for such a runner the book is the one held just before that
  close (the final candle's position, its stop and its entry orders still resting), because
  that is the risk the replay ended with. Fees come from `risk.yaml` (the store does not keep
  them).

Units: prices in quote currency (USDT), quantities base units, money USDT (float64), times ms
UTC. Levels are 0-based.
"""

from __future__ import annotations

import json
import math
import sqlite3
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterable

from core.errors import RadarError

LONG, SHORT = "long", "short"


@dataclass(frozen=True)
class RestingLevel:
    """One unfilled entry level of a grid runner.

    Attributes:
        level: 0-based level index.
        price: its price (quote currency).
        qty: base units it would buy or sell (`unit / price`, the executor's sizing).
        resting: True when an entry order rests at the venue; False when the level is only
            quoted (entries blocked now: paused, kill switch): counted anyway (fail closed).
    """

    level: int
    price: float
    qty: float
    resting: bool = True


@dataclass(frozen=True)
class RunnerBook:
    """One runner's position and resting levels.

    Attributes:
        strategy, symbol, timeframe: the runner (registry name, ccxt symbol, timeframe).
        kind: "grid" (DCA levels, a stop recomputed after every fill) or "single".
        side: "long" | "short" (a grid runner's side even when flat; None for a flat single).
        params: the strategy's parameters (used to recompute the stop after a fill).
        last_price: the last close (quote currency), None before the first candle.
        cash: the runner's cash, USDT (capital + realised P&L − fees; no notional).
        qty: position in base units (0 when flat).
        avg_entry, stop: quote currency, None when flat (stop None: no stop — unbounded risk).
        levels_filled, num_levels: grid levels filled in the open cycle, and per cycle.
        unit: USDT notional per level of the open (or the next) cycle.
        resting: the unfilled levels, in level order.
        maker_fee, taker_fee: fractions of the notional (entries maker, stop exit taker).
        leverage: the account's leverage.
        runner_id: the runner's id in the database (trading_runners), None when unknown.
    """

    strategy: str
    symbol: str
    timeframe: str
    kind: str
    side: str | None
    params: dict
    last_price: float | None
    cash: float
    qty: float
    avg_entry: float | None
    stop: float | None
    levels_filled: int
    num_levels: int
    unit: float | None
    resting: tuple[RestingLevel, ...]
    maker_fee: float
    taker_fee: float
    leverage: float = 1.0
    runner_id: int | None = None

    @property
    def label(self) -> str:
        """"strategy symbol timeframe"."""
        return f"{self.strategy} {self.symbol} {self.timeframe}"

    @property
    def unrealized(self) -> float:
        """Unrealised P&L at `last_price`, USDT (0 when flat or never priced)."""
        if self.qty <= 0 or self.last_price is None or self.avg_entry is None:
            return 0.0
        d = self.last_price - self.avg_entry
        return self.qty * (d if self.side == LONG else -d)

    @property
    def equity(self) -> float:
        """cash + unrealised P&L at the last price, USDT."""
        return self.cash + self.unrealized

    @property
    def notional(self) -> float:
        """Signed position notional at the last price, USDT (+ long, − short)."""
        if self.qty <= 0 or self.last_price is None:
            return 0.0
        return self.qty * self.last_price * (1.0 if self.side == LONG else -1.0)


@dataclass(frozen=True)
class Book:
    """Every runner's book. source: "engine" | "database"; as_of_ms: the newest candle open
    time among the runners (ms UTC), None before any candle; notes: what the reader should know
    (e.g. a replay's book taken before its end-of-data exit)."""

    runners: tuple[RunnerBook, ...]
    source: str
    as_of_ms: int | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def equity(self) -> float:
        """Σ runner equity, USDT."""
        return float(sum(r.equity for r in self.runners))


def stop_rule(r: RunnerBook) -> Callable[[int, float, float, float], float | None]:
    """The runner's stop rule `(level, price, qty, avg_entry) -> stop | None`: its strategy's
    `GridStrategy.on_fill` (e.g. envelope_dca `A·(1 − p)` long / `A·(1 + p)` short), built once.

    Raises:
        RadarError: the strategy cannot be built from the runner's params.
    """
    from core.strategies import registry

    try:
        strat = registry.create(r.strategy, dict(r.params))
    except Exception as exc:
        raise RadarError(f"{r.label}: cannot rebuild the strategy to recompute its stop: {exc}") from None

    def rule(level: int, price: float, qty: float, avg_entry: float) -> float | None:
        s = strat.on_fill(level, price, qty, avg_entry)
        return float(s) if s is not None and math.isfinite(s) else None

    return rule


def stop_after_fill(r: RunnerBook, level: int, price: float, qty: float, avg_entry: float) -> float | None:
    """The stop the runner's strategy sets after an entry fill (see `stop_rule`); None when the
    strategy gives none.

    Raises:
        RadarError: the strategy cannot be built from the runner's params.
    """
    return stop_rule(r)(level, price, qty, avg_entry)


def _num(x: Any) -> float | None:
    return float(x) if x is not None and isinstance(x, (int, float)) and math.isfinite(x) else None


# ---------------------------------------------------------------------------- from a running engine


def book_from_runners(runners: Iterable[Any]) -> Book:
    """The book of a running engine's runners (`GridRunner` / `SinglePositionRunner`), read in
    memory on the engine's loop thread. A grid runner's unfilled levels are its resting entry
    orders; a level the strategy quotes without a resting order (entries blocked now) counts
    too, marked `resting=False`."""
    rows: list[RunnerBook] = []
    last_ts: list[int] = []
    for r in runners:
        if getattr(r, "cursor", None) is not None:
            last_ts.append(int(r.cursor))
        rows.append(_grid_from_runner(r) if hasattr(r.book, "level_qty") else _single_from_runner(r))
    return Book(tuple(rows), "engine", max(last_ts) if last_ts else None)


def _grid_from_runner(r: Any) -> RunnerBook:
    b = r.book
    strat = r.strategy
    in_pos = b.qty > 0
    unit = b.unit if in_pos else r.executor.sizing_unit()
    unit = _num(unit)
    orders = {int(o[1]): float(o[2]) for o in r.executor.orders.values()
              if o[0] == "entry" and o[2] is not None and math.isfinite(o[2])}
    resting = []
    for i in range(b.levels_filled, strat.num_levels):
        if i in orders:
            price, on = orders[i], True
        else:
            q = strat.levels[i] if i < len(strat.levels) else math.nan
            if not (q is not None and math.isfinite(q) and q > 0):
                continue
            price, on = float(q), False
        if unit and price > 0:
            resting.append(RestingLevel(i, price, unit / price, on))
    return RunnerBook(strategy=r.name, symbol=r.symbol, timeframe=r.timeframe, kind="grid", side=strat.side,
                      params=dict(strat.params), last_price=_num(r.last_close), cash=float(b.cash),
                      qty=float(b.qty) if in_pos else 0.0, avg_entry=_num(b.avg_entry) if in_pos else None,
                      stop=_num(b.stop) if in_pos else None, levels_filled=int(b.levels_filled),
                      num_levels=int(strat.num_levels), unit=unit, resting=tuple(resting),
                      maker_fee=float(b.maker_fee), taker_fee=float(b.taker_fee), leverage=float(b.leverage),
                      runner_id=getattr(r, "runner_id", None))


def _single_from_runner(r: Any) -> RunnerBook:
    b = r.book
    flat = b.side is None or not b.qty
    return RunnerBook(strategy=r.name, symbol=r.symbol, timeframe=r.timeframe, kind="single",
                      side=None if flat else b.side, params=dict(getattr(r.strategy, "params", {}) or {}),
                      last_price=_num(r.last_close), cash=float(b.cash), qty=0.0 if flat else float(b.qty),
                      avg_entry=None if flat else _num(b.entry_price), stop=None if flat else _num(b.stop),
                      levels_filled=0 if flat else 1, num_levels=1, unit=None, resting=(),
                      maker_fee=float(b.maker_fee), taker_fee=float(b.taker_fee),
                      leverage=float(getattr(b, "leverage", 1.0)), runner_id=getattr(r, "runner_id", None))


# ---------------------------------------------------------------------------- from the database


def book_from_db(db_path: str | Path, risk: Any) -> Book:
    """The book the runners of `db_path` left (see the module docstring). `risk`: the
    `RiskConfig` (fees, leverage) of the run.

    Raises:
        RadarError: no database at `db_path`, or it holds no trading state (no runner ever ran).
    """
    from core.storage.db import open_sync

    path = Path(db_path)
    if not path.is_file():
        raise RadarError(f"no database at {path}: run the engine first (radar run ... --db {path})")
    try:
        conn = open_sync(path)
    except (OSError, sqlite3.Error) as exc:
        raise RadarError(f"cannot open database {path}: {exc}") from None
    try:
        try:
            runners = conn.execute("SELECT r.id, r.strategy, r.symbol, r.timeframe, r.params, s.cursor_ts, "
                                   "s.last_close, s.finished, s.grid FROM trading_runners r JOIN trading_state s "
                                   "ON s.runner_id = r.id ORDER BY r.id").fetchall()
        except sqlite3.Error as exc:
            raise RadarError(f"{path}: no trading state ({exc}); run the engine on it first") from None
        if not runners:
            raise RadarError(f"{path}: no runner has traded on this database yet")
        rows, notes, last = [], [], []
        for rid, strategy, symbol, tf, params, cursor, last_close, finished, grid in runners:
            if cursor is not None:
                last.append(int(cursor))
            g = json.loads(grid)
            rb = _runner_from_db(conn, int(rid), strategy, symbol, tf, json.loads(params), last_close,
                                 bool(finished), cursor, g, risk)
            if rb is None:
                continue
            book, note = rb
            rows.append(book)
            if note:
                notes.append(note)
    finally:
        conn.close()
    return Book(tuple(rows), "database", max(last) if last else None, tuple(notes))


def _runner_from_db(conn: sqlite3.Connection, rid: int, strategy: str, symbol: str, tf: str, params: dict,
                    last_close: Any, finished: bool, cursor: Any, g: dict, risk: Any) -> tuple[RunnerBook, str] | None:
    maker, taker = float(risk.fees.maker), float(risk.fees.taker)
    lev = float(risk.account.leverage)
    last = _num(last_close)
    if g.get("kind") == "single":
        b = g.get("book") or {}
        flat = not b.get("side") or not b.get("qty")
        rb = RunnerBook(strategy, symbol, tf, "single", None if flat else b["side"], params, last,
                        float(b.get("cash", g.get("cash", 0.0))), 0.0 if flat else float(b["qty"]),
                        None if flat else _num(b.get("entry_price")), None if flat else _num(b.get("stop")),
                        0 if flat else 1, 1, None, (), maker, taker, lev, rid)
        return rb, ""
    b = g.get("book", g)
    from core.strategies import registry

    try:
        strat = registry.create(strategy, dict(params))
    except Exception as exc:
        raise RadarError(f"runner {rid} ({strategy} {symbol} {tf}): cannot rebuild its strategy: {exc}") from None
    side, n_levels = strat.side, int(strat.num_levels)
    cash = float(b["cash"])
    qty = float(b.get("qty") or 0.0)
    avg, stop = _num(b.get("avg_entry")), _num(b.get("stop"))
    filled = int(b.get("levels_filled") or 0)
    unit = _num(b.get("unit"))
    cycle = conn.execute("SELECT COUNT(*) FROM trading_cycles WHERE runner_id=?", (rid,)).fetchone()[0]
    note = ""
    if finished and qty <= 0 and cursor is not None:
        end = conn.execute("SELECT idx, side, levels_filled, avg_entry, exit_price, qty, close_time FROM "
                           "trading_cycles WHERE runner_id=? ORDER BY idx DESC LIMIT 1", (rid,)).fetchone()
        if end is not None and end[6] == cursor and _is_end_exit(conn, rid, end[0]):
            idx, side, filled, avg, exit_price, qty, _ = end
            fee = conn.execute("SELECT COALESCE(SUM(fee), 0) FROM trading_fills WHERE runner_id=? AND kind='exit' "
                               "AND reason='end' AND ts=?", (rid, cursor)).fetchone()[0]
            realised = qty * ((exit_price - avg) if side == LONG else (avg - exit_price))
            cash = cash - realised + float(fee)
            pos = conn.execute("SELECT stop FROM trading_positions WHERE runner_id=? AND qty > 0 ORDER BY id DESC "
                               "LIMIT 1", (rid,)).fetchone()
            stop = _num(pos[0]) if pos is not None else None
            if stop is None:
                stop = _num(strat.on_fill(filled - 1, avg, qty, avg))
            lvl0 = conn.execute("SELECT SUM(f.qty * f.price), SUM(f.qty) FROM trading_fills f JOIN trading_orders o "
                                "ON o.client_id = f.client_id WHERE f.runner_id=? AND o.cycle=? AND f.kind='entry' "
                                "AND o.level=0", (rid, idx)).fetchone()
            unit = _num(lvl0[0]) if lvl0 and lvl0[0] else None
            cycle = idx
            note = (f"{strategy} {symbol} {tf}: the replay closed its open cycle at the end of the data; "
                    f"the book is the one held before that close")
    elif qty <= 0:
        from core.executor.grid_executor import cycle_unit

        unit = cycle_unit(strat, cash, lev)
    entries = conn.execute("SELECT level, price FROM trading_orders WHERE runner_id=? AND cycle=? AND "
                           "purpose='entry' AND status='open' ORDER BY level", (rid, cycle)).fetchall()
    resting = tuple(RestingLevel(int(lv), float(p), unit / float(p))
                    for lv, p in entries if p is not None and p > 0 and lv >= filled and unit)
    return RunnerBook(strategy, symbol, tf, "grid", side, params, last, cash, qty if qty > 0 else 0.0,
                      avg if qty > 0 else None, stop if qty > 0 else None, int(filled), n_levels, unit, resting,
                      maker, taker, lev, rid), note


def _is_end_exit(conn: sqlite3.Connection, rid: int, idx: int) -> bool:
    row = conn.execute("SELECT exit_reason FROM trading_cycles WHERE runner_id=? AND idx=?", (rid, idx)).fetchone()
    return row is not None and row[0] == "end"


def with_price(r: RunnerBook, price: float) -> RunnerBook:
    """`r` marked at `price` (quote currency)."""
    return replace(r, last_price=float(price))
