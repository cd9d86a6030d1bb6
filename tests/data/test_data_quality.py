"""Gaps, zero-volume runs, spikes and open-gap spikes (core.data.quality)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.data.freqtrade import read_data_file
from core.data.quality import (
    OPEN_GAP_MAX_CLOSE_MOVE,
    OPEN_GAP_MIN_JUMP,
    Gap,
    OpenGapSpike,
    ZeroVolumeRuns,
    check_candles,
    find_gaps,
    find_open_gap_spikes,
    find_spikes,
    funding_gaps,
    infer_interval_ms,
    zero_volume_runs,
)
from core.model.candles import Candles
from tests.support.shared_data import shared_candles_dir, shared_file

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
    assert d["open_gap_spikes"] == {"min_jump": 0.2, "max_close_move": 0.1, "count": 0, "at": []}


def test_real_btc_hourly_has_27_gaps() -> None:
    _, candles = read_data_file(shared_file("binance-spot/BTC_USDT-1h.json.gz"))
    q = check_candles(candles)
    assert len(q.gaps) == 27
    assert q.missing == (1_665_482_400_000 - 1_502_942_400_000) // H + 1 - 45_024 == 127
    assert q.gaps[0] == Gap(1_504_717_200_000, 1_504_735_200_000, 6)   # 2017-09-06 17:00 .. 22:00 UTC
    assert q.zero_volume.runs == 3


# --------------------------------------------------------------------------- open-gap spikes

ETH_BAD_OPEN_MS = 1_503_374_400_000          # 2017-08-22 04:00 UTC


def _flat(n: int = 10, price: float = 100.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ts, open, close of n candles opening and closing at `price` (open == previous close)."""
    return np.arange(n, dtype=np.int64) * H, np.full(n, price), np.full(n, price)


def test_open_gap_spike_is_an_isolated_open_not_a_real_gap_move() -> None:
    ts, o, c = _flat()
    o[4], c[4] = 130.0, 101.0          # open +30 % from the previous close, close back within 1 %: a bad print
    o[7], c[7] = 70.0, 99.0            # the same downwards
    [up, down] = find_open_gap_spikes(ts, o, c)
    assert up == OpenGapSpike(4 * H, 3 * H, 100.0, 130.0, 101.0, pytest.approx(0.30), pytest.approx(0.01))
    assert (down.ts_ms, down.open, down.jump, down.close_move) == (7 * H, 70.0, pytest.approx(-0.30),
                                                                   pytest.approx(-0.01))
    ts, o, c = _flat()
    o[4:], c[4:] = 130.0, 131.0        # a real gap move: open AND close far from the previous close
    o[7], c[7] = 130.0 * 0.7, 130.0 * 0.75
    assert find_open_gap_spikes(ts, o, c) == []


def test_open_gap_spike_thresholds_are_strict_fractions() -> None:
    ts, o, c = _flat()
    o[4], c[4] = 125.0, 109.0          # jump 25 %, close move 9 %
    assert [g.ts_ms for g in find_open_gap_spikes(ts, o, c)] == [4 * H]
    assert find_open_gap_spikes(ts, o, c, min_jump=0.26, max_close_move=0.10) == []     # jump not > 26 %
    assert find_open_gap_spikes(ts, o, c, min_jump=0.20, max_close_move=0.08) == []     # close moved >= 8 %
    assert find_open_gap_spikes(ts[:1], o[:1], c[:1]) == []                             # nothing before it
    for bad in ((0.2, 0.0), (0.1, 0.1), (0.1, 0.2), (float("nan"), 0.1), (float("inf"), 0.1)):
        with pytest.raises(ValueError, match="0 < max_close_move < min_jump"):
            find_open_gap_spikes(ts, o, c, *bad)


def test_open_gap_spike_judges_against_the_previous_row_across_a_gap() -> None:
    ts = np.array([0, 1, 5, 6], dtype=np.int64) * H
    o = np.array([100.0, 100.0, 60.0, 100.0])
    c = np.array([100.0, 100.0, 102.0, 100.0])
    [g] = find_open_gap_spikes(ts, o, c)
    assert (g.ts_ms, g.prev_ts_ms) == (5 * H, H)


def test_real_eth_hourly_bad_open_of_2017_08_22_is_flagged() -> None:
    """ETH/USDT 1h 2017-08-22 04:00 UTC opens at 144.21 after a close of 280.00 and closes at 287.00."""
    _, candles = read_data_file(shared_file("binance-spot/ETH_USDT-1h.json.gz"))
    q = check_candles(candles)
    [g] = q.open_gaps
    assert g == OpenGapSpike(ETH_BAD_OPEN_MS, ETH_BAD_OPEN_MS - H, 280.0, 144.21, 287.0,
                             pytest.approx(144.21 / 280 - 1), pytest.approx(287 / 280 - 1))
    assert (q.open_gap_min_jump, q.open_gap_max_close_move) == (OPEN_GAP_MIN_JUMP, OPEN_GAP_MAX_CLOSE_MOVE)
    d = q.to_dict()["open_gap_spikes"]
    assert d["count"] == 1 and d["at"][0]["ts_ms"] == ETH_BAD_OPEN_MS and d["at"][0]["open"] == 144.21
    # the 4h candle holding it has the same open (close move +7.3 %)
    _, four = read_data_file(shared_file("binance-spot/ETH_USDT-4h.json.gz"))
    assert [(x.ts_ms, x.open) for x in check_candles(four).open_gaps] == [(ETH_BAD_OPEN_MS, 144.21)]


def test_open_gap_rule_flags_nothing_else_in_the_real_files() -> None:
    """Over every shared spot file and the futures 5m files, only the ETH bad open is flagged
    (the largest genuine |open / previous close - 1| there is 8.2 %)."""
    base = shared_candles_dir()
    files = sorted((base / "binance-spot").glob("*.json.gz")) + sorted((base / "binance-futures").glob("*-5m-*.json.gz"))
    assert len(files) == 19
    flagged = {}
    for path in files:
        _, candles = read_data_file(path)
        hits = find_open_gap_spikes(candles.ts, candles.open, candles.close)
        if hits:
            flagged[path.name] = [h.ts_ms for h in hits]
    assert flagged == {"ETH_USDT-1h.json.gz": [ETH_BAD_OPEN_MS], "ETH_USDT-4h.json.gz": [ETH_BAD_OPEN_MS]}
