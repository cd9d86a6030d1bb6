"""Closed candles -> data-quality warnings on the bus (core.engine.candle_quality): the real ETH/USDT
1h bad open of 2017-08-22 04:00 UTC raises one warning AlertEvent naming the series, the time and
the rule, never twice; in a replay through the engine's feed listeners too."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from core.data.candle_guard import OPEN_GAP_SPIKE, CandleQualityGuard, QualityFinding
from core.data.feed import ClosedCandle, FeedStale, TickerUpdate
from core.data.freqtrade import read_data_file
from core.engine.candle_quality import CandleQualityListener
from core.events.bus import AlertEvent, EventBus
from core.model.candles import Candles
from tests.support.shared_data import shared_file

H = 3_600_000
ETH_BAD_OPEN_MS = 1_503_374_400_000          # 2017-08-22 04:00 UTC: open 144.21 after a close of 280.00
ETH_TITLE = "ETH/USDT 1h 2017-08-22 04:00 UTC: open-gap spike"


def _eth(n: int = 300) -> Candles:
    """The first n candles of the real ETH/USDT 1h file (2017-08-17 04:00 UTC on; the bad open is the 121st)."""
    _, c = read_data_file(shared_file("binance-spot/ETH_USDT-1h.json.gz"))
    return c.between(None, int(c.ts[n]))


def _events(c: Candles, source: str = "replay") -> list[ClosedCandle]:
    cols = (c.ts.tolist(), c.open.tolist(), c.high.tolist(), c.low.tolist(), c.close.tolist(), c.volume.tolist())
    return [ClosedCandle(c.symbol, c.timeframe, *row, source=source) for row in zip(*cols)]


def _drain(sub) -> list:
    out = []
    while len(sub):
        out.append(sub.get_nowait())
    return out


def test_the_real_bad_open_raises_one_warning_on_the_bus() -> None:
    c = _eth()
    bus = EventBus()
    sub = bus.subscribe((AlertEvent,))
    listener = CandleQualityListener(bus)
    for i, ev in enumerate(_events(c)):
        listener(ev)
        if i == 10:                                      # other data events are ignored
            listener(TickerUpdate(c.symbol, ev.ts, 300.0, None, None))
            listener(FeedStale(c.symbol, 90.0))
    alerts = _drain(sub)
    guard = CandleQualityGuard(c.symbol, c.timeframe)
    want = [f for ev in _events(c) for f in guard.check(ev.ts, ev.open, ev.high, ev.low, ev.close, ev.volume)]
    assert len(alerts) == len(want) == listener.published
    assert all(a.severity == "warning" and a.source == "data" for a in alerts)
    [bad] = [a for a in alerts if a.title == ETH_TITLE]
    assert "open 144.21 is -48.5% from the previous close 280 (candle of 2017-08-22 03:00 UTC)" in bad.detail
    assert "close 287 is +2.5%" in bad.detail and bad.detail.endswith("; replay candle")
    assert listener.by_kind[OPEN_GAP_SPIKE] == 1
    assert len({a.title for a in alerts}) == len(alerts)            # one alert key per candle and rule

    for ev in _events(c):                                           # the same candles again: nothing new
        listener(ev)
    assert _drain(sub) == [] and listener.published == len(want)


def test_each_series_has_its_own_guard() -> None:
    eth = _events(_eth(150))
    btc = [ClosedCandle("BTC/USDT", "1h", ev.ts, 4000.0, 4010.0, 3990.0, 4000.0, 1.0, "live") for ev in eth]
    bus = EventBus()
    sub = bus.subscribe((AlertEvent,))
    listener = CandleQualityListener(bus)
    for a, b in zip(btc, eth):                                      # interleaved, as the engine sees them
        listener(a)
        listener(b)
    assert set(listener.guards) == {("BTC/USDT", "1h"), ("ETH/USDT", "1h")}
    titles = [a.title for a in _drain(sub)]
    assert ETH_TITLE in titles and not any(t.startswith("BTC/USDT") for t in titles)


class _Repeating(CandleQualityGuard):
    """A guard that reports the same finding for every candle (to test the listener's own de-duplication)."""

    def check(self, ts, o, h, l, c, v):
        return [QualityFinding(OPEN_GAP_SPIKE, self.symbol, self.timeframe, 0, "always the candle of 0")]


def test_the_listener_publishes_a_candle_and_rule_once() -> None:
    published = []

    class FakeBus:
        def publish(self, event) -> None:
            published.append(event)

    listener = CandleQualityListener(FakeBus(), guard_factory=_Repeating, remember=2)
    for ts in range(5):
        listener(ClosedCandle("X/USDT", "1h", ts * H, 1.0, 1.0, 1.0, 1.0, 1.0, "live"))
    assert [e.title for e in published] == ["X/USDT 1h 1970-01-01 00:00 UTC: open-gap spike"]
    listener(ClosedCandle("Y/USDT", "1h", 0, 1.0, 1.0, 1.0, 1.0, 1.0, "live"))
    listener(ClosedCandle("Y/USDT", "1h", H, 1.0, 1.0, 1.0, 1.0, 1.0, "live"))
    assert len(published) == 2 and listener.published == 2
    with pytest.raises(ValueError, match="remember"):
        CandleQualityListener(FakeBus(), remember=0)


def test_the_engine_alert_bridge_keys_it_per_candle_and_rule() -> None:
    """EngineAlerts records an AlertEvent under "<source>:<title>": one alert per (series, candle, rule)."""
    from core.engine.alerting import EngineAlerts

    raised = []

    class FakeAlerts:
        async def raise_alert(self, key, severity, source, title, detail=""):
            raised.append((key, severity, source, title))

    bus = EventBus()
    bridge = EngineAlerts(bus, FakeAlerts())
    listener = CandleQualityListener(bus)
    for ev in _events(_eth(130)):
        listener(ev)
    events = _drain(bridge.sub)
    assert len(events) == listener.published >= 1

    async def handle_all() -> None:
        for ev in events:
            await bridge.handle(ev)

    asyncio.run(handle_all())
    assert ("data:" + ETH_TITLE, "warning", "data", ETH_TITLE) in raised


def test_a_replay_through_the_engine_raises_the_warning(tmp_path: Path) -> None:
    """The engine's own listener (appended by `Engine.start`, price spikes left out) sees the
    replayed candles and raises the warning once."""
    from core.data.replay import ReplayFeed
    from core.engine.engine import CandleSource, Engine, RunnerSpec
    from core.model.account import Account

    c = _eth(200)
    cols = [a.tolist() for a in (c.ts, c.open, c.high, c.low, c.close, c.volume)]
    src = CandleSource(c.symbol, c.timeframe,
                       lambda after: ReplayFeed.from_candles(c, speed="max", start_after_ts=after),
                       lambda up_to, n: [r for r in zip(*cols) if up_to is None or r[0] <= up_to][-n:], replay=True)
    eng = Engine(tmp_path / "e.db", [src], [RunnerSpec("envelope_dca", {}, c.symbol, c.timeframe)], Account(),
                 status_interval=0)
    sub = eng.bus.subscribe((AlertEvent,))
    asyncio.run(eng.run())
    listener = next(f for f in eng.feed_listeners if isinstance(f, CandleQualityListener))
    assert eng.finished and eng.error is None
    alerts = [a for a in _drain(sub) if a.source == "data"]
    assert [a.title for a in alerts if a.title == ETH_TITLE] == [ETH_TITLE]
    assert listener.guards[(c.symbol, c.timeframe)].judged == len(c)
