"""Window-batch tasks (core.optimize.campaign_batches): a run cut into search / dense / final tasks
equals the sequential `walk_forward` to the last bit, whatever the batch size or the order the
tasks finish in."""

from __future__ import annotations

import pickle
import random

import numpy as np
import pytest

from core.errors import UsageError
from core.optimize import campaign_batches as cb
from core.optimize.campaign import CampaignPlan, load_series, strategy_setups
from core.optimize.walk_forward import _OOS, walk_forward
from tests.support.shared_data import shared_file

#: 50 days of 1h candles, 20/10/10-day windows (3 windows), 12 LHS points: the universe grows
#: window by window (combos back-filled), 50 bootstrap sims.
SHORT = {"start_ms": 1_609_459_200_000, "end_ms": 1_609_459_200_000 + 50 * 86_400_000, "is_days": 20,
         "oos_days": 10, "step_days": 10, "max_points": 12, "n_boot": 50}
ARRAYS = ("combo_is_sharpe", "combo_is_return", "combo_oos_sharpe", "combo_oos_return", "combo_oos_consistency",
          "combo_oos_cycles", "combo_times_selected")


def _setup(strategy: str, base: str, **kw):
    plan = CampaignPlan.build([strategy], [{"symbol": f"{base}/USDT", "market": "spot",
                                            "file": str(shared_file(f"binance-spot/{base}_USDT-1h.json.gz"))}],
                              ["1h"], **{**SHORT, **kw})
    spec = plan.runs()[0]
    return spec, strategy_setups(plan)[strategy], plan.settings(), load_series(spec, plan.start_ms, plan.end_ms, None)


def _batched(spec, setup, settings, candles, size: int, shuffle: int | None = None):
    """The run through `RunSchedule` + `run_task` in this process; results pickled as between
    processes; with `shuffle`, ready tasks run in a seeded random order."""
    sched = cb.RunSchedule([spec], {spec.index: cb.count_windows(candles, settings)}, size)
    todo = sched.initial()
    rng = random.Random(shuffle)
    while todo:
        t = todo.pop(rng.randrange(len(todo)) if shuffle is not None else 0)
        out, secs = cb.run_task(spec, t.phase, (candles, None), setup, settings, t.windows, sched.extra(t),
                                sched.dense_handles[t.run])
        todo += sched.done(t, pickle.loads(pickle.dumps(out)), secs)
    assert sched.finished
    return sched.results[spec.index]


def _assert_same(ref, got) -> None:
    assert got.summary() == ref.summary()
    assert got.evaluations == ref.evaluations
    assert got.combos == ref.combos and got.windows == ref.windows and got.stability == ref.stability
    for name in ARRAYS:
        assert np.array_equal(getattr(got, name), getattr(ref, name)), name


@pytest.mark.parametrize("strategy, base, size, shuffle", [
    ("envelope_dca", "BTC", 1, None),
    ("envelope_dca", "ETH", 2, 7),
    ("momentum", "SOL", 2, 3),
])
def test_batched_run_equals_walk_forward(strategy, base, size, shuffle):
    spec, setup, settings, candles = _setup(strategy, base)
    ref = walk_forward(candles, strategy, setup.grid, base_params=setup.base_params, account=setup.account,
                       settings=settings, grading=setup.grading)
    assert len(ref.windows) == 3 and ref.n_combos > settings.max_points      # the universe grew by back-fill
    _assert_same(ref, _batched(spec, setup, settings, candles, size, shuffle))


def test_batches_split_windows_evenly_and_refuse_nonsense():
    assert [len(b) for b in cb.batches(10, 4)] in ([3, 4, 3], [4, 3, 3], [3, 3, 4])
    assert cb.batches(3, 4) == [(0, 1, 2)]
    assert cb.batches(28, 4) == [tuple(range(i, i + 4)) for i in range(0, 28, 4)]
    for n, k in ((17, 5), (10, 4), (1, 1), (9, 2)):
        got = cb.batches(n, k)
        assert sum(got, ()) == tuple(range(n)) and max(map(len, got)) <= k
        assert max(map(len, got)) - min(map(len, got)) <= 1
    with pytest.raises(UsageError, match="batch size"):
        cb.batches(5, 0)


def test_pack_oos_round_trips_every_field():
    d = {7: _OOS(np.array([0.1, -0.2]), 0.05, 1.5, 2, np.array([0.01, 0.02])),
         3: _OOS(np.array([0.0, 0.3]), -0.1, -0.5, 0, np.empty(0))}
    back = cb.unpack_oos(pickle.loads(pickle.dumps(cb.pack_oos(d))))
    assert list(back) == [7, 3]
    for k, v in d.items():
        b = back[k]
        assert (b.ret, b.sharpe, b.cycles) == (v.ret, v.sharpe, v.cycles)
        assert np.array_equal(b.returns, v.returns) and np.array_equal(b.cycle_returns, v.cycle_returns)
    assert cb.unpack_oos(cb.pack_oos({})) == {}


def test_a_data_range_shorter_than_one_window_is_refused_with_the_walk_forward_message():
    spec, setup, settings, candles = _setup("envelope_dca", "BTC", is_days=400)
    with pytest.raises(UsageError, match="410 days"):
        cb.count_windows(candles, settings)


def test_a_task_stops_between_windows_when_asked():
    spec, setup, settings, candles = _setup("envelope_dca", "BTC")
    with pytest.raises(cb.BatchCancelled):
        cb.run_task(spec, cb.SEARCH, (candles, None), setup, settings, (0, 1), None, should_stop=lambda: True)


def test_batched_funding_run_with_its_funding_history_equals_walk_forward():
    """`funding` walk-forwards on a perpetual with its funding-rate history (5m candles resampled to 1h)."""
    from core.optimize.campaign import load_funding

    path = shared_file("binance-futures/BTC_USDT_USDT-5m-futures.json.gz")
    plan = CampaignPlan.build(["funding"], [{"symbol": "BTC/USDT:USDT", "market": "futures", "file": str(path),
                                             "timeframe": "5m"}], ["1h"],
                              is_days=14, oos_days=7, step_days=7, max_points=12, n_boot=50)
    spec = plan.runs()[0]
    setup = strategy_setups(plan)["funding"]
    settings = plan.settings()
    candles = load_series(spec, None, None, None)
    funding = load_funding(spec, None)
    ref = walk_forward(candles, "funding", setup.grid, base_params=setup.base_params, account=setup.account,
                       settings=settings, grading=setup.grading, funding=funding)
    assert len(ref.windows) >= 2
    sched = cb.RunSchedule([spec], {0: cb.count_windows(candles, settings)}, 1)
    todo = sched.initial()
    while todo:
        t = todo.pop()                                               # last ready first
        out, secs = cb.run_task(spec, t.phase, (candles, funding), setup, settings, t.windows, sched.extra(t),
                                sched.dense_handles[0])
        todo += sched.done(t, pickle.loads(pickle.dumps(out)), secs)
    _assert_same(ref, sched.results[0])
