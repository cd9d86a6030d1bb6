"""A live engine in its own process, for the aimed crash-point test (tests/engine/test_live_crashpoints.py).

envelope_dca on BTC/USDT:USDT over real BTC 1h candles (`n` candles from `start`), orders through the
real ccxt bitget client to the Bitget stand-in at `url` (served by the test process); before the
engine sees a candle this process POSTs the candle's price path to the stand-in's /test/mark (the
test's stand-in walks each candle once: a restarted engine re-processing the candle it died in does
not make the market go through it again).

    python -m tests.support.crashpoint_worker '{"url": ..., "db": ..., "data": ".../BTC_USDT-1h.json.gz",
                                                "start": 0, "n": 120, "params": {...}, "stop_retries": 2}'

Crash points come from the environment (RADAR_CRASHPOINT, RADAR_CRASHPOINT_LOG, RADAR_CRASHPOINT_COUNT:
`core.executor.crashpoints`). Protocol on stdout (one JSON object per line):

* `{"event": "reconciled", ...}` once `Engine.start()` returned (every runner reconciled with the
  exchange, no candle processed yet). With `"pause": true` in the spec the process then BLOCKS its
  event loop on a line of stdin, so the test can compare the store with the exchange before any
  trading; the engine goes on when the line arrives.
* `{"event": "result", "finished": ..., "cycles": [...], "cash": ..., "qty": ...}` at the end;
* with `"kill_on_alert": [text, n]` in the spec the process SIGKILLs itself inside the n-th alert
  whose message contains `text` (after printing `{"event": "killing", "alert": message}`): e.g.
  inside the critical alert of an emergency close, sent after the close was executed and before
  the exit is recorded (a crash while the alert channel is slow).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

from core.data.download import override_api_urls
from core.venues.bitget.gateway import CcxtGateway, ReadRetry, make_exchange
from tests.support.live_harness import LiveHarness, exchange_cfg, futures_candles, remote_mark_walker


class _RemoteStub:
    """What LiveHarness needs of the stand-in, over HTTP."""

    def __init__(self, url: str) -> None:
        self.base_url = url


class _Harness(LiveHarness):
    """LiveHarness with a 5 s request timeout (the harness's 400 ms is for its fault tests): a busy
    CI machine must not turn a slow answer into a timeout here, where only the crash points are
    under test (a timeout would be handled, but would make the run differ from the reference)."""

    def gateway(self, symbol: str) -> CcxtGateway:
        cfg = exchange_cfg(timeouts={"request_ms": 5000, "order_ack_ms": 100})
        ex = make_exchange(cfg, "key", "secret", "pass")
        override_api_urls(ex, self.stub.base_url)
        gw = CcxtGateway(cfg, symbol, ex, leverage=int(self.account.leverage), read_retry=ReadRetry(3, 0.01, 0.05))
        self.gateways.append(gw)
        return gw


class _KillingAlerts(list):
    """The harness's alert list; SIGKILLs the process at the n-th alert containing `text`."""

    def __init__(self, text: str, n: int) -> None:
        super().__init__()
        self.text, self.n, self.seen = text, n, 0

    def append(self, item) -> None:
        super().append(item)
        if self.text in item[1]:
            self.seen += 1
            if self.seen == self.n:
                _say({"event": "killing", "alert": item[1]})
                os.kill(os.getpid(), signal.SIGKILL)


def _say(obj: dict) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main() -> int:
    spec = json.loads(sys.argv[1])
    url, db = spec["url"], Path(spec["db"])
    candles = futures_candles(Path(spec["data"]), int(spec["n"]), int(spec.get("start", 0)))
    h = _Harness(_RemoteStub(url), db, candles, params=spec.get("params") or {},
                    stop_retries=int(spec.get("stop_retries", 3)))

    kill_on = spec.get("kill_on_alert")
    if kill_on:
        h.alerts = _KillingAlerts(kill_on[0], int(kill_on[1]))

    walk = remote_mark_walker(url)

    async def run() -> None:
        eng = h.engine()
        eng.feed_listeners[:] = [walk]
        try:
            await eng.start()
            r = eng.runners[0]
            rep = r.last_report
            _say({"event": "reconciled", "state": r.state, "qty": r.book.qty, "cursor": r.cursor,
                  "actions": [list(a) for a in (rep.actions if rep is not None else [])]})
            if spec.get("pause"):
                sys.stdin.readline()            # blocks the loop: nothing trades while the test looks
            await eng.run()
        finally:
            await h.close()
        r = eng.runners[0]
        _say({"event": "result", "finished": eng.finished, "state": r.state, "cash": r.book.cash, "qty": r.book.qty,
              "cycles": [[c.exit_reason, c.levels_filled, c.qty, c.avg_entry, c.exit_price, c.pnl]
                         for c in r.cycles]})

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
