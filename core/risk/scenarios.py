"""Stress scenarios: a past window of real candles replayed on today's book.

For each runner of the book (`core.risk.book.Book`) and each scenario
(`core.config.scenarios.ScenarioConfig`):

* the path: the candles of the runner's base currency in the window (file
  `data_dir / source.format(base=...)`, e.g. binance-spot/SOL_USDT-1h.json.gz), scaled to
  today: each price becomes `P0 · price / open_first`, P0 the runner's last price, so the
  symbol moves by its own relative path. A base without data in the window uses the
  scenario's proxy (e.g. BTC; `proxy_used` says so);
* the walk, candle by candle, on the scaled OHLC: at the open, a stop already crossed exits at
  the open and levels already crossed fill at the open (the spec's rule 1); then towards the
  candle's adverse extreme (low for long, high for short) the next unfilled level and the stop
  are met in price order from the open (a level and the stop at the same price: the stop
  first); a level fills at its price buying `unit / price` (maker fee), the stop is recomputed
  by the strategy's rule; touching the stop closes the whole position at the stop (taker fee),
  after which the runner stays flat. Levels keep today's prices (they are not re-priced from a
  moving average) and the take-profit is ignored: the position is held to the end of the
  window unless stopped — the conservative reading (`/work/shared/specs/envelope_dca.md`
  "Intrabar path" and "Money" for the fills and fees);
* the loss: the equity now (cash + unrealised P&L at P0) less the equity in the scenario
  (`loss` at the window's last close; `worst_loss` the largest at any candle's adverse extreme).

The book's `loss` is the sum over runners; its `worst_loss` is the largest sum over the
window's candle times (each runner's figure carried forward), i.e. simultaneous.

Money USDT (positive = a loss), times ms UTC.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from core.config.scenarios import ScenarioConfig
from core.errors import RadarError
from core.risk.book import LONG, Book, RunnerBook, stop_rule


@dataclass(frozen=True)
class ScenarioRunner:
    """One runner in one scenario. path_base: the base whose candles were used; proxy_used:
    True when it is the proxy's; move: last close / first open − 1 of the path (fraction);
    levels_filled: resting levels filled; stopped: the stop was hit; loss, worst_loss: USDT."""

    strategy: str
    symbol: str
    timeframe: str
    path_base: str
    proxy_used: bool
    move: float
    levels_filled: int
    stopped: bool
    loss: float
    worst_loss: float


@dataclass(frozen=True)
class ScenarioResult:
    """One scenario on the book. available False (with `reason`) when no data could be read
    for it; loss / worst_loss: the book's (USDT) and as fractions of the book's equity."""

    name: str
    start_ms: int
    end_ms: int
    source: str
    available: bool
    runners: tuple[ScenarioRunner, ...] = ()
    loss: float = 0.0
    worst_loss: float = 0.0
    loss_fraction: float = 0.0
    worst_loss_fraction: float = 0.0
    reason: str = ""


@functools.lru_cache(maxsize=16)
def _rows(path: str, mtime_ns: int) -> np.ndarray:
    from core.data.freqtrade import read_rows

    return read_rows(path)


def window(path: Path, start_ms: int, end_ms: int) -> np.ndarray | None:
    """The (n, 6) rows [ts, o, h, l, c, v] of a freqtrade file with start_ms <= ts < end_ms
    (cached per file and modification time); None when the file is missing or holds none.

    Raises:
        DataError: the file exists but cannot be read.
    """
    if not path.is_file():
        return None
    rows = _rows(str(path), path.stat().st_mtime_ns)
    sel = rows[(rows[:, 0] >= start_ms) & (rows[:, 0] < end_ms)]
    return sel if len(sel) else None


def base_of(symbol: str) -> str:
    """"BTC" of "BTC/USDT" or "BTC/USDT:USDT"."""
    return symbol.split("/")[0]


def walk(r: RunnerBook, rows: np.ndarray) -> tuple[list[int], list[float], float, int, bool]:
    """The runner `r` along scaled candles `rows` ((n, 6) [ts, o, h, l, c, v], prices already
    scaled to today; see the module docstring). Returns (ts, the loss at each candle's adverse
    extreme or exit, the loss at the last close, levels filled, stopped)."""
    long = r.side == LONG
    q = float(r.qty)
    cost = q * (r.avg_entry or 0.0)
    stop = r.stop if q > 0 else None
    flow = 0.0                                   # fees paid and P&L realised in the scenario, USDT
    u0 = r.unrealized
    levels = list(r.resting) if r.kind == "grid" else []
    rule = stop_rule(r) if levels else None
    filled, stopped = 0, False
    ts_out: list[int] = []
    worst: list[float] = []

    def loss_at(x: float) -> float:
        if q <= 0:
            return u0 - flow
        avg = cost / q
        return u0 - flow - q * ((x - avg) if long else (avg - x))

    def fill(price: float) -> None:
        nonlocal q, cost, stop, flow, filled
        lvl = levels.pop(0)
        qty = (r.unit / price) if r.unit else lvl.qty
        flow -= qty * price * r.maker_fee
        q += qty
        cost += qty * price
        stop = rule(lvl.level, price, qty, cost / q) if rule is not None else stop
        filled += 1

    def exit_at(x: float) -> None:
        nonlocal q, cost, flow, stopped
        avg = cost / q
        flow += q * ((x - avg) if long else (avg - x)) - q * x * r.taker_fee
        q, cost, stopped = 0.0, 0.0, True

    def crossed(level_price: float, x: float) -> bool:   # x at or beyond the level on the adverse side
        return x <= level_price if long else x >= level_price

    last = u0
    for ts, o, h, lo, c, _ in rows:
        adverse = lo if long else h
        if not stopped:
            if q > 0 and stop is not None and crossed(stop, o):
                exit_at(o)
            while not stopped and levels and crossed(levels[0].price, o):
                fill(o)
                if stop is not None and crossed(stop, o):
                    exit_at(o)
            while not stopped:
                nxt = levels[0].price if levels else None
                if q > 0 and stop is not None and crossed(stop, adverse) and \
                        (nxt is None or not crossed(nxt, stop) or nxt == stop):
                    exit_at(stop)
                elif nxt is not None and crossed(nxt, adverse):
                    fill(nxt)
                else:
                    break
        ts_out.append(int(ts))
        worst.append(loss_at(adverse))
        last = loss_at(c)
    return ts_out, worst, last, filled, stopped


def run_scenario(book: Book, sc: ScenarioConfig, data_dir: Path) -> ScenarioResult:
    """Scenario `sc` on `book` with the candles under `data_dir` (see the module docstring).
    Never raises for missing data: the result says `available` False and why."""
    proxy_rows = window(data_dir / sc.source.format(base=sc.proxy), sc.start_ms, sc.end_ms)
    out: list[ScenarioRunner] = []
    series: list[tuple[list[int], list[float]]] = []
    missing: list[str] = []
    for r in book.runners:
        base = base_of(r.symbol)
        try:
            rows = window(data_dir / sc.source.format(base=base), sc.start_ms, sc.end_ms)
        except RadarError:
            rows = None
        used, proxied = base, False
        if rows is None:
            rows, used, proxied = proxy_rows, sc.proxy, True
        if rows is None:
            missing.append(base)
            continue
        if r.last_price is None or (r.qty <= 0 and not r.resting):
            out.append(ScenarioRunner(r.strategy, r.symbol, r.timeframe, used, proxied,
                                      float(rows[-1, 4] / rows[0, 1] - 1.0), 0, False, 0.0, 0.0))
            continue
        scaled = rows.copy()
        scaled[:, 1:5] = rows[:, 1:5] * (r.last_price / rows[0, 1])
        ts, worst, last, filled, stopped = walk(r, scaled)
        out.append(ScenarioRunner(r.strategy, r.symbol, r.timeframe, used, proxied,
                                  float(rows[-1, 4] / rows[0, 1] - 1.0), filled, stopped, float(last),
                                  float(max(worst))))
        series.append((ts, worst))
    if missing:
        where = data_dir / sc.source.format(base=sc.proxy)
        return ScenarioResult(sc.name, sc.start_ms, sc.end_ms, sc.source, False,
                              reason=f"no candles in the window for {', '.join(sorted(set(missing)))} nor for the "
                                     f"proxy {sc.proxy} ({where})")
    loss = float(sum(x.loss for x in out))
    worst_total = _simultaneous_worst(series)
    eq = book.equity
    den = eq if eq else math.nan
    return ScenarioResult(sc.name, sc.start_ms, sc.end_ms, sc.source, True, tuple(out), loss, worst_total,
                          loss / den, worst_total / den)


def _simultaneous_worst(series: Sequence[tuple[list[int], list[float]]]) -> float:
    if not series:
        return 0.0
    times = sorted({t for ts, _ in series for t in ts})
    total = np.zeros(len(times))
    pos = {t: i for i, t in enumerate(times)}
    for ts, vals in series:
        col = np.full(len(times), np.nan)
        for t, v in zip(ts, vals):
            col[pos[t]] = v
        # carry forward (0 before the runner's first candle)
        idx = np.where(np.isnan(col), 0, np.arange(len(col)))
        np.maximum.accumulate(idx, out=idx)
        filled = col[idx]
        total += np.where(np.isnan(filled), 0.0, filled)
    return float(total.max())


def run_scenarios(book: Book, scenarios: Sequence[ScenarioConfig], data_dir: Path) -> list[ScenarioResult]:
    """Every scenario on `book`, in order."""
    return [run_scenario(book, sc, Path(data_dir)) for sc in scenarios]
