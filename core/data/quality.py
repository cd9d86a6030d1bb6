"""Data-quality measures of a stored series: gaps, zero-volume runs, price spikes, open-gap spikes.

All functions are vectorised with numpy and take sorted int64 ms UTC open times.
They describe the data; none of them changes or refuses it. (Rows that are invalid
outright, e.g. high < low, never reach a stored series: `core.data.validation`
refuses them on import.) `core.data.candle_guard` applies the per-candle rules to a
stream, one closed candle at a time, with the same definitions.

Open-gap spike (`find_open_gap_spikes`): candle t's open is far from candle t-1's
close while t's close is back near that close, i.e. one bad print in the open
field, not a market that gapped. Rule, with prices in quote currency and the
thresholds as fractions (0.20 = 20 %):

    |open_t / close_{t-1} - 1| > OPEN_GAP_MIN_JUMP        (0.20)
    |close_t / close_{t-1} - 1| < OPEN_GAP_MAX_CLOSE_MOVE (0.10)

Source: the issue "radar data check also flags open-gap spikes" (the Binance
ETH/USDT 1h candle of 2017-08-22 04:00 UTC opens at 144.21 after a close of
280.00 and closes at 287.00: jump -48.5 %, close move +2.5 %; the 4h candle
holding it: jump -48.5 %, close move +7.3 %). Tuned on the shared Binance files
(spot 1d/4h/1h 2017-2022, USDT-M futures 5m and 1m 2025): the largest genuine
|open_t / close_{t-1} - 1| there is 8.2 % (ETH/USDT 1h 2017-08-22 06:00, a real
gap whose close moved +9.1 % too); 20 % leaves a wide margin on both sides and
flags that one bad open only (in the 1h and the 4h series). A crypto market trades
continuously, so an open normally equals the previous close to a tick or two.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from core.data.timeframes import timeframe_ms
from core.model.candles import Candles

DEFAULT_SPIKE_K = 8.0
DEFAULT_SPIKE_WINDOW = 48

#: Open-gap spike: least |open_t / close_{t-1} - 1| (fraction of the previous close, 0.20 = 20 %).
OPEN_GAP_MIN_JUMP = 0.20
#: Open-gap spike: most |close_t / close_{t-1} - 1| (fraction; the close "agrees" with the previous close).
OPEN_GAP_MAX_CLOSE_MOVE = 0.10


@dataclass(frozen=True)
class Gap:
    """A run of missing periods between two stored rows.

    Attributes:
        from_ms: open time (ms UTC) of the first missing period (previous row + interval).
        to_ms: open time (ms UTC) of the last missing period (next row - interval); inclusive.
        missing: number of missing periods (candles), >= 1.
    """

    from_ms: int
    to_ms: int
    missing: int


@dataclass(frozen=True)
class ZeroVolumeRuns:
    """Runs of consecutive candles with volume == 0.

    Attributes:
        runs: number of runs.
        candles: total zero-volume candles.
        longest: length (candles) of the longest run, 0 when there is none.
        longest_from_ms: open time of the longest run's first candle, None when there is none.
    """

    runs: int
    candles: int
    longest: int
    longest_from_ms: int | None


@dataclass(frozen=True)
class Spike:
    """A candle whose close-to-close log return is extreme for its recent past.

    Attributes:
        ts_ms: open time of the candle, ms UTC.
        log_return: ln(close / previous close).
        sigma: standard deviation (ddof=0) of the `window` log returns before it.
    """

    ts_ms: int
    log_return: float
    sigma: float


@dataclass(frozen=True)
class OpenGapSpike:
    """A candle whose open is far from the previous close while its close is not (see the module docstring).

    Attributes:
        ts_ms: open time of the candle, ms UTC.
        prev_ts_ms: open time of the previous row, ms UTC (not ts_ms - interval across a gap).
        prev_close: the previous row's close (quote currency).
        open: this candle's open (quote currency), the suspect print.
        close: this candle's close (quote currency).
        jump: open / prev_close - 1 (fraction, signed: -0.485 is 48.5 % below).
        close_move: close / prev_close - 1 (fraction, signed).
    """

    ts_ms: int
    prev_ts_ms: int
    prev_close: float
    open: float
    close: float
    jump: float
    close_move: float


@dataclass(frozen=True)
class SeriesQuality:
    """The quality report of one candle series (see `check_candles`)."""

    symbol: str
    market: str
    timeframe: str
    rows: int
    first_ms: int | None
    last_ms: int | None
    gaps: list[Gap]
    zero_volume: ZeroVolumeRuns
    spike_k: float
    spike_window: int
    spikes: list[Spike] = field(default_factory=list)
    open_gap_min_jump: float = OPEN_GAP_MIN_JUMP
    open_gap_max_close_move: float = OPEN_GAP_MAX_CLOSE_MOVE
    open_gaps: list[OpenGapSpike] = field(default_factory=list)

    @property
    def missing(self) -> int:
        """Total missing candles over all gaps."""
        return sum(g.missing for g in self.gaps)

    def to_dict(self) -> dict:
        """JSON-ready form (all times int ms UTC)."""
        return {
            "symbol": self.symbol, "market": self.market, "timeframe": self.timeframe,
            "rows": self.rows, "first_ms": self.first_ms, "last_ms": self.last_ms,
            "gaps": {"count": len(self.gaps), "missing": self.missing, "ranges": [asdict(g) for g in self.gaps]},
            "zero_volume": asdict(self.zero_volume),
            "spikes": {"k": self.spike_k, "window": self.spike_window, "count": len(self.spikes),
                       "at": [asdict(s) for s in self.spikes]},
            "open_gap_spikes": {"min_jump": self.open_gap_min_jump, "max_close_move": self.open_gap_max_close_move,
                                "count": len(self.open_gaps), "at": [asdict(g) for g in self.open_gaps]},
        }


def find_gaps(ts: np.ndarray, interval_ms: int, tolerance_ms: int = 0) -> list[Gap]:
    """Gaps in sorted open times `ts` (int64 ms, shape (n,)) of a series with period `interval_ms`.

    A gap is two consecutive rows more than `interval_ms + tolerance_ms` apart.
    With tolerance 0 (candles on a grid) `missing` is exact; with a tolerance
    (funding times a few ms off the grid) it is the rounded number of periods.
    """
    ts = np.asarray(ts, dtype=np.int64)
    if ts.shape[0] < 2:
        return []
    d = np.diff(ts)
    idx = np.flatnonzero(d > interval_ms + tolerance_ms)
    if tolerance_ms:
        missing = np.rint(d[idx] / interval_ms).astype(np.int64) - 1
    else:
        missing = d[idx] // interval_ms - (d[idx] % interval_ms == 0)
    prev = ts[idx]
    nxt = ts[idx + 1]
    return [
        Gap(int(p + interval_ms), int(n - interval_ms), max(int(m), 1))
        for p, n, m in zip(prev.tolist(), nxt.tolist(), missing.tolist())
    ]


def zero_volume_runs(ts: np.ndarray, volume: np.ndarray) -> ZeroVolumeRuns:
    """Runs of consecutive rows with `volume == 0` (arrays of shape (n,))."""
    zero = np.asarray(volume) == 0
    if not zero.any():
        return ZeroVolumeRuns(0, 0, 0, None)
    edges = np.diff(np.concatenate(([0], zero.astype(np.int8), [0])))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    lengths = ends - starts
    k = int(np.argmax(lengths))
    return ZeroVolumeRuns(int(starts.shape[0]), int(zero.sum()), int(lengths[k]), int(ts[starts[k]]))


def find_spikes(ts: np.ndarray, close: np.ndarray, k: float = DEFAULT_SPIKE_K,
                window: int = DEFAULT_SPIKE_WINDOW) -> list[Spike]:
    """Candles whose |log return| > k × sigma of the `window` log returns before it.

    Returns are taken between consecutive rows (across a gap too). A candle
    needs `window` earlier returns to be judged, and a window with sigma 0
    (flat prices) judges nothing. `ts`, `close`: shape (n,), close > 0.

    Raises:
        ValueError: k <= 0 or window < 2.
    """
    if k <= 0 or window < 2:
        raise ValueError(f"spike k must be > 0 and window >= 2, got k={k}, window={window}")
    close = np.asarray(close, dtype=np.float64)
    if close.shape[0] < window + 2:
        return []
    r = np.diff(np.log(close))                       # r[m] is the return of candle m + 1
    c1 = np.concatenate(([0.0], np.cumsum(r)))
    c2 = np.concatenate(([0.0], np.cumsum(r * r)))
    m = np.arange(window, r.shape[0])                # returns with a full window before them
    s1 = c1[m] - c1[m - window]
    s2 = c2[m] - c2[m - window]
    var = np.maximum(s2 / window - (s1 / window) ** 2, 0.0)
    sigma = np.sqrt(var)
    hit = (sigma > 0) & (np.abs(r[m]) > k * sigma)
    mm = m[hit]
    return [
        Spike(int(t), float(x), float(s))
        for t, x, s in zip(np.asarray(ts)[mm + 1].tolist(), r[mm].tolist(), sigma[hit].tolist())
    ]


def check_open_gap_params(min_jump: float, max_close_move: float) -> None:
    """Check open-gap spike thresholds (fractions): 0 < max_close_move < min_jump.

    `max_close_move < min_jump` is what makes a flagged open isolated: it is then
    farther from the previous close than the candle's own close is.

    Raises:
        ValueError: naming both values.
    """
    if not (0.0 < max_close_move < min_jump) or not np.isfinite(min_jump):
        raise ValueError(f"open-gap thresholds must satisfy 0 < max_close_move < min_jump (fractions), "
                         f"got min_jump={min_jump}, max_close_move={max_close_move}")


def find_open_gap_spikes(ts: np.ndarray, open_: np.ndarray, close: np.ndarray,
                         min_jump: float = OPEN_GAP_MIN_JUMP,
                         max_close_move: float = OPEN_GAP_MAX_CLOSE_MOVE) -> list[OpenGapSpike]:
    """Candles t with |open_t/close_{t-1} - 1| > min_jump and |close_t/close_{t-1} - 1| < max_close_move.

    The previous candle is the previous row (across a gap too, as `find_spikes`).
    `ts`: int64 ms UTC open times; `open_`, `close`: prices > 0 (quote currency),
    all shape (n,); thresholds are fractions (0.20 = 20 %). The first row is never
    judged (no previous close). `core.data.candle_guard.CandleQualityGuard` computes
    the same expressions one candle at a time, so both flag the same candles.

    Raises:
        ValueError: bad thresholds (see `check_open_gap_params`).
    """
    check_open_gap_params(min_jump, max_close_move)
    open_ = np.asarray(open_, dtype=np.float64)
    close = np.asarray(close, dtype=np.float64)
    if close.shape[0] < 2:
        return []
    prev = close[:-1]
    jump = open_[1:] / prev - 1.0
    move = close[1:] / prev - 1.0
    idx = np.flatnonzero((np.abs(jump) > min_jump) & (np.abs(move) < max_close_move))
    ts = np.asarray(ts, dtype=np.int64)
    return [
        OpenGapSpike(int(ts[i + 1]), int(ts[i]), float(prev[i]), float(open_[i + 1]), float(close[i + 1]),
                     float(jump[i]), float(move[i]))
        for i in idx.tolist()
    ]


def check_candles(candles: Candles, spike_k: float = DEFAULT_SPIKE_K,
                  spike_window: int = DEFAULT_SPIKE_WINDOW,
                  open_gap_min_jump: float = OPEN_GAP_MIN_JUMP,
                  open_gap_max_close_move: float = OPEN_GAP_MAX_CLOSE_MOVE) -> SeriesQuality:
    """Gaps, zero-volume runs, spikes and open-gap spikes of one candle series.

    Raises:
        ValueError: bad spike or open-gap parameters (see `find_spikes`, `check_open_gap_params`).
        DataError: the series' timeframe is unknown.
    """
    n = len(candles)
    return SeriesQuality(
        candles.symbol, candles.market, candles.timeframe, n,
        int(candles.ts[0]) if n else None, int(candles.ts[-1]) if n else None,
        find_gaps(candles.ts, timeframe_ms(candles.timeframe)),
        zero_volume_runs(candles.ts, candles.volume),
        spike_k, spike_window,
        find_spikes(candles.ts, candles.close, spike_k, spike_window),
        open_gap_min_jump, open_gap_max_close_move,
        find_open_gap_spikes(candles.ts, candles.open, candles.close, open_gap_min_jump, open_gap_max_close_move),
    )


def infer_interval_ms(ts: np.ndarray) -> int | None:
    """The usual spacing of sorted times `ts` (median difference, rounded to the minute), or None (< 2 rows)."""
    ts = np.asarray(ts, dtype=np.int64)
    if ts.shape[0] < 2:
        return None
    med = float(np.median(np.diff(ts)))
    return max(int(round(med / 60_000)) * 60_000, 60_000)


def funding_gaps(ts: np.ndarray) -> list[Gap]:
    """Gaps in funding times (reported a few ms off the grid): spacing > 1.5 × the usual interval."""
    interval = infer_interval_ms(ts)
    return [] if interval is None else find_gaps(ts, interval, interval // 2)
