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
from pathlib import Path

from tests.support.live_harness import LiveHarness, futures_candles, remote_mark_walker
from tests.support.shared_data import shared_file


class _RemoteStub:
    """What LiveHarness needs of the stand-in, over HTTP."""

    def __init__(self, url: str) -> None:
        self.base_url = url


def main() -> int:
    url, db, n = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
    candles = futures_candles(shared_file("binance-spot/BTC_USDT-1h.json.gz"), n)
    h = LiveHarness(_RemoteStub(url), db, candles)

    walk = remote_mark_walker(url)

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
