"""Selection transparency (issue 13, finding 3): counts, ties broken by mean OOS rank, the applied
combo judged on the windows from its first choice on."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from core.optimize.walk_forward import _desc_ranks, _selection, annualised_sharpe


def _runner(oos_sharpes: list[list[float]], returns: dict[tuple[int, int], np.ndarray]):
    oos = [{f: SimpleNamespace(sharpe=s, returns=returns[(w, f)], ret=float(np.prod(1 + returns[(w, f)]) - 1))
            for f, s in enumerate(row)} for w, row in enumerate(oos_sharpes)]
    return SimpleNamespace(oos=oos, params=lambda f: {"combo": f})


def test_desc_ranks_share_ties_within_tolerance() -> None:
    r = _desc_ranks(np.array([1.0, 3.0, 3.0 + 1e-16, 2.0]))
    np.testing.assert_array_equal(r, [4.0, 1.5, 1.5, 3.0])


def test_tie_broken_by_best_mean_oos_rank_and_judged_from_first_choice() -> None:
    rng = np.random.default_rng(0)
    n_w, uni = 6, [0, 1, 2]
    returns = {(w, f): 0.01 * rng.standard_normal(10) + 0.001 * f for w in range(n_w) for f in uni}
    # combo 2 has the best OOS Sharpe in every window: mean rank 1
    sharpes = [[0.1, 0.5, 0.9] for _ in range(n_w)]
    chosen = [0, 2, 0, 2, 1, 1]                          # 0 and 2 tie at 2 choices each; 1 too
    best, rep = _selection(_runner(sharpes, returns), list(range(n_w)), uni, chosen)
    assert best == 2
    assert [c["params"] for c in rep["chosen"]] == [{"combo": 2}, {"combo": 1}, {"combo": 0}]
    assert [c["times"] for c in rep["chosen"]] == [2, 2, 2]
    assert rep["tied"] == [{"combo": 2}, {"combo": 1}, {"combo": 0}]
    assert rep["chosen"][0]["mean_oos_rank"] == 1.0 and rep["chosen"][0]["windows"] == [1, 3]
    a = rep["applied"]
    assert a["first_window"] == 1 and a["judged_windows"] == 5
    expect = annualised_sharpe(np.concatenate([returns[(w, 2)] for w in range(1, n_w)]))
    assert a["oos_sharpe"] == expect and a["oos_days"] == 50
    assert "mean OOS rank" in rep["rule"]


def test_no_tie_reports_no_tied_list() -> None:
    rng = np.random.default_rng(1)
    returns = {(w, f): 0.01 * rng.standard_normal(5) for w in range(3) for f in (0, 1)}
    best, rep = _selection(_runner([[0.2, 0.1]] * 3, returns), [0, 1, 2], [0, 1], [1, 1, 0])
    assert best == 1 and rep["tied"] == [] and rep["distinct_chosen"] == 2
    assert rep["applied"]["first_window"] == 0 and rep["applied"]["judged_windows"] == 3
