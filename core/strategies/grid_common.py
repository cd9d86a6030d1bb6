"""What the grid family (grid_atr, grid_rsi, grid_funding, grid_mtf) shares: parameter
checking, the whole-position stop and the exact scalar arithmetic of docs/grid_family.md.

Each strategy computes, from the closed candles 0 … t−1 only, candle t's take-profit `m`,
its level prices and its new-cycle gate (`GridStrategy.allow_new_cycle`); fills, the
intrabar path, ties and fees are the shared matching engine's (`core.venues.sim.matching`),
exactly as for envelope_dca (`../shared/specs/envelope_dca.md`).

The fast engine (`core.backtest.fast.grid_family`) computes the same per-candle values as
arrays with the same float64 operations in the same order (fresh sums oldest first), so
both engines agree to the bit.
"""

from __future__ import annotations

import math

from pydantic import ValidationError

from core.model.sides import LONG
from core.strategies.base import GridStrategy, ParamError


def fresh_mean(xs: list[float], n: int) -> float:
    """Mean of the last `n` values of `xs` as the spec fixes the SMA: a fresh float64 sum
    starting from 0.0, oldest first, divided by n (no rolling sum, no pairwise mean)."""
    acc = 0.0
    for x in xs[len(xs) - n:]:
        acc += x
    return acc / n


def true_range(h: float, lo: float, prev_close: float) -> float:
    """`max(H − L, |H − C_prev|, |L − C_prev|)` (Wilder 1978), price units."""
    return max(h - lo, abs(h - prev_close), abs(lo - prev_close))


def simple_atr(high: list[float], low: list[float], close: list[float], n: int) -> float:
    """Simple ATR known at the open of candle t = len(close): the fresh mean (`fresh_mean`
    order) of TR[t−n] … TR[t−1], TR[j] = `true_range(H_j, L_j, C_{j−1})`. Needs t >= n + 1."""
    t = len(close)
    acc = 0.0
    for j in range(t - n, t):
        acc += true_range(high[j], low[j], close[j - 1])
    return acc / n


def simple_rsi(close: list[float], n: int) -> float:
    """RSI (0-100) known at the open of candle t = len(close), with simple averages (Cutler's
    RSI): over the n changes d_j = C_j − C_{j−1}, j = t−n … t−1, `ag` = fresh mean of
    (d_j if d_j > 0 else 0), `al` = fresh mean of (−d_j if d_j < 0 else 0);
    RSI = 100·ag/(ag + al), 50 when ag + al = 0. Needs t >= n + 1.

    Source: Wilder 1978 (RSI = 100 − 100/(1 + RS) = 100·ag/(ag + al)), with SMA instead of
    Wilder smoothing (a window-local value: the same at any start of the data)."""
    t = len(close)
    g = 0.0
    lo = 0.0
    for j in range(t - n, t):
        d = close[j] - close[j - 1]
        g += d if d > 0.0 else 0.0
        lo += -d if d < 0.0 else 0.0
    ag = g / n
    al = lo / n
    den = ag + al
    return 100.0 * ag / den if den > 0.0 else 50.0


class FamilyGrid(GridStrategy):
    """Base of the grid family: params checked by `MODEL` (`core.strategies.params`), stop
    `A·(1 − p)` long / `A·(1 + p)` short after every fill (as envelope_dca), levels and
    take-profit NaN until quoted, the gate open.

    Raises:
        ParamError: a parameter is unknown or invalid (message names it).
    """

    MODEL: type = None  # type: ignore[assignment]

    def __init__(self, params: dict | None = None) -> None:
        try:
            model = self.MODEL(**dict(params or {}))
        except ValidationError as err:
            raise ParamError(f"{self.name}: {err}") from None
        except TypeError as err:
            raise ParamError(f"{self.name}: {err}") from None
        self.params = model.model_dump()
        self.num_levels = int(self.params["num_levels"])
        p = self.params["sl_percent"]
        self._stop_factor = 1.0 - p if self.side == LONG else 1.0 + p
        self.levels = [math.nan] * self.num_levels
        self.take_profit = math.nan
        self.allow_new_cycle = True

    def on_fill(self, level: int, price: float, qty: float, avg_entry: float) -> float:
        """New stop: `A·(1 − p)` long, `A·(1 + p)` short (A = `avg_entry`)."""
        return avg_entry * self._stop_factor


def envelope_factors(side: str, params: dict) -> list[float]:
    """The envelope's level factors f_i (P_i = m·f_i) of `params` (envelope_dca.level_factors)."""
    from core.strategies.envelope_dca import level_factors

    return level_factors(side, int(params["num_levels"]), float(params["envelope_start"]),
                         float(params["envelope_step"]))
