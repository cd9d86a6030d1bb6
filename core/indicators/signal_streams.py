"""Signal streams: the `SignalArrays` of the array-signal strategies (`ArraySignalStrategy`
in `core.backtest.single_driver`), one candle at a time, for a live single-position runner.

The strategies define their signals as whole-array functions, which the backtest computes
once over the series; recomputing them over the history at every candle would cost O(n²)
over a replay. A stream instead keeps incremental copies of the strategy's indicators
(`core.indicators.incremental`) that perform the SAME floating-point operations in the same
order as `core.indicators`, so its per-candle (sig, sref, tref) are bit-identical to the
arrays `prepare` computes. The stream's state round-trips through JSON (`state` / `load`),
so a restart resumes exactly however little history is reloaded.

`STREAMS` maps a registry name to its stream; `funding_lookup` turns a funding-rate series
into the `rate_at(ts)` the funding stream reads.
"""

from __future__ import annotations

import bisect
import math
from typing import Callable

from core.errors import RadarError
from core.indicators.incremental import Atr, Bollinger, Donchian, Ema, Rsi, Supertrend, Vwap

_NAN = math.nan
_isfinite = math.isfinite


class SignalStream:
    """The `SignalArrays` of one strategy, one candle at a time.

    `quote(ts)` gives (sig, sref, tref) for the candle opening at ts (ms UTC): the values the
    strategy's arrays hold at that candle's index. `push(ts, o, h, l, c, v)` then adds the
    closed candle. Values depend on the candles pushed so far only (plus, for funding, the
    funding series), never on where the arrays would end.
    """

    def __init__(self, p: dict) -> None:
        self.sig = 0
        self.sref = _NAN
        self.tref = _NAN

    def quote(self, ts: int) -> tuple[int, float, float]:
        return self.sig, self.sref, self.tref

    def push(self, ts: int, o: float, h: float, lo: float, c: float, v: float) -> None:
        raise NotImplementedError

    def state(self) -> dict:
        return {"out": [self.sig, self.sref, self.tref], **self._state()}

    def load(self, s: dict) -> None:
        self.sig, self.sref, self.tref = s["out"]
        self._load(s)

    def _state(self) -> dict:
        return {}

    def _load(self, s: dict) -> None:
        pass


class VwapRsiStream(SignalStream):
    """vwap_rsi: sig[t] from close, vwap and rsi at t−1 (`core.strategies.vwap_rsi`)."""

    def __init__(self, p: dict) -> None:
        super().__init__(p)
        self.vwap = Vwap(int(p["vwap_period"]))
        self.rsi = Rsi(int(p["rsi_period"]))
        self.oversold = float(p["rsi_oversold"])
        self.overbought = float(p["rsi_overbought"])

    def push(self, ts, o, h, lo, c, v) -> None:
        vw = self.vwap.update(h, lo, c, v)
        r = self.rsi.update(c)
        if c < vw and r <= self.oversold:
            self.sig = 1
        elif c > vw and r >= self.overbought:
            self.sig = -1
        else:
            self.sig = 0

    def _state(self) -> dict:
        return {"vwap": self.vwap.state(), "rsi": self.rsi.state()}

    def _load(self, s: dict) -> None:
        self.vwap.load(s["vwap"])
        self.rsi.load(s["rsi"])


class MomentumStream(SignalStream):
    """momentum: an EMA crossover on candle t−1; sref = tref = atr[t−1]."""

    def __init__(self, p: dict) -> None:
        super().__init__(p)
        self.fast = Ema(int(p["fast_ema"]))
        self.slow = Ema(int(p["slow_ema"]))
        self.atr = Atr(int(p["atr_period"]))
        self.ef1 = _NAN
        self.es1 = _NAN

    def push(self, ts, o, h, lo, c, v) -> None:
        ef = self.fast.update(c)
        es = self.slow.update(c)
        a = self.atr.update(h, lo, c)
        ef1 = self.ef1
        es1 = self.es1
        sig = 0
        if _isfinite(a) and _isfinite(ef) and _isfinite(es) and _isfinite(ef1) and _isfinite(es1):
            if ef > es and ef1 <= es1:
                sig = 1
            elif ef < es and ef1 >= es1:
                sig = -1
        self.sig = sig
        self.sref = self.tref = a
        self.ef1 = ef
        self.es1 = es

    def _state(self) -> dict:
        return {"fast": self.fast.state(), "slow": self.slow.state(), "atr": self.atr.state(),
                "prev": [self.ef1, self.es1]}

    def _load(self, s: dict) -> None:
        self.fast.load(s["fast"])
        self.slow.load(s["slow"])
        self.atr.load(s["atr"])
        self.ef1, self.es1 = s["prev"]


class BollingerMrStream(SignalStream):
    """bollinger_mr: close outside the bands at t−1; tref = middle[t−1]."""

    def __init__(self, p: dict) -> None:
        super().__init__(p)
        self.bb = Bollinger(int(p["bb_period"]), float(p["bb_std"]))

    def push(self, ts, o, h, lo, c, v) -> None:
        upper, middle, lower = self.bb.update(c)
        self.sig = 1 if c < lower else (-1 if c > upper else 0)
        self.tref = middle

    def _state(self) -> dict:
        return {"bb": self.bb.state()}

    def _load(self, s: dict) -> None:
        self.bb.load(s["bb"])


class DonchianBreakoutStream(SignalStream):
    """donchian_breakout: close[t−1] beyond the channel at t−2; sref = tref = atr[t−1]."""

    def __init__(self, p: dict) -> None:
        super().__init__(p)
        self.ch = Donchian(int(p["channel_period"]))
        self.atr = Atr(int(p["atr_period"]))
        self.up1 = _NAN
        self.lo1 = _NAN

    def push(self, ts, o, h, lo, c, v) -> None:
        upper, lower = self.ch.update(h, lo)
        a = self.atr.update(h, lo, c)
        ok = _isfinite(a)
        self.sig = 1 if ok and c > self.up1 else (-1 if ok and c < self.lo1 else 0)
        self.sref = self.tref = a
        self.up1 = upper
        self.lo1 = lower

    def _state(self) -> dict:
        return {"ch": self.ch.state(), "atr": self.atr.state(), "prev": [self.up1, self.lo1]}

    def _load(self, s: dict) -> None:
        self.ch.load(s["ch"])
        self.atr.load(s["atr"])
        self.up1, self.lo1 = s["prev"]


class SupertrendStream(SignalStream):
    """supertrend: a direction flip on candle t−1; sref = line[t−1]."""

    def __init__(self, p: dict) -> None:
        super().__init__(p)
        self.st = Supertrend(int(p["atr_period"]), float(p["multiplier"]))
        self.d1 = _NAN

    def push(self, ts, o, h, lo, c, v) -> None:
        line, d = self.st.update(h, lo, c)
        d1 = self.d1
        self.sig = 1 if d == 1.0 and d1 == -1.0 else (-1 if d == -1.0 and d1 == 1.0 else 0)
        self.sref = line
        self.d1 = d

    def _state(self) -> dict:
        return {"st": self.st.state(), "d1": self.d1}

    def _load(self, s: dict) -> None:
        self.st.load(s["st"])
        self.d1 = s["d1"]


class FundingStream(SignalStream):
    """funding: sig[t] from the latest funding rate at or before candle t's open (strict
    thresholds); the rate comes from `rate_at(ts)` (nan: none known)."""

    def __init__(self, p: dict, rate_at: Callable[[int], float]) -> None:
        super().__init__(p)
        self.thr = float(p["funding_threshold"])
        self.rate_at = rate_at

    def quote(self, ts: int) -> tuple[int, float, float]:
        r = self.rate_at(ts)
        thr = self.thr
        return (-1 if r > thr else (1 if r < -thr else 0)), _NAN, _NAN

    def push(self, ts, o, h, lo, c, v) -> None:
        pass


def funding_lookup(funding, max_age_ms: int | None = None) -> Callable[[int], float]:
    """`rate_at(ts_ms)` of a funding series `(ts, rate)` (ms UTC sorted, fraction per
    interval): the latest rate with funding time <= ts, nan when none or older than
    `max_age_ms` when given (as `core.strategies.funding.rate_at_open`). A callable is
    returned as it is. A live series (an object with `live_series()` -> (times list, rates
    list) it appends to, e.g. `core.data.funding_stream.FundingRecorder`) is read in place:
    rates appended later are seen, with the same lookup as a static pair."""
    if callable(funding):
        return funding
    if hasattr(funding, "live_series"):
        fts, rates = funding.live_series()
    else:
        fts = [int(x) for x in funding[0]]
        rates = [float(x) for x in funding[1]]
    if len(fts) != len(rates):
        raise RadarError(f"funding series: {len(fts)} times but {len(rates)} rates")

    def rate_at(ts: int) -> float:
        i = bisect.bisect_right(fts, ts) - 1
        if i < 0 or (max_age_ms is not None and ts - fts[i] > max_age_ms):
            return _NAN
        return rates[i]

    return rate_at


class LiquidationStream(SignalStream):
    """liquidation: sig[t] from the open interest at candle t's and candle t−n's open times
    (`oi_at(ts)`, nan: none known), the move close[t−1] − open[t−n] and atr[t−1]
    (`core.strategies.liquidation.cascade_signal`); sref = tref = atr[t−1]."""

    def __init__(self, p: dict, oi_at: Callable[[int], float]) -> None:
        super().__init__(p)
        self.n = int(p["oi_period"])
        self.thr = float(p["oi_drop_threshold"])
        self.k = float(p["move_atr"])
        self.atr = Atr(int(p["atr_period"]))
        self.oi_at = oi_at
        self.past: list[list] = []          # [ts, open] of the last n candles pushed, oldest first
        self.c1 = _NAN

    def quote(self, ts: int) -> tuple[int, float, float]:
        from core.strategies.liquidation import cascade_signal

        if len(self.past) < self.n:
            return 0, self.sref, self.tref
        ts_n, o_n = self.past[0]
        s = cascade_signal(self.oi_at(ts), self.oi_at(ts_n), self.c1 - o_n, self.sref, self.thr, self.k)
        return s, self.sref, self.tref

    def push(self, ts, o, h, lo, c, v) -> None:
        self.sref = self.tref = self.atr.update(h, lo, c)
        self.c1 = c
        self.past.append([ts, o])
        if len(self.past) > self.n:
            del self.past[0]

    def _state(self) -> dict:
        return {"atr": self.atr.state(), "past": self.past, "c1": self.c1}

    def _load(self, s: dict) -> None:
        self.atr.load(s["atr"])
        self.past = [list(x) for x in s["past"]]
        self.c1 = s["c1"]


#: registry name -> its stream (the strategy class must be the registry's own)
STREAMS: dict[str, type[SignalStream]] = {
    "vwap_rsi": VwapRsiStream,
    "momentum": MomentumStream,
    "bollinger_mr": BollingerMrStream,
    "donchian_breakout": DonchianBreakoutStream,
    "supertrend": SupertrendStream,
    "funding": FundingStream,
    "liquidation": LiquidationStream,
}
