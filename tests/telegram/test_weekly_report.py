"""The weekly Telegram report (issue 14): ISO weeks in UTC, its figures (equity change, max
drawdown, cycles per asset), its text, sent through the local Bot API stand-in, and scheduled by
the trade notices of a real engine replay at the first candle of each later week."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from core.engine.trade_notices import TradeNotices
from core.model.cycle import Cycle
from core.performance.weekly import DAY_MS, week_of, week_start_ms, weekly_sections
from core.telegram import format as fmt
from core.telegram.bot import TelegramBot
from core.telegram.control import InMemoryEngineControl
from tests.engine.test_engine_replay import _engine, _slice
from tests.engine.test_trade_notices import RecordingBot
from tests.support.telegram_stub import TelegramStub
from tests.telegram.test_telegram import ALLOWED, TOKEN, eventually, fast

HOUR = 3_600_000
MON = 1_767_571_200_000      # 2026-01-05 00:00 UTC, a Monday


def test_weeks_are_iso_weeks_in_utc_like_pandas() -> None:
    ts = np.arange(1_500_000_000_000, 1_500_000_000_000 + 60 * DAY_MS, 5 * HOUR, dtype=np.int64)
    starts = pd.to_datetime(ts, unit="ms").to_period("W-SUN").start_time.as_unit("ms").asi8
    assert [week_start_ms(week_of(t)) for t in ts] == list(starts)
    assert week_of(MON) - week_of(MON - 1) == 1 and week_start_ms(week_of(MON + 6 * DAY_MS + 23 * HOUR)) == MON


def test_weekly_sections_figures() -> None:
    cyc = [("BTC/USDT", Cycle(MON, MON + 4 * HOUR, "long", 2, 100, 101, "tp", 1, 10.0)),
           ("ETH/USDT", Cycle(MON, MON + 2 * HOUR, "long", 1, 10, 9, "sl", 1, -4.0)),
           ("BTC/USDT", Cycle(MON + DAY_MS, MON + DAY_MS + 2 * HOUR, "long", 1, 100, 101, "tp", 1, 6.0))]
    s = dict(weekly_sections(10_000.0, 10_012.0, 0.0123, cyc, ["BTC/USDT long 0.5 @ 100"]))
    assert s["Equity"] == "10,012.00 USDT (+12.00 USDT, +0.12%)"
    assert s["Max drawdown"] == "1.23%"
    assert s["Cycles"] == "3 closed, P&L +12.00 USDT, win rate 67%"
    assert s["Per asset"] == ("BTC/USDT: 2 cycle(s), avg 3.0h, win 100%, P&L +16.00\n"
                              "ETH/USDT: 1 cycle(s), avg 2.0h, win 0%, P&L -4.00")
    assert s["Open positions"] == "BTC/USDT long 0.5 @ 100"
    empty = dict(weekly_sections(None, None, 0.0, [], []))
    assert "Equity" not in empty and empty["Cycles"] == "0 closed" and empty["Open positions"] == "none"


async def test_weekly_report_through_the_bot_api_stand_in(db_path: Path) -> None:
    text = fmt.weekly_report_text(MON, [("Equity", "10,012.00 USDT"), ("Per asset", "BTC/USDT: 2\nETH/USDT: 1")])
    assert text == ("Radar weekly report 2026-01-05 .. 2026-01-11 (UTC)\nEquity: 10,012.00 USDT\n"
                    "Per asset:\nBTC/USDT: 2\nETH/USDT: 1")
    async with TelegramStub(TOKEN, max_poll_s=0.3) as stub:
        bot = TelegramBot(TOKEN, [ALLOWED], InMemoryEngineControl(), settings=fast(stub))
        bot.start()
        try:
            sections = [("Equity", "10,012.00 USDT"), ("Per asset", "BTC/USDT: 2\nETH/USDT: 1")]
            assert bot.send_weekly_report(MON, sections)
            await eventually(lambda: len(stub.texts_to(ALLOWED)) == 1, 10, "the weekly report")
        finally:
            await bot.stop()
        assert stub.texts_to(ALLOWED) == [text]


class WeeklyBot(RecordingBot):
    def __init__(self) -> None:
        super().__init__()
        self.weekly: list[tuple] = []

    def send_weekly_report(self, week_start_ms, sections):
        self.weekly.append((week_start_ms, list(sections)))
        return True


def _equity_of(text: str) -> str:
    return text.split(" USDT")[0]


async def test_trade_notices_send_a_weekly_report_per_finished_week(tmp_path: Path) -> None:
    candles = _slice(700)                        # 2017-08-17 (a Thursday) .. mid September: 4 week ends
    eng = _engine(tmp_path / "w.db", candles)
    bot = WeeklyBot()
    notices = TradeNotices(eng.bus, bot, engine=eng)
    notices.start()
    await eng.run()
    await notices.close()
    assert notices.failures == 0

    weeks = np.unique(pd.to_datetime(candles.ts, unit="ms").to_period("W-SUN").start_time.as_unit("ms").asi8)
    assert [w for w, _ in bot.weekly] == [int(w) for w in weeks[:-1]] and len(bot.weekly) >= 3
    daily = {d: dict(s) for d, s in bot.reports}
    for start, sections in bot.weekly:
        s = dict(sections)
        assert list(s)[:3] == ["Equity", "Max drawdown", "Cycles"] and list(s)[-1] == "Open positions"
        # sent at the same candle as the daily report of the week's Sunday: the same equity
        sunday = start + 6 * DAY_MS
        if sunday in daily:
            assert _equity_of(s["Equity"]) == _equity_of(daily[sunday]["Equity"])
        dd = float(s["Max drawdown"].rstrip("%"))
        assert 0.0 <= dd < 100.0
    # every cycle closed before the last (unfinished) week is in exactly one weekly report
    reported = sum(int(re.match(r"(\d+) closed", dict(s)["Cycles"]).group(1)) for _, s in bot.weekly)
    daily_total = sum(int(dict(s)["Cycles"].split(" closed")[0]) for d, s in bot.reports if d < weeks[-1])
    assert reported == daily_total and reported > 0

