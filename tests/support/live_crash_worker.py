"""A live engine in its own process, for the crash test (tests/engine/test_live_crash.py): envelope_dca on
BTC/USDT:USDT over the first N real BTC 1h candles, orders through the real ccxt bitget client to
the Bitget stand-in at URL (run by the test process), which this process drives by POSTing each
candle's price path to the stand-in's /test/mark before the engine sees the candle.

    python -m tests.support.live_crash_worker URL DB N
"""

from __future__ import annotations

import asyncio
import json
import sys
import urllib.request
from pathlib import Path

from core.data.feed import ClosedCandle
from tests.support.live_harness import STUB_SYM, LiveHarness, futures_candles
from tests.support.shared_data import shared_file


class _RemoteStub:
    """What LiveHarness needs of the stand-in, over HTTP."""

    def __init__(self, url: str) -> None:
        self.base_url = url


def main() -> int:
    url, db, n = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    candles = futures_candles(shared_file("binance-spot/BTC_USDT-1h.json.gz"), n)
    h = LiveHarness(_RemoteStub(url), db, candles)

    def walk(ev) -> None:
        if type(ev) is not ClosedCandle:
            return
        o, hi, lo, c = ev.open, ev.high, ev.low, ev.close
        path = (o, lo, hi, c) if c >= o else (o, hi, lo, c)
        body = json.dumps({"symbol": STUB_SYM, "path": path, "now_ms": ev.ts + 3_600_000}).encode()
        req = urllib.request.Request(url + "/test/mark", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        urllib.request.urlopen(req, timeout=10).read()

    async def run() -> None:
        eng = h.engine()
        eng.feed_listeners[:] = [walk]
        try:
            await eng.run()
        finally:
            await h.close()
        r = eng.runners[0]
        print(json.dumps({"finished": eng.finished, "cycles": len(r.cycles), "cash": r.book.cash,
                          "qty": r.book.qty}), flush=True)

    asyncio.run(run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
