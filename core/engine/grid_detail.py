"""What the Grid screen shows beyond `runner.grid_state()`: the open cycle's entry fills, the last
closed cycles, leverage and per-level notional, and the chart series. Read-only, in-process,
JSON-ready, so an attached console gets exactly what an in-process one gets
(`EngineAPI.grid_state(symbol, detail=True)`, `GET /v1/grid/{symbol}?detail=1`).

    d = grid_detail(runner)
    d["fills"]          [{level, price, qty, ts}]   entries of the open cycle, one per level
    d["recent_cycles"]  [Cycle as dict]             the last `cycles` closed ones, oldest first
    d["leverage"]       float                       the account's leverage (1.0 when unknown)
    d["unit"]           float | None                notional per level, USDT (None: sized from cash)
    d["fills_count"]    int                         fills booked so far (changes with any fill)
    d["chart"]          {ts, close, sma, envelopes, fills, key} | None   the last `candles` candles

The chart's SMA is the simple mean of the `ma_period` closes before each candle (the envelope
strategy's reference, `../shared/specs/envelope_dca.md`), each envelope that SMA times the
strategy's level factor; fills are (candle index, price, kind). `key` is (symbol, strategy,
last candle ms UTC, fills booked): the shape `tui.widgets.price_chart` throttles on (a new candle
redraws at most once a second, a new fill at once). The chart is cached per runner and rebuilt
only when its key changes.
"""

from __future__ import annotations

import dataclasses
import math
import weakref
from typing import Any

from core.data.timeframes import timeframe_ms

#: candles on the chart
CHART_CANDLES = 120
#: closed cycles sent
RECENT_CYCLES = 20

_chart_cache: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()   # runner -> (key, chart)


def _finite(x: Any) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) else None


def _book_fills(runner: Any) -> list:
    fills = getattr(getattr(runner, "book", None), "fills", None)
    if fills is None:
        fills = getattr(getattr(runner, "venue", None), "fills", None)
    return list(fills) if fills is not None else []


def open_cycle_fills(runner: Any, levels_filled: int) -> list[dict]:
    """The entry fills of the open cycle, newest back to the last non-entry fill, one per level
    (the newest of each): [{level, price, qty, ts}] in level order."""
    if not levels_filled:
        return []
    out: dict[int, dict] = {}
    for f in reversed(_book_fills(runner)):
        if getattr(f, "kind", None) != "entry":
            break
        lv = int(getattr(f, "level", 0) or 0)
        if lv < levels_filled and lv not in out:
            out[lv] = {"level": lv, "price": float(f.price), "qty": float(f.qty), "ts": int(f.ts)}
        if len(out) == levels_filled:
            break
    return [out[k] for k in sorted(out)]


def recent_cycles(runner: Any, limit: int = RECENT_CYCLES) -> list[dict]:
    """The last `limit` closed cycles as dicts (`core.model.cycle.Cycle` fields), oldest first."""
    cycles = getattr(runner, "cycles", None) or []
    return [dataclasses.asdict(c) if dataclasses.is_dataclass(c) else dict(c) for c in list(cycles)[-limit:]]


def chart(runner: Any, n: int = CHART_CANDLES) -> dict | None:
    """The chart series of the last `n` candles (see the module docstring), or None without candles."""
    h = getattr(runner, "history", None)
    if h is None or not len(h):
        return None
    fills_all = _book_fills(runner)
    key = (runner.symbol, runner.name, int(h.ts[-1]), len(fills_all))     # the chart widget's key shape
    cache_key = (*key, len(h))
    hit = _chart_cache.get(runner)
    if hit is not None and hit[0] == cache_key:
        return hit[1]
    closes = list(h.close)
    start = max(0, len(closes) - n)
    strat = getattr(runner, "strategy", None)
    params = getattr(strat, "params", {}) or {}
    ma = int(params.get("ma_period") or 0) if isinstance(params, dict) else 0
    factors = [float(f) for f in (getattr(strat, "_factors", None) or [])]
    sma: list[float | None] = []
    envs: list[list[float | None]] = [[] for _ in factors]
    for t in range(start, len(closes)):
        m = math.fsum(closes[t - ma:t]) / ma if ma and t >= ma else None
        sma.append(m)
        for e, f in zip(envs, factors):
            e.append(None if m is None else m * f)
    ts = [int(x) for x in h.ts[start:]]
    index = {t: i for i, t in enumerate(ts)}
    tf = timeframe_ms(runner.timeframe)
    fills = []
    for f in fills_all[-200:]:
        i = index.get(int(f.ts))
        if i is None:                          # a live fill: wall-clock time, inside its candle
            i = index.get(int(f.ts) - int(f.ts) % tf)
        if i is not None:
            fills.append([i, float(f.price), str(f.kind)])
    out = {"ts": ts, "close": [float(c) for c in closes[start:]], "sma": sma, "envelopes": envs,
           "fills": fills, "key": list(key)}
    _chart_cache[runner] = (cache_key, out)
    return out


def grid_detail(runner: Any, levels_filled: int, *, candles: int = CHART_CANDLES) -> dict:
    """The detail fields of the runner's grid (see the module docstring); `levels_filled` is
    its grid state's count (the open cycle's entries)."""
    lev = _finite(getattr(getattr(runner, "account", None), "leverage", None)) or 1.0
    return {"fills": open_cycle_fills(runner, int(levels_filled or 0)), "recent_cycles": recent_cycles(runner),
            "leverage": lev, "unit": _finite(getattr(getattr(runner, "book", None), "unit", None)),
            "fills_count": len(_book_fills(runner)), "chart": chart(runner, candles)}
