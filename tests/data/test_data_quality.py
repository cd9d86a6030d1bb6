"""Gaps, zero-volume runs and spikes (core.data.quality)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.data.freqtrade import read_data_file
from core.data.quality import (
    Gap,
    ZeroVolumeRuns,
    check_candles,
    find_gaps,
    find_spikes,
    funding_gaps,
    infer_interval_ms,
    zero_volume_runs,
)
from core.model.candles import Candles
from tests.support.shared_data import shared_file

H = 3_600_000


def test_gaps_name_the_missing_open_times() -> None:
    ts = np.array([0, 1, 2, 5, 6, 10], dtype=np.int64) * H
    assert find_gaps(ts, H) == [Gap(3 * H, 4 * H, 2), Gap(7 * H, 9 * H, 3)]
    assert find_gaps(ts[:3], H) == []
    assert find_gaps(ts[:1], H) == []


@settings(max_examples=60, deadline=None)
@given(st.sets(st.integers(0, 400), min_size=2, max_size=120))
def test_gaps_account_for_every_missing_candle(slots: set[int]) -> None:
    ts = np.array(sorted(slots), dtype=np.int64) * H
    gaps = find_gaps(ts, H)
    present = set(ts.tolist())
    assert sum(g.missing for g in gaps) == (ts[-1] - ts[0]) // H + 1 - len(ts)
    for g in gaps:
        assert g.from_ms - H in present and g.to_ms + H in present
        assert (g.to_ms - g.from_ms) // H + 1 == g.missing
        assert not present & set(range(g.from_ms, g.to_ms + 1, H))


def test_funding_gaps_tolerate_a_few_ms_off_the_grid() -> None:
    p = 8 * H
    ts = np.array([0, p + 3, 2 * p - 2, 3 * p + 1, 5 * p + 4, 6 * p], dtype=np.int64)
    assert infer_interval_ms(ts) == p
    [gap] = funding_gaps(ts)
    assert gap.missing == 1 and gap.from_ms == 4 * p + 1


def test_zero_volume_runs() -> None:
    ts = np.arange(9, dtype=np.int64) * H
    vol = np.array([1, 0, 0, 1, 0, 1, 0, 0, 0], dtype=np.float64)
    assert zero_volume_runs(ts, vol) == ZeroVolumeRuns(runs=3, candles=6, longest=3, longest_from_ms=6 * H)
    assert zero_volume_runs(ts, np.ones(9)) == ZeroVolumeRuns(0, 0, 0, None)


def _closes(jump_at: int, jump: float, n: int = 120, a: float = 0.001) -> np.ndarray:
    """Closes whose log returns alternate +a/-a (sigma exactly a), with one return `jump` at candle `jump_at`."""
    r = np.where(np.arange(1, n) % 2 == 0, a, -a)
    r[jump_at - 1] = jump
    return 100.0 * np.exp(np.concatenate(([0.0], np.cumsum(r))))


def test_spike_is_judged_against_the_window_before_it() -> None:
    ts = np.arange(120, dtype=np.int64) * H
    [spike] = find_spikes(ts, _closes(80, 0.0085), k=8.0, window=48)
    assert spike.ts_ms == 80 * H
    assert spike.log_return == pytest.approx(0.0085)
    assert spike.sigma == pytest.approx(0.001)
    assert find_spikes(ts, _closes(80, 0.0075), k=8.0, window=48) == []
    assert find_spikes(ts, _closes(80, -0.0085), k=9.0, window=48) == []
    assert [s.ts_ms for s in find_spikes(ts, _closes(80, -0.0085), k=8.0, window=48)] == [80 * H]


def test_spike_needs_a_full_window_and_some_volatility() -> None:
    ts = np.arange(120, dtype=np.int64) * H
    assert find_spikes(ts, _closes(30, 0.05), k=8.0, window=48) == []          # only 29 returns before it
    assert [s.ts_ms for s in find_spikes(ts, _closes(30, 0.05), k=8.0, window=20)] == [30 * H]
    flat = np.full(120, 100.0)
    flat[90:] = 150.0
    assert find_spikes(ts, flat, k=8.0, window=48) == []                       # sigma 0 judges nothing
    with pytest.raises(ValueError):
        find_spikes(ts, flat, k=0.0)
    with pytest.raises(ValueError):
        find_spikes(ts, flat, window=1)


def test_check_candles_on_a_small_series() -> None:
    ts = np.array([0, 1, 2, 4, 5], dtype=np.int64) * H
    c = Candles("X/USDT", "spot", "1h", ts, *(np.full(5, 1.0) for _ in range(4)), np.array([1.0, 0, 0, 1, 1]))
    q = check_candles(c)
    assert (q.rows, q.first_ms, q.last_ms, q.missing) == (5, 0, 5 * H, 1)
    assert q.gaps == [Gap(3 * H, 3 * H, 1)]
    assert q.zero_volume == ZeroVolumeRuns(1, 2, 2, H)
    d = q.to_dict()
    assert d["gaps"] == {"count": 1, "missing": 1, "ranges": [{"from_ms": 3 * H, "to_ms": 3 * H, "missing": 1}]}
    assert d["spikes"] == {"k": 8.0, "window": 48, "count": 0, "at": []}


def test_real_btc_hourly_has_27_gaps() -> None:
    _, candles = read_data_file(shared_file("binance-spot/BTC_USDT-1h.json.gz"))
    q = check_candles(candles)
    assert len(q.gaps) == 27
    assert q.missing == (1_665_482_400_000 - 1_502_942_400_000) // H + 1 - 45_024 == 127
    assert q.gaps[0] == Gap(1_504_717_200_000, 1_504_735_200_000, 6)   # 2017-09-06 17:00 .. 22:00 UTC
    assert q.zero_volume.runs == 3
