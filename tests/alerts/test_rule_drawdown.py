"""Alert rule "drawdown warning" (`core.alerts.rules.drawdown`): on real LINK/USDT 4h candles the
warning (75 % of risk.yaml max_drawdown) is raised before the kill switch trips; below the
threshold it never fires; it fires once per episode (hysteresis)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from core.alerts.rules.drawdown import ACCOUNT_KEY, DrawdownWarnRule
from core.config import load_config
from core.config.alert_rules import DrawdownRule
from core.paths import DEFAULT_CONFIG_DIR
from tests.alerts.rule_replay import real_candles, replay

LINK_4H = "binance-spot/LINK_USDT-4h.json.gz"
BTC_1H = "binance-spot/BTC_USDT-1h.json.gz"


async def test_drawdown_warning_before_the_kill_switch_on_real_link(tmp_path: Path) -> None:
    """LINK/USDT 4h (2019-2020): envelope_dca's drawdown passes 15 % at candle 73 and 20 % (the
    kill switch) much later. risk.yaml's other limits are moved out of the way (daily loss,
    notional caps) so the drawdown limit is the one that trips."""
    base = load_config(DEFAULT_CONFIG_DIR).risk
    assert base.limits.max_drawdown == 0.20
    limits = base.limits.model_copy(update={"daily_loss_limit": 0.9, "max_notional_per_symbol": 1e9,
                                            "max_total_notional": 1e9})
    risk = base.model_copy(update={"limits": limits})
    candles = real_candles(LINK_4H, 0, 2600)
    trip: list[int] = []

    def kill_watch(r, ts, *candle):
        eng = r.kill
        if eng.active and not trip:
            trip.append(ts)

    run = await replay(tmp_path / "d.db", candles, risk_config=risk, hooks=(kill_watch,))
    assert trip, "the kill switch should trip on this slice"
    runner = run.keyed("rule.drawdown:envelope_dca:LINK/USDT:4h")
    account = run.keyed(ACCOUNT_KEY)
    assert runner and account
    for row in runner + account:
        assert row["severity"] == "warning" and row["source"] == "rules" and row["count"] == 1
        assert "(warning at 15.00%)" in row["title"]
        assert "limits.max_drawdown 20.00% trips the kill switch" in row["detail"]
    assert all(row["state"] == "resolved" for row in runner[:-1] + account[:-1])
    assert runner[-1]["state"] == account[-1]["state"] == "active"       # still in the drawdown at the end
    for key in ("rule.drawdown:envelope_dca:LINK/USDT:4h", ACCOUNT_KEY):
        before = [(ts, a.severity) for ts, a in run.actions(key) if ts < trip[0]]
        assert before and before[-1][1] == "warning", (key, before, trip)   # warned in the episode that tripped
        print(f"\n{key}: warned {(trip[0] - before[-1][0]) / 3_600_000:.0f} h before the kill switch tripped")


async def test_drawdown_below_the_warning_never_fires(tmp_path: Path) -> None:
    """BTC 1h, the first 3,000 candles: the runner's drawdown stays below 10 %."""
    candles = real_candles(BTC_1H, 0, 3000)
    worst = [0.0]
    peak = [0.0]

    def dd(r, ts, *candle):
        peak[0] = max(peak[0], r.equity_last)
        worst[0] = max(worst[0], (peak[0] - r.equity_last) / peak[0])

    run = await replay(tmp_path / "b.db", candles, {"drawdown": {"warn_drawdown": 0.10, "rearm_band": 0.02}},
                       max_drawdown=0.20, hooks=(dd,))
    assert 0.02 < worst[0] < 0.10
    assert run.keyed("rule.drawdown:") == []
    # the same candles with a warning level under the worst drawdown do fire
    low = await replay(tmp_path / "c.db", candles, {"drawdown": {"warn_drawdown": worst[0] - 0.005,
                                                                 "rearm_band": 0.01}}, max_drawdown=0.20)
    assert len(low.keyed("rule.drawdown:envelope_dca:BTC/USDT:1h")) >= 1


def test_drawdown_fires_once_per_episode() -> None:
    rule = DrawdownWarnRule(DrawdownRule(warn_ratio=0.5, rearm_band=0.02, account=False), max_drawdown=0.20)
    assert rule.warn == 0.10
    r = SimpleNamespace(name="s", symbol="X/USDT", timeframe="1h", equity_last=100.0)
    out = []
    # drawdowns: 0, 10 % (fires), 9 % and 10.5 % (inside the band: nothing), 7.9 % (resolved), 12 % (fires)
    for i, eq in enumerate([100.0, 90.0, 91.0, 89.5, 92.1, 88.0]):
        r.equity_last = eq
        out.append([a.severity for a in rule.evaluate(r, i)])
    assert out == [[], ["warning"], [], [], [None], ["warning"]]


def test_account_drawdown_uses_the_risk_managers_peak() -> None:
    rule = DrawdownWarnRule(DrawdownRule(per_runner=False), max_drawdown=0.20)
    risk = SimpleNamespace(drawdown=lambda: 0.16, last_equity=8400.0, state=SimpleNamespace(peak_equity=10_000.0))
    engine = SimpleNamespace(runners=[SimpleNamespace(equity_last=8400.0)], risk=risk)
    (a,) = rule.evaluate(SimpleNamespace(), 0, engine)
    assert a.key == ACCOUNT_KEY and a.severity == "warning" and "16.00%" in a.title and "10,000.00" in a.detail
