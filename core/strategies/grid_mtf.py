"""grid_mtf (long) and grid_mtf_short: the envelope on a higher timeframe (HTF), traded on the
base timeframe, with a HTF trend filter (docs/grid_family.md).

HTF candles: UTC-aligned buckets of `htf_hours` (bucket = ts − ts mod H, H = htf_hours in ms;
as `core.data.aggregate`), built from the base candles; a bucket is a HTF candle only when it
is complete (all H/B base candles present, B = base timeframe ms) and it becomes known when its
last base candle (open time bucket + H − B) has closed, i.e. it is in the history. An
incomplete bucket is skipped (no HTF candle). Its close = the close of that last base candle.

For base candle t, with the K HTF closes known (complete buckets among candles 0 … t−1):
* trades only when K >= max(N, T) (N = ma_period, T = trend_period, both in HTF candles);
* `m` = fresh mean (spec SMA arithmetic) of the last N HTF closes; levels `P_i = m·f_i` as
  envelope_dca; take-profit `m`; stop and sizing as envelope_dca;
* gate: `tr` = fresh mean of the last T HTF closes, `x` = the last HTF close; long open when
  `x > tr`, short open when `x < tr` (strict).
No look-ahead by construction: an unfinished bucket is never complete in the history.
"""

from __future__ import annotations

from core.model.sides import LONG, SHORT
from core.strategies.base import CandleHistory, ParamError
from core.strategies.grid_common import FamilyGrid, envelope_factors, fresh_mean
from core.strategies.params import GridMtfParams

HOUR_MS = 3_600_000


def htf_geometry(htf_hours: int, timeframe: str | None) -> tuple[int, int]:
    """(H, B): the HTF and base timeframe lengths in ms.

    Raises:
        ParamError: no timeframe, or H is not a whole multiple > 1 of B.
    """
    from core.data.timeframes import timeframe_ms

    if not timeframe:
        raise ParamError("grid_mtf needs the candles' timeframe (bind_market) to build HTF candles")
    b = timeframe_ms(timeframe)
    h = int(htf_hours) * HOUR_MS
    if h <= b or h % b:
        raise ParamError(f"grid_mtf: htf_hours={htf_hours} is not a whole multiple (> 1) of the "
                         f"base timeframe {timeframe}")
    return h, b


class GridMtf(FamilyGrid):
    """grid_mtf, long side (see the module docstring).

    Args:
        params: the envelope's five plus htf_hours, trend_period (`GridMtfParams`).
    Raises:
        ParamError: a parameter is unknown or invalid.
        ParamError: (also at `bind_market`) the HTF is not a multiple of the base timeframe.
        RuntimeError: `on_candle_open` before `bind_market` (no timeframe).
    """

    name = "grid_mtf"
    side = LONG
    MODEL = GridMtfParams

    def __init__(self, params: dict | None = None) -> None:
        super().__init__(params)
        self._n = int(self.params["ma_period"])
        self._tp = int(self.params["trend_period"])
        self._need = max(self._n, self._tp)
        self._factors = envelope_factors(self.side, self.params)
        self._h = 0
        self._b = 0
        self.htf_close: list[float] = []     # closes of the complete HTF candles seen, oldest first
        self._last_ts: int | None = None     # the newest base candle aggregated
        self._bucket = -1
        self._count = 0

    def bind_market(self, timeframe: str | None, funding=None) -> None:
        """Fix the base timeframe (HTF geometry, `htf_geometry`)."""
        self._h, self._b = htf_geometry(self.params["htf_hours"], timeframe)

    def _aggregate(self, history: CandleHistory) -> None:
        """Fold the base candles appended since the last call into the HTF closes."""
        ts = history.ts
        j = len(ts)
        last = self._last_ts
        if last is not None:
            while j > 0 and ts[j - 1] > last:
                j -= 1
        else:
            j = 0
        h, b = self._h, self._b
        ratio = h // b
        closes = history.close
        for k in range(j, len(ts)):
            t = ts[k]
            bucket = t - t % h
            if bucket != self._bucket:
                self._bucket = bucket
                self._count = 0
            self._count += 1
            if self._count == ratio and t + b == bucket + h:
                self.htf_close.append(closes[k])
            self._last_ts = t
        keep = 2 * self._need + 8
        if len(self.htf_close) > 4 * keep:
            del self.htf_close[:-keep]

    def on_candle_open(self, history: CandleHistory) -> bool:
        """Quote candle t = len(history) from the known HTF candles; False while K < max(N, T)."""
        if not self._h:
            raise RuntimeError(f"{self.name}: bind_market(timeframe) was not called")
        if history.ts:
            self._aggregate(history)
        hc = self.htf_close
        if len(hc) < self._need:
            return False
        m = fresh_mean(hc, self._n)
        self.take_profit = m
        lv = self.levels
        for i, f in enumerate(self._factors):
            lv[i] = m * f
        x = hc[-1]
        tr = fresh_mean(hc, self._tp)
        self.allow_new_cycle = x > tr if self.side == LONG else x < tr
        return True


class GridMtfShort(GridMtf):
    """grid_mtf_short: envelope short levels on the HTF SMA; new cycles only while the last
    HTF close is below its trend SMA."""

    name = "grid_mtf_short"
    side = SHORT
