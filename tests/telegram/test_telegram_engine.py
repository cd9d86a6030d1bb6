"""The operator's Telegram commands against a real paper engine (real BTC 1h candles released one
at a time, `tests.support.control_harness`) with its run services, the bot talking to the local
Bot API stand-in: /balance, /daily [N], and the confirmed /pause SYMBOL, /resume SYMBOL,
/forceexit SYMBOL (and /resume alone still the kill switch) run through the engine's audited
command path (api_audit, source "telegram"); chats outside the allow-list get nothing and change
nothing; without the audited path the commands are refused."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from core.api.audit import read_audit
from core.config import load_secrets
from core.engine.services import TELEGRAM_BASE_URL_VAR
from core.telegram.settings import TelegramSettings
from tests.support.control_harness import IN_POSITION_AT, GatedRun, btc_candles, eventually
from tests.support.telegram_stub import TelegramStub

TOKEN = "7000001:AAHsecretTOKENvalue-xyz_123"
ALLOWED = 111
OTHER = 999
SYM = "BTC/USDT"


@pytest.fixture(scope="module")
def candles():
    return btc_candles(400)


@pytest.fixture
async def stub(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[TelegramStub]:
    async with TelegramStub(TOKEN, max_poll_s=0.3) as s:
        monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TOKEN)
        monkeypatch.setenv("TELEGRAM_ALLOWED_CHAT_IDS", str(ALLOWED))
        monkeypatch.setenv(TELEGRAM_BASE_URL_VAR, s.base_url)
        yield s


def settings(stub: TelegramStub) -> TelegramSettings:
    return TelegramSettings(base_url=stub.base_url, retry_base_s=0.05, retry_max_s=0.2, send_timeout_s=1.0,
                            poll_timeout_s=1, connect_retry_base_s=0.05, connect_retry_max_s=0.2, stop_flush_s=0.5)


async def started(run: GatedRun) -> GatedRun:
    await eventually(lambda: run.services.bot.stats().state == "connected", 10, "the bot to connect")
    return run


def engine_run(db: Path, candles, stub: TelegramStub, start: int, **kw: Any) -> GatedRun:
    return GatedRun(db, candles, start=start, secrets=load_secrets(dotenv_path=None),
                    telegram_settings=settings(stub), **kw)


async def ask(stub: TelegramStub, text: str, chat_id: int = ALLOWED) -> dict[str, Any]:
    """Send a command and return the bot's one reply to it."""
    mid = stub.push_command(chat_id, text)
    replies = await eventually(lambda: [m for m in stub.sent if m["chat_id"] == chat_id and m["reply_to"] == mid],
                               10, f"the reply to {text}")
    assert len(replies) == 1
    return replies[0]


def buttons(reply: dict[str, Any]) -> dict[str, str]:
    markup = reply.get("reply_markup")
    if not markup:
        return {}
    markup = json.loads(markup) if isinstance(markup, str) else markup
    return {b["text"]: b["callback_data"] for row in markup["inline_keyboard"] for b in row}


async def press(stub: TelegramStub, reply: dict[str, Any], label: str) -> str:
    """Press button `label` of `reply` in the allowed chat; the text the message is edited to."""
    n = len(stub.edits)
    stub.push_callback(ALLOWED, buttons(reply)[label], reply["message_id"])
    edits = await eventually(lambda: stub.edits[n:], 10, f"the edit after {label}")
    return edits[0]["text"]


def audit_rows(db: Path) -> list:
    conn = sqlite3.connect(db)
    try:
        return read_audit(conn, 100)
    finally:
        conn.close()


async def test_balance_and_daily_from_the_engine(tmp_path: Path, candles, stub: TelegramStub) -> None:
    async with engine_run(tmp_path / "radar.db", candles, stub, start=300) as run:
        await started(run)
        r = run.runner
        b = run.api.balance()
        assert b["total"]["equity"] == r.equity_last and b["total"]["cash"] == r.book.cash
        text = (await ask(stub, "/balance"))["text"]
        (row,) = b["runners"]
        assert text.splitlines() == [
            (f"envelope_dca {SYM} 1h: equity {row['equity']:,.2f}, cash {row['cash']:,.2f}, "
             f"day P&L {row['day_pnl']:+,.2f}"),
            f"total: equity {r.equity_last:,.2f}, cash {r.book.cash:,.2f}, day P&L {row['day_pnl']:+,.2f} USDT"]

        # 300 hourly candles: 13 UTC days; every day's P&L adds up to the run's whole P&L
        d = await run.api.daily_pnl(30)
        first_equity = 10_000.0
        assert d["total"] == pytest.approx(r.equity_last - first_equity, abs=1e-6)
        days = [x for x in d["days"] if x["day_ms"] >= run.ts(0) // 86_400_000 * 86_400_000]
        assert len(days) == 13 and days[-1]["day_ms"] == run.ts(299) // 86_400_000 * 86_400_000
        assert days[-1]["equity"] == pytest.approx(r.equity_last)
        text = (await ask(stub, "/daily 3"))["text"].splitlines()
        d3 = await run.api.daily_pnl(3)
        assert text[0] == "P&L per UTC day, last 3 day(s) (USDT):" and len(text) == 5
        assert text[1:4] == [f"{x['day']}: {x['pnl']:+,.2f}" for x in d3["days"]]
        assert text[4] == f"total: {d3['total']:+,.2f} USDT"
        assert len((await ask(stub, "/daily"))["text"].splitlines()) == 7 + 2           # default 7 days
        assert "usage: /daily [N]" in (await ask(stub, "/daily 0"))["text"]
        assert "usage: /daily [N]" in (await ask(stub, "/daily 3 4"))["text"]
    assert audit_rows(run.db) == []                                    # queries are not audited


async def test_pause_resume_forceexit_are_confirmed_audited_and_refused_outside_the_list(
        tmp_path: Path, candles, stub: TelegramStub) -> None:
    async with engine_run(tmp_path / "radar.db", candles, stub, start=IN_POSITION_AT + 1) as run:
        await started(run)
        r, bot = run.runner, run.services.bot
        pos = r.position()
        assert pos["qty"] > 0

        reply = await ask(stub, "/pause btc/usdt")
        assert reply["text"].startswith("Pause BTC/USDT? No new entries") and "stop and take-profit" in reply["text"]
        assert set(buttons(reply)) == {"Yes, pause", "Cancel"}
        assert r.pause_info is None                                         # nothing before the confirmation
        # a chat not on the allow-list: its command and a stolen button get nothing, change nothing
        stub.push_command(OTHER, "/pause BTC/USDT")
        stub.push_callback(OTHER, buttons(reply)["Yes, pause"], reply["message_id"])
        await eventually(lambda: bot.stats().refused == 2, 10, "both refusals")
        assert stub.texts_to(OTHER) == [] and stub.edits == [] and r.pause_info is None
        text = await press(stub, reply, "Yes, pause")
        assert text.startswith("paused envelope_dca on BTC/USDT (1h): no new entries, 2 entry order(s) cancelled")
        assert r.pause_info["by"] == "telegram:operator" and run.api.snapshot()["symbols"][SYM][0]["state"] == "paused"
        assert r.position() == pos and not any(o["purpose"] == "entry" for o in r.grid_state()["open_orders"])
        assert "envelope_dca BTC/USDT: paused" in (await ask(stub, "/status"))["text"]
        assert "is paused already" in (await ask(stub, "/pause BTC/USDT"))["text"]          # refused before asking
        assert "no strategy runs on 'ETH/USDT'" in (await ask(stub, "/pause ETH/USDT"))["text"]
        assert "usage: /pause SYMBOL" in (await ask(stub, "/pause"))["text"]

        reply = await ask(stub, "/resume BTC/USDT")
        assert reply["text"].startswith("Resume BTC/USDT?") and set(buttons(reply)) == {"Yes, resume", "Cancel"}
        assert (await press(stub, reply, "Cancel")) == "/resume BTC/USDT cancelled by telegram:operator"
        assert r.pause_info is not None
        reply = await ask(stub, "/resume BTC/USDT")
        assert (await press(stub, reply, "Yes, resume")).startswith("resumed envelope_dca on BTC/USDT")
        assert r.pause_info is None and not run.engine.kill_switch.active

        reply = await ask(stub, "/resume")                                  # no symbol: still the kill switch
        assert reply["text"].startswith("Release the kill switch")
        assert (await press(stub, reply, "Yes, resume")) == "kill switch off: entries resume from the next candle"

        reply = await ask(stub, "/forceexit BTC/USDT")
        assert reply["text"].startswith("Close the position of BTC/USDT at market NOW")
        assert r.position()["qty"] > 0
        text = await press(stub, reply, "Yes, close")
        # (the paused runner's entries were cancelled at the pause; resumed, they come back at the next candle)
        assert text == "force-exit: 1 position(s) closed at market on BTC/USDT, 0 entry order(s) cancelled"
        assert r.position()["qty"] == 0 and r.cycles[-1].exit_reason == "forceexit"
        assert (await ask(stub, "/forceexit BTC/USDT"))["text"] == "/forceexit BTC/USDT: no open position on BTC/USDT"
        assert stub.texts_to(OTHER) == []
    rows = audit_rows(run.db)
    assert [(a.command, a.outcome, a.source, a.os_user, a.uid) for a in reversed(rows)] == [
        ("pause", "ok", "telegram", "operator", None), ("resume_runner", "ok", "telegram", "operator", None),
        ("resume", "ok", "telegram", "operator", None), ("flatten", "ok", "telegram", "operator", None)]
    assert rows[-1].args == {"reason": "telegram /pause", "symbol": SYM} and rows[-1].origin.startswith("telegram bot")


async def test_a_command_that_cannot_be_audited_is_not_run(tmp_path: Path, candles, stub: TelegramStub) -> None:
    async with engine_run(tmp_path / "radar.db", candles, stub, start=IN_POSITION_AT + 1, api=False) as run:
        await started(run)
        r = run.runner
        reply = await ask(stub, "/pause BTC/USDT")
        text = await press(stub, reply, "Yes, pause")
        assert text.startswith("REFUSED: command not run") and r.pause_info is None
        reply = await ask(stub, "/kill")
        assert (await press(stub, reply, "Yes, kill")).startswith("REFUSED") and not run.engine.kill_switch.active
