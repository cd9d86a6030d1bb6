"""Telegram trade notices from a real engine replay: level opened, cycle closed, daily report."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core.backtest.event_engine import run_event_backtest
from core.engine.trade_notices import DAY_MS, TradeNotices, quote_of
from core.model.account import Account
from tests.engine.test_engine_replay import _engine, _slice


class RecordingBot:
    """Stands in for TelegramBot: records what would be queued."""

    def __init__(self) -> None:
        self.opened: list[tuple] = []
        self.closed: list[tuple] = []
        self.reports: list[tuple] = []

    def send_grid_level_opened(self, symbol, level, side, price, amount, at_ms):
        self.opened.append((symbol, level, side, price, amount, at_ms))
        return True

    def send_cycle_closed(self, symbol, pnl, quote, at_ms, *, pnl_pct=None, duration_ms=None, levels=None):
        self.closed.append((symbol, pnl, quote, at_ms, pnl_pct, duration_ms, levels))
        return True

    def send_daily_report(self, day_start_ms, sections):
        self.reports.append((day_start_ms, list(sections)))
        return True


async def test_notices_follow_the_engine_replay(tmp_path: Path) -> None:
    candles = _slice(2000)
    eng = _engine(tmp_path / "n.db", candles)
    bot = RecordingBot()
    notices = TradeNotices(eng.bus, bot, engine=eng)
    notices.start()
    await eng.run()
    await notices.close()
    assert notices.failures == 0

    want = run_event_backtest(candles, "envelope_dca", {}, Account())
    assert want.n_cycles > 5
    # one "level opened" per entry fill, one "cycle closed" per cycle, with the cycle's own P&L
    assert len(bot.opened) == sum(c.levels_filled for c in want.cycles)
    assert [round(x[1], 6) for x in bot.closed] == [round(c.pnl, 6) for c in want.cycles]
    assert [x[6] for x in bot.closed] == [c.levels_filled for c in want.cycles]
    assert all(x[2] == "USDT" for x in bot.closed)
    assert [x[5] for x in bot.closed] == [c.close_time - c.open_time for c in want.cycles]
    # a daily report for every finished UTC day of the data (the last day is not finished)
    days = np.unique(candles.ts // DAY_MS)
    assert [r[0] for r in bot.reports] == [int(d) * DAY_MS for d in days[:-1]]
    names = [n for n, _ in bot.reports[-1][1]]
    assert names == ["Equity", "Cycles", "Open positions"]
    total = sum(int(t.split(" closed")[0]) for r in bot.reports for n, t in r[1] if n == "Cycles")
    closed_before_last_day = sum(1 for c in want.cycles if c.close_time // DAY_MS < days[-1])
    assert total == closed_before_last_day


def test_quote_of() -> None:
    assert quote_of("BTC/USDT:USDT") == "USDT" and quote_of("ETH/BTC") == "BTC"


async def test_a_failing_bot_does_not_stop_the_bridge(tmp_path: Path) -> None:
    class Broken(RecordingBot):
        def send_grid_level_opened(self, *a, **k):
            raise RuntimeError("telegram down")

    candles = _slice(600)
    eng = _engine(tmp_path / "b.db", candles)
    bot = Broken()
    notices = TradeNotices(eng.bus, bot, engine=eng)
    notices.start()
    await eng.run()
    await notices.close()
    assert notices.failures > 0 and bot.reports          # later messages still went out
