"""`ArraySignalStrategy`: the base of the single-position strategies of `docs/single_position.md`.

Each strategy defines, as pure functions of its parameters and the candle arrays, per-candle
signal arrays indexed by the candle they act on (`SignalArrays`) and an exit model (stop and
take-profit modes: a fraction of the fill price, a multiple of the ATR at the entry candle, or
a line re-quoted every candle). The event backtest (`core.backtest.single_driver`) and the
engine's runner read them through the strategy API; the fast engine
(`core.backtest.fast.single_kernels`) feeds the same arrays to its numba kernel, so every
engine sees bit-identical signals and differs only in the matching code.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from pydantic import ValidationError

from core.model.candles import Candles
from core.model.sides import LONG, SHORT
from core.strategies.base import CandleHistory, EntryIntent, ParamError, SinglePositionStrategy

#: exit modes (for the stop and the take-profit): a fraction of the fill price, a multiple
#: of the reference value (ATR) at the entry candle, or a line re-quoted every candle
PCT = 0
ATR = 1
LINE = 2


class SignalArrays(NamedTuple):
    """Per-candle inputs of one strategy and one indicator parameter set, shape (n,) each,
    indexed by the candle t they act on (computed from candles 0 … t−1 only, plus, for
    `funding`, the funding rates known at candle t's open).

    sig: int8, +1 long entry, −1 short entry, 0 none.
    sref: float64, the stop's reference at candle t (ATR[t−1] for ATR mode, the stop line
        for LINE mode; unused for PCT). tref: the same for the take-profit.
    """

    sig: np.ndarray
    sref: np.ndarray
    tref: np.ndarray


def lagged(x: np.ndarray) -> np.ndarray:
    """x shifted one candle later: out[t] = x[t−1], out[0] = nan (float64, same shape)."""
    out = np.empty(x.shape[0])
    if x.shape[0]:
        out[0] = np.nan
        out[1:] = x[:-1]
    return out


def lag_signal(s: np.ndarray) -> np.ndarray:
    """int8 signals shifted one candle later: out[t] = s[t−1], out[0] = 0."""
    out = np.zeros(s.shape[0], dtype=np.int8)
    out[1:] = s[:-1]
    return out


def fixed_exit(mode: int, long: bool, is_stop: bool, x: float, param: float, ref: float) -> float:
    """A fixed exit price from the fill price x (docs "Exits"): PCT long stop x·(1−p), long TP
    x·(1+q) (short mirrored); ATR long stop x − k·ref, long TP x + k·ref (short mirrored)."""
    down = long == is_stop          # long stop and short TP lie below the fill
    if mode == PCT:
        return x * (1.0 - param) if down else x * (1.0 + param)
    d = param * ref
    return x - d if down else x + d


class ArraySignalStrategy(SinglePositionStrategy):
    """A single-position strategy whose signals and exit references are precomputed arrays.

    Subclasses set `name`, `MODEL` (the pydantic model of `core.strategies.params`),
    `STOP_MODE`, `TP_MODE` and implement `indicator_key`, `signal_arrays`, `exit_params`.
    Market entries only, size_fraction 1.

    The arrays are computed once over a whole series by `prepare` (the backtest); when the
    history is not a prefix of the prepared series (a live feed) they are recomputed from the
    history itself (every indicator is causal, so the values agree).
    """

    MODEL: type = None  # type: ignore[assignment]
    STOP_MODE = PCT
    TP_MODE = PCT
    NEEDS_FUNDING = False

    def __init__(self, params: dict | None = None) -> None:
        try:
            model = self.MODEL(**dict(params or {}))
        except ValidationError as err:
            raise ParamError(f"{self.name}: {err}") from None
        except TypeError as err:
            raise ParamError(f"{self.name}: {err}") from None
        self.params = model.model_dump()
        self.stop_param, self.tp_param, self.max_hold = self.exit_params(self.params)
        self.funding: tuple[np.ndarray, np.ndarray] | None = None
        self.clock_ms: int | None = None
        self._pre_ts: list[int] = []
        self._pre: tuple[list, list, list] | None = None
        self._side = LONG
        self._stop = math.nan
        self._tp = math.nan

    # ---------------------------------------------------------------- per strategy

    @classmethod
    def indicator_key(cls, p: dict) -> tuple:
        """The parameters the signal arrays depend on (combos sharing it share the arrays)."""
        raise NotImplementedError

    @classmethod
    def signal_arrays(cls, p: dict, ts, o, h, l, c, v, funding=None) -> SignalArrays:
        """The SignalArrays of params p on candle arrays (shape (n,) each)."""
        raise NotImplementedError

    @classmethod
    def exit_params(cls, p: dict) -> tuple[float, float, int]:
        """(stop parameter, take-profit parameter, max_hold candles or 0)."""
        raise NotImplementedError

    # ---------------------------------------------------------------- arrays

    def set_funding(self, ts: np.ndarray, rate: np.ndarray) -> None:
        """The funding series (ts int64 ms UTC, rate fraction per interval), sorted by ts."""
        self.funding = (np.asarray(ts, dtype=np.int64), np.asarray(rate, dtype=np.float64))

    def _compute(self, ts, o, h, l, c, v) -> SignalArrays:
        if self.NEEDS_FUNDING and self.funding is None:
            raise ParamError(f"{self.name}: needs a funding-rate series (funding=(ts, rate))")
        f = np.ascontiguousarray
        return self.signal_arrays(self.params, f(ts, dtype=np.int64), f(o, dtype=np.float64),
                                  f(h, dtype=np.float64), f(l, dtype=np.float64), f(c, dtype=np.float64),
                                  f(v, dtype=np.float64), self.funding)

    def prepare(self, candles: Candles) -> None:
        """Precompute the arrays over the whole series (the backtest's candles)."""
        a = self._compute(candles.ts, candles.open, candles.high, candles.low, candles.close, candles.volume)
        self._pre_ts = np.asarray(candles.ts, dtype=np.int64).tolist()
        self._pre = (a.sig.tolist(), a.sref.tolist(), a.tref.tolist())

    def _arrays(self, history: CandleHistory) -> tuple[int, tuple[list, list, list]]:
        """(t, arrays) with index t = len(history) valid for candle t."""
        t = len(history)
        pre = self._pre
        if pre is not None and t < len(self._pre_ts) and (t == 0 or self._pre_ts[t - 1] == history.ts[-1]):
            return t, pre
        # live: recompute on the history plus a placeholder candle t (its values are not read,
        # except its open time by `funding`: `clock_ms`, else the last spacing)
        if t == 0:
            return 0, ([0], [math.nan], [math.nan])
        nxt = self.clock_ms if self.clock_ms is not None else (
            history.ts[-1] + (history.ts[-1] - history.ts[-2] if t > 1 else 0))
        last = history.close[-1]
        vol = list(getattr(history, "volume", None) or [math.nan] * t)  # a driver keeping no volumes: nan
        a = self._compute(history.ts + [nxt], history.open + [last], history.high + [last],
                          history.low + [last], history.close + [last], vol + [0.0])
        return t, (a.sig.tolist(), a.sref.tolist(), a.tref.tolist())

    # ---------------------------------------------------------------- the strategy API

    def on_candle_open(self, history: CandleHistory) -> EntryIntent | None:
        """A market entry on candle t when sig[t] != 0 (its stop/take-profit are estimates from
        the last close; the real ones are set from the fill by `manage`)."""
        t, (sig, sref, tref) = self._arrays(history)
        s = sig[t]
        if s == 0:
            return None
        side = LONG if s > 0 else SHORT
        self._side = side
        ref = history.close[-1]
        stop = sref[t] if self.STOP_MODE == LINE else fixed_exit(self.STOP_MODE, s > 0, True, ref,
                                                                 self.stop_param, sref[t])
        tp = tref[t] if self.TP_MODE == LINE else fixed_exit(self.TP_MODE, s > 0, False, ref,
                                                             self.tp_param, tref[t])
        return EntryIntent(side, None, stop, tp)

    def on_fill(self, price: float, qty: float) -> None:
        self._stop = math.nan
        self._tp = math.nan

    def manage(self, history: CandleHistory, entry_price: float) -> tuple[float, float | None]:
        """(stop, take-profit) for candle t: fixed ones computed once, at the entry candle,
        from the fill price; LINE ones re-quoted from the arrays at t."""
        t, (_, sref, tref) = self._arrays(history)
        long = self._side == LONG
        if self.STOP_MODE == LINE:
            self._stop = sref[t]
        elif self._stop != self._stop:
            self._stop = fixed_exit(self.STOP_MODE, long, True, entry_price, self.stop_param, sref[t])
        if self.TP_MODE == LINE:
            self._tp = tref[t]
        elif self._tp != self._tp:
            self._tp = fixed_exit(self.TP_MODE, long, False, entry_price, self.tp_param, tref[t])
        return self._stop, self._tp

    def on_exit(self, reason: str, price: float) -> None:
        self._stop = math.nan
        self._tp = math.nan
