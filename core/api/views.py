"""Typed views of the engine API's answers: what the console (in-process or attached) reads.

The engine API speaks JSON-ready dicts (`core.engine.api.EngineAPI`, `GET /v1/...`); a console
turns them into these frozen dataclasses once, with `SnapshotView.from_wire(d)` etc., whether
the dict came from an in-process `EngineAPI` (`core.api.local_port.LocalPort`) or from the
socket (`tui.remote.RemoteEngine`). One parser, so both consoles read the same thing.

Parsing is tolerant, because an attached console may talk to an older or newer engine of the
same protocol major: a missing field takes its default, an unknown one is ignored, and a number
that is not a finite number becomes None. Money is USDT (float), prices quote currency,
quantities base currency, times ms UTC (int).

    snap = SnapshotView.from_wire(api.snapshot())
    for r in snap.runners: r.symbol, r.position.qty, r.grid.open_orders
    grid = GridStateView.from_wire(api.grid_state("BTC/USDT", detail=True))  # + fills, cycles, chart
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping


def num(x: Any) -> float | None:
    """`x` as a finite float, else None (None, NaN, inf, a string, a bool)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def integer(x: Any) -> int | None:
    """`x` as an int when it is a whole number, else None."""
    if isinstance(x, bool):
        return None
    if isinstance(x, int):
        return x
    if isinstance(x, float) and math.isfinite(x) and x == int(x):
        return int(x)
    return None


def _map(d: Any) -> Mapping[str, Any]:
    return d if isinstance(d, Mapping) else {}


def _list(x: Any) -> list:
    return list(x) if isinstance(x, (list, tuple)) else []


@dataclass(frozen=True, slots=True)
class KillSwitchView:
    """The kill switch: active, who changed it last (`actor`), why, with flatten, when (ms UTC)."""

    active: bool = False
    flatten: bool = False
    actor: str = ""
    reason: str = ""
    changed_ms: int | None = None

    @classmethod
    def from_wire(cls, d: Any) -> KillSwitchView:
        d = _map(d)
        return cls(bool(d.get("active")), bool(d.get("flatten")), str(d.get("actor") or ""),
                   str(d.get("reason") or ""), integer(d.get("changed_ms")))


@dataclass(frozen=True, slots=True)
class OrderView:
    """A resting order of a runner: client id, purpose (entry | stop | take_profit | exit), grid
    level (None for a stop), price (quote; None for a market order)."""

    client_id: str
    purpose: str
    level: int | None
    price: float | None

    @classmethod
    def from_wire(cls, d: Any) -> OrderView:
        d = _map(d)
        return cls(str(d.get("client_id") or ""), str(d.get("purpose") or ""), integer(d.get("level")),
                   num(d.get("price")))


@dataclass(frozen=True, slots=True)
class PositionView:
    """The position of one runner: side (None when flat), qty (base, 0 when flat), average entry
    and stop (quote, None when flat), levels filled, unrealised P&L (USDT)."""

    symbol: str
    strategy: str
    side: str | None = None
    qty: float = 0.0
    avg_entry: float | None = None
    stop: float | None = None
    levels_filled: int = 0
    unrealized: float = 0.0

    @property
    def is_open(self) -> bool:
        return self.qty > 0

    @classmethod
    def from_wire(cls, d: Any, symbol: str = "", strategy: str = "") -> PositionView:
        d = _map(d)
        return cls(str(d.get("symbol") or symbol), str(d.get("strategy") or strategy),
                   (str(d["side"]) if d.get("side") else None), num(d.get("qty")) or 0.0,
                   num(d.get("avg_entry")), num(d.get("stop")), integer(d.get("levels_filled")) or 0,
                   num(d.get("unrealized")) or 0.0)


@dataclass(frozen=True, slots=True)
class LevelFill:
    """An entry fill of the open cycle: grid level, price (quote), qty (base), time (ms UTC)."""

    level: int
    price: float
    qty: float
    ts: int | None = None

    @classmethod
    def from_wire(cls, d: Any) -> LevelFill | None:
        d = _map(d)
        level, price, qty = integer(d.get("level")), num(d.get("price")), num(d.get("qty"))
        if level is None or price is None or qty is None:
            return None
        return cls(level, price, qty, integer(d.get("ts")))


@dataclass(frozen=True, slots=True)
class CycleView:
    """A closed cycle (`core.model.cycle.Cycle`): open/close times (ms UTC), side, levels filled,
    average entry and exit price (quote), exit reason, qty (base), P&L net of fees (USDT)."""

    open_time: int | None
    close_time: int | None
    side: str
    levels_filled: int
    avg_entry: float | None
    exit_price: float | None
    exit_reason: str
    qty: float | None
    pnl: float | None

    @property
    def key(self) -> str:
        return f"{self.open_time}:{self.close_time}"

    @classmethod
    def from_wire(cls, d: Any) -> CycleView:
        d = _map(d)
        return cls(integer(d.get("open_time")), integer(d.get("close_time")), str(d.get("side") or ""),
                   integer(d.get("levels_filled")) or 0, num(d.get("avg_entry")), num(d.get("exit_price")),
                   str(d.get("exit_reason") or ""), num(d.get("qty")), num(d.get("pnl")))


@dataclass(frozen=True, slots=True)
class ChartView:
    """The last candles of a runner for the Grid chart: open times (ms UTC), closes, the moving
    average (None while warming up), one series per entry envelope, and the fills among them as
    (candle index, price, kind "entry" | "exit"). `key` changes when any of it changes."""

    ts: tuple[int, ...]
    close: tuple[float, ...]
    sma: tuple[float | None, ...]
    envelopes: tuple[tuple[float | None, ...], ...]
    fills: tuple[tuple[int, float, str], ...]
    key: tuple

    @classmethod
    def from_wire(cls, d: Any) -> ChartView | None:
        d = _map(d)
        close = tuple(num(x) for x in _list(d.get("close")))
        if not close or any(x is None for x in close):
            return None
        n = len(close)
        ts = tuple(integer(x) or 0 for x in _list(d.get("ts")))
        sma = tuple(num(x) for x in _list(d.get("sma")))
        envs = tuple(tuple(num(x) for x in _list(e)) for e in _list(d.get("envelopes")))
        fills = []
        for f in _list(d.get("fills")):
            f = _list(f)
            if len(f) == 3 and integer(f[0]) is not None and num(f[1]) is not None and 0 <= int(f[0]) < n:
                fills.append((int(f[0]), float(f[1]), str(f[2])))
        if len(sma) != n or any(len(e) != n for e in envs):
            sma, envs = (None,) * n, ()
        return cls(ts, close, sma, envs, tuple(fills), tuple(_list(d.get("key"))))   # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class GridStateView:
    """The grid of one runner (`EngineAPI.grid_state`): level prices (None while warming up),
    take-profit and stop (quote), levels filled of `num_levels`, closed cycles, cash and equity
    (USDT), the last candle processed (ms UTC), the runner's state and its resting orders.

    With `detail` (`grid_state(..., detail=True)`, `GET /v1/grid/{symbol}?detail=1`) also: the
    open cycle's entry `fills`, the `recent_cycles`, the `leverage`, the per-level notional
    `unit` (USDT; None when the grid sizes from cash) and the `chart`; otherwise those are
    empty/None and `has_detail` is False."""

    symbol: str
    strategy: str
    timeframe: str = ""
    kind: str = "grid"
    side: str | None = None
    levels: tuple[float | None, ...] = ()
    take_profit: float | None = None
    stop: float | None = None
    levels_filled: int = 0
    num_levels: int = 0
    cycles: int = 0
    cash: float | None = None
    equity: float | None = None
    cursor_ts: int | None = None
    state: str = ""
    state_reason: str = ""
    open_orders: tuple[OrderView, ...] = ()
    has_detail: bool = False
    fills: tuple[LevelFill, ...] = ()
    recent_cycles: tuple[CycleView, ...] = ()
    leverage: float | None = None
    unit: float | None = None
    fills_count: int = 0
    chart: ChartView | None = None

    def entry_orders(self) -> tuple[OrderView, ...]:
        return tuple(o for o in self.open_orders if o.purpose == "entry")

    @classmethod
    def from_wire(cls, d: Any, symbol: str = "", strategy: str = "") -> GridStateView:
        d = _map(d)
        detail = "fills" in d or "recent_cycles" in d
        fills = tuple(f for f in (LevelFill.from_wire(x) for x in _list(d.get("fills"))) if f is not None)
        return cls(
            symbol=str(d.get("symbol") or symbol), strategy=str(d.get("strategy") or strategy),
            timeframe=str(d.get("timeframe") or ""), kind=str(d.get("kind") or "grid"),
            side=(str(d["side"]) if d.get("side") else None),
            levels=tuple(num(x) for x in _list(d.get("levels"))),
            take_profit=num(d.get("take_profit")), stop=num(d.get("stop")),
            levels_filled=integer(d.get("levels_filled")) or 0, num_levels=integer(d.get("num_levels")) or 0,
            cycles=integer(d.get("cycles")) or 0, cash=num(d.get("cash")), equity=num(d.get("equity")),
            cursor_ts=integer(d.get("cursor_ts")), state=str(d.get("state") or ""),
            state_reason=str(d.get("state_reason") or ""),
            open_orders=tuple(OrderView.from_wire(o) for o in _list(d.get("open_orders"))),
            has_detail=detail, fills=fills,
            recent_cycles=tuple(CycleView.from_wire(c) for c in _list(d.get("recent_cycles"))),
            leverage=num(d.get("leverage")), unit=num(d.get("unit")),
            fills_count=integer(d.get("fills_count")) or 0,
            chart=ChartView.from_wire(d["chart"]) if isinstance(d.get("chart"), Mapping) else None)


@dataclass(frozen=True, slots=True)
class RunnerView:
    """One runner (a strategy on a symbol) in a snapshot: last price (quote) and candle (ms UTC),
    state ("ready", "paused", "halted: <why>", live: "connecting" | "reconciling" | "blocked"),
    its position and grid, parameters waiting for the next flat moment, and what the engine
    may add per symbol (signal text, ATR % and funding rate as a fraction per 8 h)."""

    symbol: str
    strategy: str
    timeframe: str = ""
    last_price: float | None = None
    last_ts: int | None = None
    state: str = ""
    position: PositionView = field(default_factory=lambda: PositionView("", ""))
    grid: GridStateView = field(default_factory=lambda: GridStateView("", ""))
    pending_params: Mapping[str, Any] | None = None
    signal: str | None = None
    atr_pct: float | None = None
    funding_rate: float | None = None

    @property
    def key(self) -> str:
        """"SYMBOL|strategy": the row key of this runner in the console's tables."""
        return f"{self.symbol}|{self.strategy}"

    @property
    def paused(self) -> bool:
        return self.state == "paused"

    @property
    def halted(self) -> str | None:
        return self.state if self.state.startswith("halted") else None

    @classmethod
    def from_wire(cls, d: Any, symbol: str = "") -> RunnerView:
        d = _map(d)
        sym = str(d.get("symbol") or symbol)
        strat = str(d.get("strategy") or "")
        pp = d.get("pending_params")
        return cls(sym, strat, str(d.get("timeframe") or ""), num(d.get("last_price")), integer(d.get("last_ts")),
                   str(d.get("state") or ""), PositionView.from_wire(d.get("position"), sym, strat),
                   GridStateView.from_wire(d.get("grid"), sym, strat),
                   dict(pp) if isinstance(pp, Mapping) else None,
                   (str(d["signal"]) if d.get("signal") else None), num(d.get("atr_pct")), num(d.get("funding_rate")))


@dataclass(frozen=True, slots=True)
class SnapshotView:
    """The engine at a glance (`EngineAPI.snapshot`): mode (paper | live | replay...), equity and
    day P&L (USDT), kill switch, candles processed and their rate (per s), every runner in
    (symbol, strategy) order, and whether the engine has finished (end of a replay) or stopped
    on an error (`error`, "" when none). Runners keep the engine's order (its configuration)."""

    mode: str = "paper"
    equity: float | None = None
    day_pnl: float | None = None
    kill_switch: KillSwitchView = field(default_factory=KillSwitchView)
    candles: int = 0
    candles_per_s: float = 0.0
    runners: tuple[RunnerView, ...] = ()
    finished: bool = False
    error: str = ""
    #: the capital-allocation state (`core.risk.allocation_runtime.Allocator.snapshot`: policy,
    #: pool USDT, weights by runner, halts), None when the engine runs no allocator
    allocation: dict | None = None

    def symbols(self) -> list[str]:
        """The symbols traded, sorted, each once."""
        return sorted({r.symbol for r in self.runners})

    def runners_of(self, symbol: str) -> list[RunnerView]:
        return [r for r in self.runners if r.symbol == symbol]

    def runner(self, symbol: str, strategy: str | None = None) -> RunnerView | None:
        """The runner of `symbol` (of `strategy` when given, else its first one), or None."""
        return next((r for r in self.runners if r.symbol == symbol and (strategy is None or r.strategy == strategy)),
                    None)

    def positions(self) -> list[PositionView]:
        """The open positions, in runner order."""
        return [r.position for r in self.runners if r.position.is_open]

    @classmethod
    def from_wire(cls, d: Any) -> SnapshotView:
        d = _map(d)
        runners = []
        for sym in _map(d.get("symbols")):
            for row in _list(d["symbols"][sym]):
                runners.append(RunnerView.from_wire(row, sym))
        return cls(str(d.get("mode") or "paper"), num(d.get("equity")), num(d.get("day_pnl")),
                   KillSwitchView.from_wire(d.get("kill_switch")), integer(d.get("candles")) or 0,
                   num(d.get("candles_per_s")) or 0.0, tuple(runners), bool(d.get("finished")),
                   str(d.get("error") or ""), dict(_map(d.get("allocation"))) or None)


def positions_from_wire(rows: Any) -> list[PositionView]:
    """`GET /v1/positions` / `EngineAPI.positions()` as views (the open ones)."""
    return [p for p in (PositionView.from_wire(r) for r in _list(rows)) if p.is_open]


@dataclass(frozen=True, slots=True)
class CycleStatsView:
    """Cycle statistics of one asset ("all": every asset): cycles, average duration (ms), cycles
    per week, win rate (fraction), total P&L (USDT); None where undefined."""

    asset: str = ""
    n_cycles: int = 0
    avg_duration_ms: float | None = None
    cycles_per_week: float | None = None
    win_rate: float | None = None
    total_pnl: float | None = None

    @classmethod
    def from_wire(cls, d: Any) -> CycleStatsView:
        d = _map(d)
        return cls(str(d.get("asset") or ""), integer(d.get("n_cycles")) or 0, num(d.get("avg_duration_ms")),
                   num(d.get("cycles_per_week")), num(d.get("win_rate")), num(d.get("total_pnl")))


@dataclass(frozen=True, slots=True)
class PerformanceView:
    """The book's performance (`EngineAPI.performance`, `GET /v1/performance`): curves (ts ms UTC,
    equity USDT, drawdown fraction; points dropped when malformed), monthly returns ((year,
    month, fraction)), rolling Sharpe (ts, value) over `window_days`, cycle stats per asset,
    wins / losses, and the headline figures (fractions, USDT)."""

    title: str = ""
    start_equity: float | None = None
    final_equity: float | None = None
    total_return: float | None = None
    max_drawdown: float | None = None
    sharpe: float | None = None
    ts: tuple[int, ...] = ()
    equity: tuple[float, ...] = ()
    drawdown: tuple[float, ...] = ()
    monthly: tuple[tuple[int, int, float], ...] = ()
    window_days: int = 0
    sharpe_ts: tuple[int, ...] = ()
    sharpe_values: tuple[float, ...] = ()
    cycles: tuple[CycleStatsView, ...] = ()
    n_win: int = 0
    n_loss: int = 0
    profit_factor: float | None = None

    @classmethod
    def from_wire(cls, d: Any) -> PerformanceView:
        d = _map(d)
        c, rs, wl = _map(d.get("curves")), _map(d.get("rolling_sharpe")), _map(d.get("win_loss"))
        pts = [(integer(t), num(e), num(x)) for t, e, x in zip(_list(c.get("ts")), _list(c.get("equity")),
                                                              _list(c.get("drawdown")))]
        pts = [p for p in pts if None not in p]
        months = [(integer(m.get("year")), integer(m.get("month")), num(m.get("ret")))
                  for m in map(_map, _list(d.get("monthly")))]
        sharpe = [(integer(t), num(v)) for t, v in zip(_list(rs.get("ts")), _list(rs.get("values")))]
        sharpe = [p for p in sharpe if None not in p]
        return cls(str(d.get("title") or ""), num(d.get("start_equity")), num(d.get("final_equity")),
                   num(d.get("total_return")), num(d.get("max_drawdown")), num(d.get("sharpe")),
                   tuple(p[0] for p in pts), tuple(p[1] for p in pts), tuple(p[2] for p in pts),  # type: ignore[misc]
                   tuple(m for m in months if None not in m), integer(rs.get("window_days")) or 0,  # type: ignore[misc]
                   tuple(p[0] for p in sharpe), tuple(p[1] for p in sharpe),  # type: ignore[misc]
                   tuple(CycleStatsView.from_wire(x) for x in _list(d.get("cycles"))),
                   integer(wl.get("n_win")) or 0, integer(wl.get("n_loss")) or 0, num(wl.get("profit_factor")))


@dataclass(frozen=True)
class VarFigureView:
    """One VaR/CVaR figure: method "historical" | "monte_carlo", level (0.95, 0.99), var/cvar
    (USDT one-day losses) and as fractions of the equity."""

    method: str
    level: float
    var: float | None
    cvar: float | None
    var_fraction: float | None
    cvar_fraction: float | None

    @classmethod
    def from_wire(cls, d: Any) -> VarFigureView:
        d = _map(d)
        return cls(str(d.get("method") or ""), num(d.get("level")) or 0.0, num(d.get("var")), num(d.get("cvar")),
                   num(d.get("var_fraction")), num(d.get("cvar_fraction")))


@dataclass(frozen=True)
class WorstCaseView:
    """One runner's worst case (every resting level filled, then the stop): loss USDT from the
    cash now (None: unbounded, no stop on a short), loss_from_equity, levels_to_fill, note."""

    strategy: str
    symbol: str
    timeframe: str
    side: str
    levels_to_fill: int
    stop: float | None
    loss: float | None
    loss_from_equity: float | None
    unbounded: bool
    note: str

    @classmethod
    def from_wire(cls, d: Any) -> WorstCaseView:
        d = _map(d)
        return cls(str(d.get("strategy") or ""), str(d.get("symbol") or ""), str(d.get("timeframe") or ""),
                   str(d.get("side") or ""), integer(d.get("levels_to_fill")) or 0, num(d.get("stop")),
                   num(d.get("loss")), num(d.get("loss_from_equity")), bool(d.get("unbounded")),
                   str(d.get("note") or ""))


@dataclass(frozen=True)
class ScenarioView:
    """One stress scenario on the book: window (ms UTC), available (else `reason`), loss at the
    window's end and worst loss inside it (USDT and fractions of equity), `detail` per symbol."""

    name: str
    start_ms: int | None
    end_ms: int | None
    available: bool
    loss: float | None
    worst_loss: float | None
    loss_fraction: float | None
    worst_loss_fraction: float | None
    reason: str
    detail: str

    @classmethod
    def from_wire(cls, d: Any) -> ScenarioView:
        d = _map(d)
        parts = []
        for x in map(_map, _list(d.get("runners"))):
            mv = num(x.get("move"))
            parts.append(f"{str(x.get('symbol') or '').split('/')[0]} "
                         + ("?" if mv is None else f"{mv * 100:+.0f}%")
                         + ("*" if x.get("proxy_used") else "") + (" SL" if x.get("stopped") else ""))
        return cls(str(d.get("name") or ""), integer(d.get("start_ms")), integer(d.get("end_ms")),
                   bool(d.get("available")), num(d.get("loss")), num(d.get("worst_loss")),
                   num(d.get("loss_fraction")), num(d.get("worst_loss_fraction")), str(d.get("reason") or ""),
                   ", ".join(parts))


@dataclass(frozen=True)
class GroupExposureView:
    """Exposure of one correlation group: symbols, net and gross notional (USDT), gross as a
    fraction of equity, Σ worst case (USDT, None: unbounded)."""

    group: str
    symbols: tuple[str, ...]
    net_notional: float | None
    gross_notional: float | None
    gross_fraction: float | None
    worst_case: float | None

    @classmethod
    def from_wire(cls, d: Any) -> GroupExposureView:
        d = _map(d)
        return cls(str(d.get("group") or ""), tuple(str(s) for s in _list(d.get("symbols"))),
                   num(d.get("net_notional")), num(d.get("gross_notional")), num(d.get("gross_fraction")),
                   num(d.get("worst_case")))


@dataclass(frozen=True)
class RiskView:
    """The risk of the book (`EngineAPI.risk`, `GET /v1/risk`): equity (USDT), VaR/CVaR figures
    (or `var_reason` when unavailable), worst case per runner and in total (None: unbounded),
    stress scenarios, exposure per group, notes; as_of_ms / computed_ms ms UTC."""

    as_of_ms: int | None = None
    computed_ms: int | None = None
    source: str = ""
    equity: float | None = None
    var_available: bool = False
    var_reason: str = ""
    var_days: int = 0
    figures: tuple[VarFigureView, ...] = ()
    worst_cases: tuple[WorstCaseView, ...] = ()
    worst_total: float | None = None
    worst_total_fraction: float | None = None
    scenarios: tuple[ScenarioView, ...] = ()
    groups: tuple[GroupExposureView, ...] = ()
    notes: tuple[str, ...] = ()

    def figure(self, method: str, level: float) -> VarFigureView | None:
        """The VaR figure of `method` at `level`, or None."""
        return next((f for f in self.figures if f.method == method and abs(f.level - level) < 1e-9), None)

    @classmethod
    def from_wire(cls, d: Any) -> RiskView:
        d = _map(d)
        v, w = _map(d.get("var")), _map(d.get("worst_case"))
        return cls(integer(d.get("as_of_ms")), integer(d.get("computed_ms")), str(d.get("source") or ""),
                   num(d.get("equity")), bool(v.get("available")), str(v.get("reason") or ""),
                   integer(v.get("days")) or 0, tuple(VarFigureView.from_wire(f) for f in _list(v.get("figures"))),
                   tuple(WorstCaseView.from_wire(c) for c in _list(w.get("runners"))), num(w.get("total")),
                   num(w.get("total_fraction")), tuple(ScenarioView.from_wire(s) for s in _list(d.get("scenarios"))),
                   tuple(GroupExposureView.from_wire(g) for g in _list(d.get("groups"))),
                   tuple(str(n) for n in _list(d.get("notes"))))
