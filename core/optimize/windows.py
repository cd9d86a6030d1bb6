"""Rolling walk-forward windows: in-sample (IS) then out-of-sample (OOS), stepped in whole days.

Arithmetic (all times ms UTC, `DAY = 86_400_000`):

    t0          = the first candle's open time floored to its UTC midnight
    window i    : IS  = [t0 + i·step,        t0 + i·step + IS)
                  OOS = [t0 + i·step + IS,   t0 + i·step + IS + OOS)
    windows     = every i >= 0 whose OOS end is <= `data_end` (the end of the last candle,
                  its open time + one timeframe): only whole windows, so
                  n = floor((data_end − t0 − IS − OOS) / step) + 1   (0 when negative)

IS, OOS and step are whole days, so every boundary is a UTC midnight and the OOS
windows are made of whole UTC days (the daily Sharpe's days). With step = OOS (the
default 180/60/60) the OOS windows tile the data after the first IS window without
overlap.

Warm-up (`window_slice`): a window's candles are `[start, end)` plus the `warmup`
candles just before `start` (as many as exist). The envelope_dca engines do not trade
while t < N (spec: "No trading while t < N"), so prepending exactly N = ma_period
candles gives the SMA its full history at the window's first candle while every trade
happens inside the window.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.errors import UsageError
from core.model.candles import Candles

#: One UTC day in ms.
DAY_MS = 86_400_000


@dataclass(frozen=True)
class Window:
    """One walk-forward window; times are ms UTC, each range half-open [start, end).

    Attributes:
        index: 0-based position in time order.
        is_start, is_end: the in-sample range (the search runs here).
        oos_start, oos_end: the out-of-sample range (is_end == oos_start).
    """

    index: int
    is_start: int
    is_end: int
    oos_start: int
    oos_end: int


def _days(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < 1:
        raise UsageError(f"{name} must be a whole number of days >= 1, got {value!r}")
    return int(value)


def rolling_windows(first_ts: int, data_end: int, is_days: int = 180, oos_days: int = 60,
                    step_days: int = 60) -> list[Window]:
    """The rolling IS/OOS windows that fit in `[first_ts, data_end)` (module docstring).

    Args:
        first_ts: open time of the first candle, ms UTC (floored to its UTC midnight).
        data_end: end of the data, ms UTC, exclusive (last open time + one timeframe).
        is_days, oos_days, step_days: window lengths and step, whole days >= 1.

    Returns:
        The windows in time order; empty when not even one fits.

    Raises:
        UsageError: a length is not an integer >= 1.
    """
    is_ms = _days("is_days", is_days) * DAY_MS
    oos_ms = _days("oos_days", oos_days) * DAY_MS
    step_ms = _days("step_days", step_days) * DAY_MS
    t0 = (int(first_ts) // DAY_MS) * DAY_MS
    span = int(data_end) - t0 - is_ms - oos_ms
    if span < 0:
        return []
    return [Window(i, t0 + i * step_ms, t0 + i * step_ms + is_ms, t0 + i * step_ms + is_ms,
                   t0 + i * step_ms + is_ms + oos_ms)
            for i in range(span // step_ms + 1)]


def windows_for(candles: Candles, timeframe_ms: int, is_days: int = 180, oos_days: int = 60,
                step_days: int = 60) -> list[Window]:
    """`rolling_windows` over a candle series (data end = last open time + `timeframe_ms`).

    Raises:
        UsageError: no candles, or the data is too short for one IS + OOS window
            (the message gives the span in days and what is needed).
    """
    if len(candles) == 0:
        raise UsageError("walk-forward: no candles")
    first, end = int(candles.ts[0]), int(candles.ts[-1]) + int(timeframe_ms)
    out = rolling_windows(first, end, is_days, oos_days, step_days)
    if not out:
        span = (end - (first // DAY_MS) * DAY_MS) / DAY_MS
        raise UsageError(f"walk-forward: {candles.symbol} {candles.timeframe} spans {span:.1f} days; one window "
                         f"needs is_days + oos_days = {is_days + oos_days} days")
    return out


def window_slice(candles: Candles, start_ms: int, end_ms: int, warmup: int) -> tuple[Candles, int]:
    """Candles `[start_ms, end_ms)` preceded by up to `warmup` earlier candles.

    Returns:
        (the slice, k) where k is the number of warm-up candles actually prepended
        (fewer than `warmup` at the start of the data); the window's own candles are
        `slice[k:]`.

    Raises:
        UsageError: `warmup` is negative or `end_ms < start_ms`.
    """
    if warmup < 0:
        raise UsageError(f"warmup must be >= 0 candles, got {warmup}")
    if end_ms < start_ms:
        raise UsageError(f"window end {end_ms} is before its start {start_ms}")
    lo = int(np.searchsorted(candles.ts, start_ms, "left"))
    hi = int(np.searchsorted(candles.ts, end_ms, "left"))
    first = max(0, lo - int(warmup))
    sl = slice(first, hi)
    return (Candles(candles.symbol, candles.market, candles.timeframe, candles.ts[sl], candles.open[sl],
                    candles.high[sl], candles.low[sl], candles.close[sl], candles.volume[sl]), lo - first)
