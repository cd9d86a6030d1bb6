"""envelope_dca (long) and envelope_dca_short: DCA levels around a simple moving average.

The rules, as `../shared/specs/envelope_dca.md` fixes them ("Per candle t"), with N =
ma_period, L = num_levels, s = envelope_start, d = envelope_step, p = sl_percent:

* Candle t trades only when t >= N (N earlier candles exist; gaps in time are not filled,
  the SMA is over the last N candles that exist).
* `m = sma[t−1]`: a fresh float64 sum of the N closes t−N … t−1 taken oldest first,
  starting from 0.0, divided by N (no rolling sum, no pairwise/numpy mean).
* `offset_i = s + i·d` (i = 0 … L−1, float64 exactly as written).
  Long level `P_i = m·(1 − offset_i)`; short level `P_i = m·(1 + u_i)`,
  `u_i = 1/(1 − offset_i) − 1`. Each factor is computed once; `P_i = m·factor_i` gives the
  same bits as evaluating the formula every candle.
* Take-profit price: `m` (re-quoted every candle; a TP can close below the average entry).
* Sizing: each level gets `E·λ/L` USDT, E the cash just before the cycle's first entry
  (the default `GridStrategy.cycle_notional`).
* Stop after every fill: long `S = A·(1 − p)`, short `S = A·(1 + p)`, A the average entry.

Which levels fill and when, the intrabar path, ties and fees are the matching engine's
(`core.venues.sim.matching`), also per the spec.
"""

from __future__ import annotations

import math
import numbers

from core.model.sides import LONG, SHORT
from core.strategies.base import CandleHistory, GridStrategy, ParamError

#: the spec's example parameters, also the model defaults of `core.strategies.params`
DEFAULT_PARAMS: dict = {"ma_period": 7, "num_levels": 3, "envelope_start": 0.05,
                        "envelope_step": 0.03, "sl_percent": 0.20}
INT_PARAMS = ("ma_period", "num_levels")
FLOAT_PARAMS = ("envelope_start", "envelope_step", "sl_percent")


def normalize_params(params: dict) -> dict:
    """The five parameters as a new dict (ints and floats), missing ones from `DEFAULT_PARAMS`.

    Rules (those of `core.strategies.params.EnvelopeDcaParams`): ma_period and num_levels
    integers >= 1 (an integral float such as 7.0 is accepted); envelope_start in (0, 1);
    envelope_step >= 0; sl_percent in (0, 1); envelope_start + (num_levels−1)·envelope_step < 1
    (the deepest long level stays above zero).

    Raises:
        ParamError: an unknown key, a non-number (or bool), a non-integral integer
            parameter, a non-finite number, or a rule above broken.
    """
    unknown = sorted(set(params) - set(DEFAULT_PARAMS))
    if unknown:
        raise ParamError(f"unknown parameter(s) {', '.join(map(repr, unknown))}; "
                         f"expected: {', '.join(DEFAULT_PARAMS)}")
    out: dict = {}
    for key, default in DEFAULT_PARAMS.items():
        value = params.get(key, default)
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            raise ParamError(f"{key} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise ParamError(f"{key} must be a finite number, got {value!r}")
        if key in INT_PARAMS:
            if int(value) != value:
                raise ParamError(f"{key} must be an integer, got {value!r}")
            out[key] = int(value)
        else:
            out[key] = float(value)
    for key in INT_PARAMS:
        if out[key] < 1:
            raise ParamError(f"{key} must be >= 1, got {out[key]}")
    if not 0.0 < out["envelope_start"] < 1.0:
        raise ParamError(f"envelope_start must be in (0, 1), got {out['envelope_start']!r}")
    if not out["envelope_step"] >= 0.0:
        raise ParamError(f"envelope_step must be >= 0, got {out['envelope_step']!r}")
    if not 0.0 < out["sl_percent"] < 1.0:
        raise ParamError(f"sl_percent must be in (0, 1), got {out['sl_percent']!r}")
    deepest = out["envelope_start"] + (out["num_levels"] - 1) * out["envelope_step"]
    if not deepest < 1.0:
        raise ParamError("envelope_start + (num_levels - 1) * envelope_step must be < 1, got "
                         f"{out['envelope_start']!r} + {out['num_levels'] - 1} * {out['envelope_step']!r} "
                         f"= {deepest!r}")
    return out


def level_factors(side: str, num_levels: int, start: float, step: float) -> list[float]:
    """Per level i, the factor f_i with `P_i = m·f_i`: long `1 − offset_i`, short `1 + u_i`.

    offset_i = start + i·step; u_i = 1/(1 − offset_i) − 1 (spec "Per candle t").
    """
    out = []
    for i in range(num_levels):
        off = start + i * step
        out.append(1.0 - off if side == LONG else 1.0 + (1.0 / (1.0 - off) - 1.0))
    return out


class EnvelopeDca(GridStrategy):
    """envelope_dca, long side: buy levels below the SMA, take profit at the SMA.

    Args:
        params: dict of ma_period, num_levels, envelope_start, envelope_step, sl_percent
            (missing keys take `DEFAULT_PARAMS`).

    Raises:
        ParamError: see `normalize_params`.
    """

    __slots__ = ("params", "num_levels", "levels", "take_profit", "_n", "_factors", "_stop_factor")

    name = "envelope_dca"
    side = LONG

    def __init__(self, params: dict | None = None) -> None:
        self.params = normalize_params(params or {})
        self.num_levels = self.params["num_levels"]
        self._n = self.params["ma_period"]
        self._factors = level_factors(self.side, self.num_levels, self.params["envelope_start"],
                                      self.params["envelope_step"])
        p = self.params["sl_percent"]
        self._stop_factor = 1.0 - p if self.side == LONG else 1.0 + p
        self.levels = [math.nan] * self.num_levels
        self.take_profit = math.nan

    def on_candle_open(self, history: CandleHistory) -> bool:
        """Levels `m·f_i` and take-profit `m` for candle t = len(history); False while t < N."""
        n = self._n
        closes = history.close
        if len(closes) < n:
            return False
        acc = 0.0
        for x in closes[-n:]:           # oldest first, a fresh sum (spec "Per candle t")
            acc += x
        m = acc / n
        self.take_profit = m
        lv = self.levels
        i = 0
        for f in self._factors:
            lv[i] = m * f
            i += 1
        return True

    def on_fill(self, level: int, price: float, qty: float, avg_entry: float) -> float:
        """New stop: `A·(1 − p)` long, `A·(1 + p)` short (A = `avg_entry`)."""
        return avg_entry * self._stop_factor


class EnvelopeDcaShort(EnvelopeDca):
    """envelope_dca_short: sell levels above the SMA (`P_i = m·(1 + u_i)`), take profit at the
    SMA, stop `A·(1 + p)`. Same parameters and errors as `EnvelopeDca`."""

    __slots__ = ()

    name = "envelope_dca_short"
    side = SHORT
