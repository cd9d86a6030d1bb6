"""Alert rule "price near the next level / the stop" (`core.alerts.rules.near_price`): trips on a
replay of real BTC/USDT 1h candles, once per approach (hysteresis), never below its threshold."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from core.alerts.rules.near_price import NearPriceRule, next_level, position_stop
from core.config.alert_rules import NearPriceRule as NearPriceConfig
from tests.alerts.rule_replay import real_candles, replay

BTC_1H = "binance-spot/BTC_USDT-1h.json.gz"


def _distances(into: list, kind: str):
    """A candle hook recording the close's distance (fraction) to the next level or the stop."""

    def hook(r, ts, o, h, lo, c):
        target = next_level(r) if kind == "level" else position_stop(r)
        price = None if target is None else (target[1] if kind == "level" else target)
        into.append(None if price is None else abs(c - price) / c)

    return hook


async def test_near_level_fires_on_real_btc_once_per_approach(tmp_path: Path) -> None:
    candles = real_candles(BTC_1H, 0, 3000)
    dist: list = []
    run = await replay(tmp_path / "n.db", candles, hooks=(_distances(dist, "level"),))
    rows = run.keyed("rule.near_level:envelope_dca:BTC/USDT:1h")
    assert len(rows) >= 5, rows
    assert all(r["severity"] == "info" and r["count"] == 1 and r["source"] == "rules" for r in rows)
    assert all(r["state"] == "resolved" and r["changed_by"] == "rules" for r in rows[:-1])
    assert len(rows) <= sum(1 for d in dist if d is not None and d <= 0.02)
    for r in rows:
        pct = float(r["title"].split("price ")[1].split("%")[0])
        assert 0.0 <= pct <= 2.0 + 1e-9, r["title"]


async def test_hysteresis_on_real_btc_fewer_alerts_than_approach_candles(tmp_path: Path) -> None:
    """A wider zone (4 %): the close hovers in and out of it; with a 2 % re-arm band the rule
    raises fewer alerts than without one (band 0: every re-entry into the zone fires)."""
    candles = real_candles(BTC_1H, 0, 2000)
    counts = []
    for band in (0.0, 0.02):
        cfg = {"near_price": {"level_within": 0.04, "rearm_band": band}}
        run = await replay(tmp_path / f"h{band}.db", candles, cfg)
        counts.append(len(run.keyed("rule.near_level:")))
    no_band, with_band = counts
    assert 0 < with_band < no_band, counts
    print(f"\nnear_level within 4 %, 2,000 BTC 1h candles: {no_band} alerts without a band, {with_band} with 2 %")


async def test_near_price_below_threshold_never_fires(tmp_path: Path) -> None:
    """On these candles the close never came within 1.43 % of the next level nor 13.5 % of the stop."""
    candles = real_candles(BTC_1H, 0, 3000)
    lv: list = []
    st: list = []
    run = await replay(tmp_path / "q.db", candles, {"near_price": {"level_within": 0.014, "stop_within": 0.13}},
                       hooks=(_distances(lv, "level"), _distances(st, "stop")))
    assert min(d for d in lv if d is not None) > 0.014
    assert min(d for d in st if d is not None) > 0.13
    assert run.keyed("rule.near_") == []
    assert run.rules.raised == 0


async def test_near_stop_fires_on_real_btc(tmp_path: Path) -> None:
    candles = real_candles(BTC_1H, 0, 3000)
    st: list = []
    run = await replay(tmp_path / "s.db", candles, {"near_price": {"stop_within": 0.15, "rearm_band": 0.01}},
                       hooks=(_distances(st, "stop"),))
    rows = run.keyed("rule.near_stop:envelope_dca:BTC/USDT:1h")
    assert rows and all(r["severity"] == "warning" and r["count"] == 1 for r in rows)
    assert "from the stop" in rows[0]["title"] and "average entry" in rows[0]["detail"]
    assert len(rows) < sum(1 for d in st if d is not None and d <= 0.15)


# ------------------------------------------------------------------ hysteresis, step by step

def _runner(levels: list[float], filled: int = 0, stop: float | None = None) -> SimpleNamespace:
    r = SimpleNamespace(name="envelope_dca", symbol="BTC/USDT", timeframe="1h",
                        strategy=SimpleNamespace(levels=levels), book=SimpleNamespace(levels_filled=filled))
    r.position = lambda: {"qty": 1.0 if stop else 0.0, "stop": stop, "avg_entry": 100.0}
    return r


def test_hovering_at_the_threshold_fires_once_then_rearms_beyond_the_band() -> None:
    rule = NearPriceRule(NearPriceConfig(level_within=0.02, rearm_band=0.01))
    r = _runner([98.0, 95.0])
    got = []
    # distances to 98: 1.96 %, 2.1 %, 1.9 %, 2.9 % (inside the band), 1.5 %, 3.5 % (beyond), 1.9 %
    for i, close in enumerate([99.96, 100.1, 99.9, 100.93, 99.5, 101.56, 99.9]):
        got.append([(a.key.split(":")[0], a.severity) for a in rule.evaluate(r, i, close)])
    assert got == [[("rule.near_level", "info")], [], [], [], [], [("rule.near_level", None)],
                   [("rule.near_level", "info")]]


def test_a_filled_level_ends_the_approach_and_the_next_can_fire() -> None:
    rule = NearPriceRule(NearPriceConfig(level_within=0.02, rearm_band=0.01))
    r = _runner([98.0, 97.0])
    assert [a.severity for a in rule.evaluate(r, 0, 99.0)] == ["info"]
    r.book.levels_filled = 1                     # level 1 filled; 98.5 is 1.5 % from level 2 (97)
    assert [a.severity for a in rule.evaluate(r, 1, 98.5)] == [None, "info"]
    r.book.levels_filled = 2                     # every level filled: nothing to approach
    assert [a.severity for a in rule.evaluate(r, 2, 98.5)] == [None]
    assert rule.evaluate(r, 3, 98.5) == []


def test_stop_alert_resolves_when_the_position_closes() -> None:
    rule = NearPriceRule(NearPriceConfig(stop_within=0.03))
    r = _runner([float("nan")] * 2, filled=0, stop=97.5)
    assert [(a.key.split(":")[0], a.severity) for a in rule.evaluate(r, 0, 100.0)] == [("rule.near_stop", "warning")]
    assert rule.evaluate(r, 1, 99.0) == []
    r.position = lambda: {"qty": 0.0, "stop": None}
    assert [(a.key.split(":")[0], a.severity) for a in rule.evaluate(r, 2, 99.0)] == [("rule.near_stop", None)]


async def test_near_stop_of_a_single_position_runner_on_real_btc(tmp_path: Path) -> None:
    """bollinger_mr (single-position, stop 4 % from the entry) on real BTC/USDT 1h candles."""
    candles = real_candles(BTC_1H, 0, 1500)
    run = await replay(tmp_path / "b.db", candles, {"near_price": {"stop_within": 0.02, "rearm_band": 0.005}},
                       strategy="bollinger_mr")
    r = run.engine.runners[0]
    assert type(r).__name__ == "SingleStrategyRunner" and len(r.cycles) > 3
    assert next_level(r) is None                                     # no grid levels
    rows = run.keyed("rule.near_stop:bollinger_mr:BTC/USDT:1h")
    assert rows and all(x["severity"] == "warning" and x["count"] == 1 for x in rows)
    assert run.keyed("rule.near_level:") == []
