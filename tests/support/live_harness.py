"""A live engine against the Bitget private stand-in (tests/support/bitget_private_stub.py), for tests.

`LiveHarness` builds `Engine(mode="live")` with one envelope_dca runner on BTC/USDT:USDT
whose candles are replayed from a real series, and whose orders go through the real ccxt
bitget async client to the stub on 127.0.0.1. Before the engine sees a candle, the
harness walks the stub's mark price along the candle's path (green/flat O-L-H-C, red
O-H-L-C), so resting limits fill and crossed stops trigger at the exchange "during" the
candle, as they would live; the runner learns of it when it polls at the candle's close.

`check_protected()` runs at every candle boundary: while the stub holds a position, a
pos_loss stop sized to it must be live (rule one), else `unprotected` records the moment.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from core.backtest.loading import load_from_file
from core.config.exchanges import ExchangeConfig
from core.data.download import override_api_urls
from core.data.feed import ClosedCandle
from core.data.replay import ReplayFeed
from core.engine.engine import CandleSource, Engine, LiveSetup, RunnerSpec
from core.model.account import Account
from core.venues.bitget.gateway import CcxtGateway, ReadRetry, make_exchange

SYM = "BTC/USDT:USDT"
STUB_SYM = "BTCUSDT"
PREFIX = "rdr1"


def exchange_cfg(**kw) -> ExchangeConfig:
    base = dict(id="bitget", market_type="swap", sandbox=False, uta=False, rate_limit_ms=0,
                client_order_prefix=PREFIX, timeouts={"request_ms": 400, "order_ack_ms": 100})
    base.update(kw)
    return ExchangeConfig(**base)


def futures_candles(path: Path, n: int | None = None, start: int = 0):
    """A spot series relabelled as the perpetual (first `n` candles from `start`)."""
    c = load_from_file(path)
    sl = slice(start, None if n is None else start + n)
    return dataclasses.replace(c, symbol=SYM, market="futures", ts=c.ts[sl], open=c.open[sl], high=c.high[sl],
                               low=c.low[sl], close=c.close[sl], volume=c.volume[sl])


class LiveHarness:
    """See the module docstring. `stub` must be started; `candles` a Candles of SYM."""

    def __init__(self, stub, db: Path, candles, account: Account = Account(), params: dict | None = None,
                 stop_retries: int = 3, poll_interval_s: float = 3600, recheck_interval_s: float = 3600,
                 unprotected_grace_s: float = 120.0, adopt_history: bool = False) -> None:
        self.stub = stub
        self.db = db
        self.candles = candles
        self.account = account
        self.params = params or {}
        self.stop_retries = stop_retries
        self.poll_interval_s = poll_interval_s
        self.recheck_interval_s = recheck_interval_s
        self.unprotected_grace_s = unprotected_grace_s
        self.adopt_history = adopt_history
        self.unprotected: list[int] = []
        self.checked = 0
        self.gateways: list[CcxtGateway] = []
        self.alerts: list[tuple[str, str]] = []

    def gateway(self, symbol: str) -> CcxtGateway:
        cfg = exchange_cfg()
        ex = make_exchange(cfg, "key", "secret", "pass")
        override_api_urls(ex, self.stub.base_url)
        gw = CcxtGateway(cfg, symbol, ex, leverage=int(self.account.leverage), read_retry=ReadRetry(3, 0.01, 0.05))
        self.gateways.append(gw)
        return gw

    def engine(self, candles=None, **kw) -> Engine:
        c = self.candles if candles is None else candles
        cols = [a.tolist() for a in (c.ts, c.open, c.high, c.low, c.close)]

        def history(up_to, n):
            import bisect
            hi = len(cols[0]) if up_to is None else bisect.bisect_right(cols[0], up_to)
            return list(zip(*(x[max(0, hi - n):hi] for x in cols)))

        src = CandleSource(SYM, c.timeframe, lambda after: ReplayFeed.from_candles(c, speed="max",
                                                                                     start_after_ts=after),
                           history, replay=True)
        live = LiveSetup(self.gateway, PREFIX, stop_retries=self.stop_retries,
                         recheck_interval_s=self.recheck_interval_s, poll_interval_s=self.poll_interval_s,
                         alert=lambda lvl, msg: self.alerts.append((lvl, msg)),
                         unprotected_grace_s=self.unprotected_grace_s, adopt_history=self.adopt_history)
        eng = Engine(self.db, [src], [RunnerSpec("envelope_dca", self.params, SYM, c.timeframe)], self.account,
                     mode="live", status_interval=0, live=live, **kw)
        eng.feed_listeners.append(self.on_event)
        return eng

    def on_event(self, ev) -> None:
        if type(ev) is not ClosedCandle:
            return
        self.check_protected(ev.ts)
        self.stub.public.now_ms = ev.ts + 3_600_000
        for p in candle_path(ev):
            self.stub.set_mark(STUB_SYM, p)

    def check_protected(self, ts: int) -> None:
        self.checked += 1
        if not self.stub.protected(STUB_SYM):
            self.unprotected.append(ts)

    async def close(self) -> None:
        for gw in self.gateways:
            try:
                await gw.close()
            except Exception:
                pass


def candle_path(ev) -> tuple[float, float, float, float]:
    """The intrabar path of a closed candle (spec): green or flat O-L-H-C, red O-H-L-C."""
    o, hi, lo, c = ev.open, ev.high, ev.low, ev.close
    return (o, lo, hi, c) if c >= o else (o, hi, lo, c)


def remote_mark_walker(url: str):
    """A feed listener for an engine in another process than the stand-in: POSTs each closed
    candle's path to the stand-in's /test/mark (which also checks the position's stop first)."""
    import json
    import urllib.request

    def walk(ev) -> None:
        if type(ev) is not ClosedCandle:
            return
        body = json.dumps({"symbol": STUB_SYM, "path": candle_path(ev), "now_ms": ev.ts + 3_600_000}).encode()
        req = urllib.request.Request(url + "/test/mark", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        urllib.request.urlopen(req, timeout=10).read()
    return walk
