"""grid_atr (long) and grid_atr_short: DCA levels at ATR multiples from the SMA (docs/grid_family.md).

With N = ma_period, A = atr_period, L = num_levels, s = start_atr, d = step_atr,
p = sl_percent, for candle t (only candles 0 … t−1 are read):

* trades only when t >= max(N, A + 1);
* `m` = the spec SMA of closes t−N … t−1 (`grid_common.fresh_mean`), the take-profit;
* `ATR` = simple ATR of TR[t−A] … TR[t−1] (`grid_common.simple_atr`);
* `off_i = s + i·d` (float64 as written); long `P_i = m − off_i·ATR`, short `P_i = m + off_i·ATR`;
* stop after every fill `A·(1 − p)` long / `A·(1 + p)` short; sizing E·λ/L; the gate is always open.
"""

from __future__ import annotations

from core.model.sides import LONG, SHORT
from core.strategies.base import CandleHistory
from core.strategies.grid_common import FamilyGrid, fresh_mean, simple_atr
from core.strategies.params import GridAtrParams


def atr_offsets(params: dict) -> list[float]:
    """`off_i = start_atr + i·step_atr`, i = 0 … num_levels−1 (ATR multiples)."""
    s, d = float(params["start_atr"]), float(params["step_atr"])
    return [s + i * d for i in range(int(params["num_levels"]))]


class GridAtr(FamilyGrid):
    """grid_atr, long side: buy levels `m − off_i·ATR`, take profit at the SMA `m`.

    Args:
        params: ma_period, atr_period, num_levels, start_atr, step_atr, sl_percent
            (`core.strategies.params.GridAtrParams`; missing ones take its defaults).
    Raises:
        ParamError: a parameter is unknown or invalid.
    """

    name = "grid_atr"
    side = LONG
    MODEL = GridAtrParams

    def __init__(self, params: dict | None = None) -> None:
        super().__init__(params)
        self._n = int(self.params["ma_period"])
        self._a = int(self.params["atr_period"])
        self._warm = max(self._n, self._a + 1)
        self._off = atr_offsets(self.params)

    def on_candle_open(self, history: CandleHistory) -> bool:
        """Quote candle t = len(history): `m`, levels; False while t < max(N, A + 1)."""
        closes = history.close
        if len(closes) < self._warm:
            return False
        m = fresh_mean(closes, self._n)
        atr = simple_atr(history.high, history.low, closes, self._a)
        self.take_profit = m
        lv = self.levels
        if self.side == LONG:
            for i, off in enumerate(self._off):
                lv[i] = m - off * atr
        else:
            for i, off in enumerate(self._off):
                lv[i] = m + off * atr
        return True


class GridAtrShort(GridAtr):
    """grid_atr_short: sell levels `m + off_i·ATR`, take profit at `m`, stop `A·(1 + p)`."""

    name = "grid_atr_short"
    side = SHORT
