"""`core.data.aggregate.resample_candles`: whole UTC-aligned buckets only, OHLCV rule, refusals,
and agreement with the exchange's own coarser candles where the data agree."""

from __future__ import annotations

import numpy as np
import pytest

from core.backtest.loading import load_from_file
from core.data.aggregate import check_resample, resample_candles
from core.errors import DataError, UsageError
from core.model.candles import Candles
from tests.support.shared_data import shared_file

M5 = 300_000
H1 = 3_600_000


def _series(ts: list[int], tf: str = "5m") -> Candles:
    n = len(ts)
    o = np.arange(n, dtype=float) + 100.0
    rows = np.column_stack([np.asarray(ts, dtype=float), o, o + 0.5 + (np.arange(n) % 7), o - 1 - (np.arange(n) % 3),
                            o + 0.25, np.full(n, 2.0) + np.arange(n)])
    return Candles.from_rows("BTC/USDT:USDT", "futures", tf, rows)


def test_partial_first_last_and_gapped_buckets_are_dropped() -> None:
    t0 = 1_700_000_000_000 // H1 * H1                  # a whole UTC hour
    ts = [t0 - 2 * M5, t0 - M5]                          # the end of an hour: partial first bucket
    ts += [t0 + i * M5 for i in range(12)]               # hour 1: complete
    ts += [t0 + H1 + i * M5 for i in range(12) if i != 5]   # hour 2: one 5m candle missing
    ts += [t0 + 2 * H1 + i * M5 for i in range(12)]      # hour 3: complete
    ts += [t0 + 3 * H1 + i * M5 for i in range(4)]       # partial last bucket
    c = _series(ts)
    r = resample_candles(c, "1h")
    assert r.timeframe == "1h" and r.symbol == c.symbol and r.market == c.market
    assert r.ts.tolist() == [t0, t0 + 2 * H1]
    for k, start in enumerate((2, 2 + 12 + 11)):         # index of each kept bucket's first 5m candle
        sl = slice(start, start + 12)
        assert r.open[k] == c.open[start] and r.close[k] == c.close[start + 11]
        assert r.high[k] == c.high[sl].max() and r.low[k] == c.low[sl].min()
        assert r.volume[k] == pytest.approx(c.volume[sl].sum(), rel=1e-15)


def test_same_timeframe_is_unchanged_and_bad_targets_are_refused() -> None:
    c = _series([i * M5 for i in range(24)])
    assert resample_candles(c, "5m") is c
    with pytest.raises(UsageError, match=r"--timeframe 1m: the data holds 5m candles.*finer 1m"):
        resample_candles(c, "1m")
    with pytest.raises(UsageError, match=r"--timeframe 7m: 7m is not a whole multiple of the data's 5m"):
        resample_candles(c, "7m")
    with pytest.raises(UsageError, match=r"--replay-timeframe 7m"):
        check_resample("5m", "7m", flag="--replay-timeframe")
    off = _series([i * M5 + 60_000 for i in range(24)])
    with pytest.raises(DataError, match="does not open on the 5m grid"):
        resample_candles(off, "1h")


def test_daily_buckets_open_at_midnight_utc() -> None:
    day = 86_400_000
    t0 = 1_700_000_000_000 // day * day
    c = _series([t0 + i * H1 for i in range(-3, 48 + 5)], "1h")
    r = resample_candles(c, "1d")
    assert r.ts.tolist() == [t0, t0 + day]


@pytest.mark.parametrize("sym", ["BTC", "ETH"])
@pytest.mark.parametrize("tf", ["4h", "1d"])
def test_resampled_1h_equals_the_exchanges_own_candles(sym: str, tf: str) -> None:
    """Binance spot 1h resampled to 4h/1d equals Binance's own 4h/1d candles on the common
    buckets (OHLC exactly, volume to float rounding), except where the exchange's own files
    disagree with each other (one ETH 4h open)."""
    fine = load_from_file(shared_file(f"binance-spot/{sym}_USDT-1h.json.gz"))
    own = load_from_file(shared_file(f"binance-spot/{sym}_USDT-{tf}.json.gz"))
    r = resample_candles(fine, tf)
    common, ia, ib = np.intersect1d(r.ts, own.ts, return_indices=True)
    assert len(common) == len(r) > 0.97 * len(own)      # every kept bucket is one of the exchange's
    for f in ("high", "low", "close"):
        assert np.array_equal(getattr(r, f)[ia], getattr(own, f)[ib]), f
    assert int(np.sum(r.open[ia] != own.open[ib])) <= 1
    np.testing.assert_allclose(r.volume[ia], own.volume[ib], rtol=1e-12)
