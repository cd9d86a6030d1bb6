"""Alert rule "live vs paper divergence" (`core.alerts.rules.divergence`): a runner is compared with
a paper shadow of itself (same strategy, params and candles, on the simulated venue, with the
engine's paper account). Real BTC/USDT 1h candles: a runner whose venue charges 5x the fees
(the stand-in for a live venue that fills worse than paper) diverges and the alert fires; a
runner on the same venue as its shadow never does: one path, identical cycles."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from core.alerts.rules.divergence import ShadowDivergenceRule
from core.config.alert_rules import DivergenceRule
from core.model.account import Account
from tests.alerts.rule_replay import real_candles, replay

BTC_1H = "binance-spot/BTC_USDT-1h.json.gz"
SHADOW = {"divergence": {"shadow_paper": True, "pnl_within": 0.01, "cycles_within": 2}}


async def test_costlier_venue_diverges_from_its_paper_shadow_on_real_btc(tmp_path: Path) -> None:
    candles = real_candles(BTC_1H, 0, 3000)
    costly = Account(maker_fee=0.001, taker_fee=0.003)                  # 5x the paper fees

    def shadow_on_paper_fees(rules) -> None:
        rules.divergence.account = Account()                         # the shadow: risk.yaml's paper fees

    run = await replay(tmp_path / "d.db", candles, SHADOW, account=costly, setup=shadow_on_paper_fees)
    rows = run.keyed("rule.divergence:envelope_dca:BTC/USDT:1h")
    assert len(rows) == 1 and rows[0]["severity"] == "warning" and rows[0]["count"] == 1
    assert "paper shadow differ" in rows[0]["title"] and "Check fills, fees and slippage" in rows[0]["detail"]
    r = run.engine.runners[0]
    sh = run.rules.divergence.shadow_of(r)
    assert sh is not None and sh.n0 == 0
    assert len(r.cycles) == len(sh.runner.cycles) > 5                  # same trades ...
    live = sum(c.pnl for c in r.cycles)
    paper = sum(c.pnl for c in sh.runner.cycles)
    assert (paper - live) / 10_000.0 > 0.01                            # ... but the fees cost > 1 % of capital


async def test_same_venue_as_the_shadow_never_diverges_on_real_btc(tmp_path: Path) -> None:
    candles = real_candles(BTC_1H, 0, 3000)
    run = await replay(tmp_path / "s.db", candles, {"divergence": {"shadow_paper": True, "pnl_within": 0.0001,
                                                                   "cycles_within": 0}})
    assert run.keyed("rule.divergence:") == []
    r = run.engine.runners[0]
    sh = run.rules.divergence.shadow_of(r)
    assert sh is not None and len(sh.runner.cycles) == len(r.cycles) > 5
    for a, b in zip(r.cycles, sh.runner.cycles):                       # one path: the very same cycles
        assert abs(a.pnl - b.pnl) <= 1e-9 * max(1.0, abs(a.pnl))
        assert (a.open_time, a.close_time, a.levels_filled, a.exit_reason) == \
            (b.open_time, b.close_time, b.levels_filled, b.exit_reason)


async def test_paper_runners_are_not_shadowed_by_default(tmp_path: Path) -> None:
    run = await replay(tmp_path / "p.db", real_candles(BTC_1H, 0, 300))
    assert run.rules.divergence.shadow_of(run.engine.runners[0]) is None
    rule = ShadowDivergenceRule(DivergenceRule())
    r = run.engine.runners[0]
    assert rule.wants(r) is False
    r.live = True                                                      # a live grid runner is shadowed
    assert rule.wants(r) is True
    assert rule.wants(SimpleNamespace(live=True)) is False             # not a grid runner (single-position)
