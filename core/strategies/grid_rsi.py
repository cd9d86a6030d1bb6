"""grid_rsi (long) and grid_rsi_short: envelope levels, new cycles only at an RSI extreme
(docs/grid_family.md).

Levels, take-profit, stop and sizing exactly as envelope_dca (`m` = spec SMA of N closes,
`P_i = m·f_i`). The new-cycle gate for candle t: the simple RSI of the R close-to-close
changes up to close t−1 (`grid_common.simple_rsi`): long open when RSI < rsi_oversold,
short open when RSI > rsi_overbought (strict). Trades only when t >= max(N, R + 1). Once a
cycle is open it runs to its end whatever the RSI (the gate only stops new cycles).
"""

from __future__ import annotations

from core.model.sides import LONG, SHORT
from core.strategies.base import CandleHistory
from core.strategies.grid_common import FamilyGrid, envelope_factors, fresh_mean, simple_rsi
from core.strategies.params import GridRsiParams


class GridRsi(FamilyGrid):
    """grid_rsi, long side (see the module docstring).

    Args:
        params: the envelope's five plus rsi_period, rsi_oversold, rsi_overbought
            (`core.strategies.params.GridRsiParams`).
    Raises:
        ParamError: a parameter is unknown or invalid.
    """

    name = "grid_rsi"
    side = LONG
    MODEL = GridRsiParams

    def __init__(self, params: dict | None = None) -> None:
        super().__init__(params)
        self._n = int(self.params["ma_period"])
        self._r = int(self.params["rsi_period"])
        self._warm = max(self._n, self._r + 1)
        self._factors = envelope_factors(self.side, self.params)
        self._oversold = float(self.params["rsi_oversold"])
        self._overbought = float(self.params["rsi_overbought"])
        self.rsi = float("nan")

    def on_candle_open(self, history: CandleHistory) -> bool:
        """Quote candle t = len(history) and set the gate; False while t < max(N, R + 1)."""
        closes = history.close
        if len(closes) < self._warm:
            return False
        m = fresh_mean(closes, self._n)
        self.take_profit = m
        lv = self.levels
        for i, f in enumerate(self._factors):
            lv[i] = m * f
        r = simple_rsi(closes, self._r)
        self.rsi = r
        self.allow_new_cycle = r < self._oversold if self.side == LONG else r > self._overbought
        return True


class GridRsiShort(GridRsi):
    """grid_rsi_short: envelope short levels, new cycles only while RSI > rsi_overbought."""

    name = "grid_rsi_short"
    side = SHORT
