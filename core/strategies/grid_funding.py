"""grid_funding (long) and grid_funding_short: envelope levels, new cycles only at an extreme
perpetual funding rate (docs/grid_family.md).

Levels, take-profit, stop and sizing exactly as envelope_dca. The gate for candle t: `rate`
= the latest funding rate whose funding time is <= `ts[t−1] + tf` (the close of candle t−1,
which is candle t's open when there is no gap; tf = the candles' timeframe in ms; the funding
series is the one the `funding` strategy gets: ts ms UTC, rate per 8 h). Long open when
`rate < −funding_threshold`, short open when `rate > funding_threshold` (strict); no rate
known yet, no funding series at all, or a rate older than `MAX_RATE_AGE_MS` (two 8 h funding
intervals: the series stopped being updated, e.g. a live engine whose stored rates end at its
start): closed (fail closed: no new risk). Trades when t >= N.
Funding payments are not applied to the account (as envelope_dca and funding).
"""

from __future__ import annotations

import bisect
import logging

from core.model.sides import LONG, SHORT
from core.strategies.base import CandleHistory
from core.strategies.funding import MAX_RATE_AGE_MS
from core.strategies.grid_common import FamilyGrid, envelope_factors, fresh_mean
from core.strategies.params import GridFundingParams

log = logging.getLogger(__name__)



class GridFunding(FamilyGrid):
    """grid_funding, long side (see the module docstring).

    Args:
        params: the envelope's five plus funding_threshold (`GridFundingParams`).
    Raises:
        ParamError: a parameter is unknown or invalid.
    """

    name = "grid_funding"
    side = LONG
    MODEL = GridFundingParams
    NEEDS_FUNDING = True

    def __init__(self, params: dict | None = None) -> None:
        super().__init__(params)
        self._n = int(self.params["ma_period"])
        self._factors = envelope_factors(self.side, self.params)
        self._thr = float(self.params["funding_threshold"])
        self._tf_ms: int | None = None
        self._fts: list[int] = []
        self._rate: list[float] = []
        self._warned = False
        self._stale_warned = False
        self.rate = float("nan")

    def bind_market(self, timeframe: str | None, funding=None) -> None:
        """Keep the timeframe (ms) and the funding series (ts int64 ms UTC sorted, rate), or a live
        series (`live_series()` -> (times list, rates list) appended to in place, e.g.
        `core.data.funding_stream.FundingRecorder`: read in place, new rates seen at once)."""
        from core.data.timeframes import timeframe_ms

        self._tf_ms = timeframe_ms(timeframe) if timeframe else None
        if funding is not None and hasattr(funding, "live_series"):
            self._fts, self._rate = funding.live_series()
        elif funding is not None:
            self._fts = [int(x) for x in funding[0]]
            self._rate = [float(x) for x in funding[1]]

    def on_candle_open(self, history: CandleHistory) -> bool:
        """Quote candle t = len(history) and set the gate; False while t < N."""
        closes = history.close
        if len(closes) < self._n:
            return False
        m = fresh_mean(closes, self._n)
        self.take_profit = m
        lv = self.levels
        for i, f in enumerate(self._factors):
            lv[i] = m * f
        gate = False
        if self._tf_ms is None or not self._fts:
            if not self._warned:
                self._warned = True
                log.error("%s: no funding-rate series (or no timeframe) bound: no new cycle will start",
                          self.name)
        else:
            at = history.ts[-1] + self._tf_ms
            j = bisect.bisect_right(self._fts, at) - 1
            if j >= 0 and at - self._fts[j] <= MAX_RATE_AGE_MS:
                r = self._rate[j]
                self.rate = r
                self._stale_warned = False          # a live series was refreshed: warn again next time
                gate = r < -self._thr if self.side == LONG else r > self._thr
            elif j >= 0:
                self.rate = float("nan")
                if not self._stale_warned:
                    self._stale_warned = True
                    log.error("%s: the latest funding rate is %.1f h old at %d: no new cycle starts until a "
                              "fresh rate is known", self.name, (at - self._fts[j]) / 3_600_000, at)
        self.allow_new_cycle = gate
        return True


class GridFundingShort(GridFunding):
    """grid_funding_short: envelope short levels, new cycles only while funding > threshold."""

    name = "grid_funding_short"
    side = SHORT
