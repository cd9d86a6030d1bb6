"""Per-candle data-quality rules for a stream of closed candles (live or replay).

`CandleQualityGuard` is fed the closed candles of ONE (symbol, timeframe) in order,
one at a time, and returns what is wrong with each as `QualityFinding`s. It keeps
bounded state (the previous close, the zero-volume flag, the last `spike_window`
log returns), so it suits a live stream; `core.engine.candle_quality` turns its
findings into alerts. The rules and thresholds are those of `core.data.quality`
(`radar data check`), and on the same series it flags the same candles:

* open-gap spike (`OPEN_GAP_SPIKE`): |open_t / close_{t-1} - 1| > open_gap_min_jump
  while |close_t / close_{t-1} - 1| < open_gap_max_close_move (fractions; defaults
  `quality.OPEN_GAP_MIN_JUMP` 0.20 and `quality.OPEN_GAP_MAX_CLOSE_MOVE` 0.10), as
  `quality.find_open_gap_spikes` (same float expressions);
* price spike (`PRICE_SPIKE`): |ln close_t - ln close_{t-1}| > spike_k x the standard
  deviation (ddof 0) of the `spike_window` log returns before it, as
  `quality.find_spikes` (needs `spike_window` earlier returns; a flat window judges
  nothing);
* zero volume (`ZERO_VOLUME`): volume == 0, reported on the FIRST candle of a run of
  zero-volume candles only (`quality.zero_volume_runs` counts runs the same way);
* invalid OHLC (`INVALID_OHLC`): a value that is not finite, a price <= 0, a negative
  volume, high < low, or open/close outside [low, high] (the kinds of
  `core.data.validation`, which refuses such rows on import, so a stored series never
  has one; a stream can). An invalid candle is reported and otherwise ignored: the
  next candle is judged against the last valid one.

The "previous candle" is the previous one fed (across a gap in the data too, as the
batch rules). A candle whose open time is not after the last one fed (a re-delivery,
an out-of-order candle) is not judged again: `check` returns [] and counts it in
`skipped`. Times are ms UTC open times, prices quote currency.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone

from core.data.quality import (
    DEFAULT_SPIKE_K,
    DEFAULT_SPIKE_WINDOW,
    OPEN_GAP_MAX_CLOSE_MOVE,
    OPEN_GAP_MIN_JUMP,
    check_open_gap_params,
)

OPEN_GAP_SPIKE = "open_gap_spike"
PRICE_SPIKE = "price_spike"
ZERO_VOLUME = "zero_volume"
INVALID_OHLC = "invalid_ohlc"

#: Finding kinds, in the order `check` reports them for one candle.
KINDS = (INVALID_OHLC, OPEN_GAP_SPIKE, PRICE_SPIKE, ZERO_VOLUME)
#: The rule of each kind in words (alert titles).
LABELS = {
    INVALID_OHLC: "invalid OHLC",
    OPEN_GAP_SPIKE: "open-gap spike",
    PRICE_SPIKE: "price spike",
    ZERO_VOLUME: "zero volume",
}


def fmt_utc(ts_ms: int) -> str:
    """`YYYY-MM-DD HH:MM UTC` of a ms UTC timestamp (the raw number when out of range)."""
    try:
        return datetime.fromtimestamp(ts_ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    except (OverflowError, OSError, ValueError):
        return f"{ts_ms} ms"


@dataclass(frozen=True, slots=True)
class QualityFinding:
    """One rule a closed candle broke.

    Attributes:
        kind: one of `KINDS` (e.g. "open_gap_spike").
        symbol, timeframe: the series, as given to the guard.
        ts: the candle's open time, ms UTC.
        detail: the prices (quote currency) and the rule, for an operator.
    """

    kind: str
    symbol: str
    timeframe: str
    ts: int
    detail: str

    @property
    def label(self) -> str:
        """The rule in words, e.g. "open-gap spike"."""
        return LABELS.get(self.kind, self.kind)


class CandleQualityGuard:
    """The per-candle quality rules for one (symbol, timeframe) stream (see the module docstring).

    Args:
        symbol, timeframe: the series (copied into the findings).
        open_gap_min_jump, open_gap_max_close_move: open-gap spike thresholds, fractions
            (0.20 = 20 %), 0 < max_close_move < min_jump.
        spike_k, spike_window: price-spike rule as `quality.find_spikes`; spike_k None
            turns the rule off.
        zero_volume: False turns the zero-volume rule off.

    Raises:
        ValueError: bad thresholds (naming them).
    """

    __slots__ = ("_prev_close", "_prev_log", "_prev_ts", "_r", "_r2", "_zero_run", "judged", "last_ts",
                 "max_close_move", "min_jump", "skipped", "spike_k", "spike_window", "symbol", "timeframe",
                 "zero_volume")

    def __init__(self, symbol: str = "", timeframe: str = "", *,
                 open_gap_min_jump: float = OPEN_GAP_MIN_JUMP,
                 open_gap_max_close_move: float = OPEN_GAP_MAX_CLOSE_MOVE,
                 spike_k: float | None = DEFAULT_SPIKE_K, spike_window: int = DEFAULT_SPIKE_WINDOW,
                 zero_volume: bool = True) -> None:
        check_open_gap_params(open_gap_min_jump, open_gap_max_close_move)
        if spike_k is not None and (not spike_k > 0 or spike_window < 2):
            raise ValueError(f"spike k must be > 0 and window >= 2, got k={spike_k}, window={spike_window}")
        self.symbol = symbol
        self.timeframe = timeframe
        self.min_jump = float(open_gap_min_jump)
        self.max_close_move = float(open_gap_max_close_move)
        self.spike_k = None if spike_k is None else float(spike_k)
        self.spike_window = int(spike_window)
        self.zero_volume = zero_volume
        self.last_ts: int | None = None      # open time of the last candle fed (valid or not), ms UTC
        self.judged = 0                      # candles judged
        self.skipped = 0                     # candles not after last_ts, not judged
        self._prev_ts: int | None = None     # the last VALID candle: open time, close, ln(close)
        self._prev_close = 0.0
        self._prev_log = 0.0
        self._zero_run = False
        self._r: deque[float] = deque(maxlen=self.spike_window)    # the last spike_window log returns
        self._r2: deque[float] = deque(maxlen=self.spike_window)   # and their squares

    def check(self, ts: int, o: float, h: float, l: float, c: float, v: float) -> list[QualityFinding]:
        """Judge the next closed candle: open time `ts` (ms UTC), prices (quote currency), volume (base).

        Returns:
            the findings for this candle, in `KINDS` order; [] for a good candle and for a
            candle whose `ts` is not after the last one fed.
        """
        last = self.last_ts
        if last is not None and ts <= last:
            self.skipped += 1
            return []
        self.last_ts = ts
        self.judged += 1
        bad = _invalid(o, h, l, c, v)
        if bad:
            return [self._finding(INVALID_OHLC, ts, f"{_ohlcv(o, h, l, c, v)}: {bad} (the candle is not used "
                                                    "as the previous one of the next)")]
        out: list[QualityFinding] | None = None
        pc = self._prev_close
        if self._prev_ts is not None:
            jump = o / pc - 1.0              # the expressions of quality.find_open_gap_spikes
            move = c / pc - 1.0
            if abs(jump) > self.min_jump and abs(move) < self.max_close_move:
                out = [self._finding(OPEN_GAP_SPIKE, ts, (
                    f"open {o:.8g} is {jump:+.1%} from the previous close {pc:.8g} (candle of "
                    f"{fmt_utc(self._prev_ts)}) while the close {c:.8g} is {move:+.1%} from it: a bad open "
                    f"print, not a market gap (rule: |open/prev close - 1| > {self.min_jump:.0%} and "
                    f"|close/prev close - 1| < {self.max_close_move:.0%})"))]
            log_c = math.log(c)
            if self.spike_k is not None:
                r = log_c - self._prev_log   # as np.diff(np.log(close))
                rr = self._r
                if len(rr) == self.spike_window:
                    w = self.spike_window
                    var = sum(self._r2) / w - (sum(rr) / w) ** 2
                    sigma = math.sqrt(var) if var > 0.0 else 0.0
                    if sigma > 0.0 and abs(r) > self.spike_k * sigma:
                        f = self._finding(PRICE_SPIKE, ts, (
                            f"close {c:.8g} after {pc:.8g}: log return {r:+.4f} is {abs(r) / sigma:.1f} x sigma "
                            f"{sigma:.4f} of the previous {w} (rule: > {self.spike_k:g} x sigma)"))
                        out = [f] if out is None else out + [f]
                rr.append(r)
                self._r2.append(r * r)
        else:
            log_c = math.log(c)
        self._prev_ts = ts
        self._prev_close = c
        self._prev_log = log_c
        if self.zero_volume:
            zero = v == 0
            if zero and not self._zero_run:
                f = self._finding(ZERO_VOLUME, ts, f"{_ohlcv(o, h, l, c, v)}: no volume traded (first candle of "
                                                   "a zero-volume run; the rest of the run is not reported)")
                out = [f] if out is None else out + [f]
            self._zero_run = zero
        return out or []

    def _finding(self, kind: str, ts: int, detail: str) -> QualityFinding:
        return QualityFinding(kind, self.symbol, self.timeframe, ts, detail)


def _ohlcv(o: float, h: float, l: float, c: float, v: float) -> str:
    return f"O {o:.8g} H {h:.8g} L {l:.8g} C {c:.8g} V {v:.8g}"


def _invalid(o: float, h: float, l: float, c: float, v: float) -> str:
    """What makes a candle invalid ("" when nothing does), in the words of `core.data.validation`."""
    if not (math.isfinite(o) and math.isfinite(h) and math.isfinite(l) and math.isfinite(c) and math.isfinite(v)):
        return "NaN/null/inf value"
    reasons = []
    positive = o > 0 and h > 0 and l > 0 and c > 0
    if not positive:
        reasons.append("non-positive price")
    if v < 0:
        reasons.append("negative volume")
    if h < l:
        reasons.append("high < low")
    elif positive and not (l <= o <= h and l <= c <= h):
        reasons.append("open/close outside [low, high]")
    return ", ".join(reasons)
