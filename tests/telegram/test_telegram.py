"""Telegram bot against a local Bot API stand-in: allow-list, alert commands, kill confirmation,
resilience (500s, hangs, 429, permanent errors), outbox overflow and backoff, token redaction."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from core.alerts import store
from core.alerts.engine import AlertEngine
from core.alerts.model import AlertState, Severity
from core.alerts.policy import AlertConfig
from core.errors import ConfigError
from core.model.clock import ManualClock
from core.storage.db import open_sync
from core.telegram import format as fmt
from core.telegram.bot import TelegramBot
from core.telegram.commands import parse_command
from core.telegram.control import InMemoryEngineControl
from core.telegram.outbox import Outbox, OutgoingMessage, PermanentSendError, RetryLater
from core.telegram.settings import TelegramSettings
from tests.support.telegram_stub import BOT_USERNAME, TelegramStub

TOKEN = "7000001:AAHsecretTOKENvalue-xyz_123"
ALLOWED = 111
OTHER = 999
T0 = 1_767_225_600_000  # 2026-01-01 00:00 UTC


async def eventually(pred: Callable[[], Any], timeout: float = 5.0, what: str = "condition") -> None:
    """Wait until `pred()` is truthy; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def fast(stub: TelegramStub, **overrides: Any) -> TelegramSettings:
    """Settings with short delays so the tests run in seconds."""
    values: dict[str, Any] = dict(base_url=stub.base_url, retry_base_s=0.05, retry_max_s=0.2, send_timeout_s=0.5,
                                  poll_timeout_s=1, connect_retry_base_s=0.05, connect_retry_max_s=0.2,
                                  stop_flush_s=0.5, min_severity=Severity.WARNING)
    values.update(overrides)
    return TelegramSettings(**values)


@pytest.fixture
async def stub() -> AsyncIterator[TelegramStub]:
    async with TelegramStub(TOKEN, max_poll_s=0.3) as s:
        yield s


@pytest.fixture
async def alerts(db_path: Path) -> AsyncIterator[AlertEngine]:
    eng = await AlertEngine.open(db_path, config=AlertConfig(rate_limit_ms=0))
    yield eng
    await eng.close()


@pytest.fixture
def control() -> InMemoryEngineControl:
    return InMemoryEngineControl()


async def started(bot: TelegramBot) -> TelegramBot:
    bot.start()
    await asyncio.wait_for(bot.wait_connected(), 5)
    return bot


@pytest.fixture
async def bot(stub: TelegramStub, alerts: AlertEngine, control: InMemoryEngineControl) -> AsyncIterator[TelegramBot]:
    b = TelegramBot(TOKEN, [ALLOWED], control, alerts=alerts, settings=fast(stub))
    await started(b)
    yield b
    await b.stop()


async def ask(stub: TelegramStub, text: str, chat_id: int = ALLOWED) -> dict[str, Any]:
    """Send a command from `chat_id` and return the bot's reply to it."""
    message_id = stub.push_command(chat_id, text)

    def replies() -> list[dict[str, Any]]:
        return [m for m in stub.sent if m["chat_id"] == chat_id and m["reply_to"] == message_id]

    await eventually(replies, what=f"reply to {text}")
    assert len(replies()) == 1
    return replies()[0]


def buttons(reply: dict[str, Any]) -> dict[str, str]:
    """label -> callback data of a reply's inline keyboard."""
    markup = reply["reply_markup"]
    markup = json.loads(markup) if isinstance(markup, str) else markup
    return {b["text"]: b["callback_data"] for row in markup["inline_keyboard"] for b in row}


def stored_alert(db_path: Path, alert_id: int):
    conn = open_sync(db_path)
    try:
        return store.get(conn, alert_id)
    finally:
        conn.close()


# --------------------------------------------------------------------------- access


async def test_chat_not_on_the_list_gets_nothing_and_is_logged(
        stub: TelegramStub, bot: TelegramBot, control: InMemoryEngineControl, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    stub.push_command(OTHER, "/status my-private-words")
    await eventually(lambda: bot.stats().refused == 1, what="refusal")
    reply = await ask(stub, "/kill")          # an allowed chat gets answers meanwhile
    stub.push_callback(OTHER, buttons(reply)["Yes, kill"], reply["message_id"])  # a stolen button
    await eventually(lambda: bot.stats().refused == 2, what="second refusal")
    await ask(stub, "/status")

    assert stub.texts_to(OTHER) == []
    assert stub.answers == [] and stub.edits == []
    assert control.kill_calls == []
    refusals = [r.getMessage() for r in caplog.records if "ignored" in r.getMessage()]
    assert refusals and str(OTHER) in refusals[0] and "/status" in refusals[0]
    assert "my-private-words" not in caplog.text


# --------------------------------------------------------------------------- alert commands


async def test_ack_and_snooze_change_the_alert_in_the_engine(
        stub: TelegramStub, bot: TelegramBot, alerts: AlertEngine, db_path: Path) -> None:
    a = await alerts.raise_alert("feed.stale:BTC", "error", "feed", "BTC feed stale")
    b = await alerts.raise_alert("feed.stale:ETH", "warning", "feed", "ETH feed stale")

    listing = await ask(stub, "/alerts")
    assert f"#{a.id} ERROR" in listing["text"] and f"#{b.id} WARNING" in listing["text"]

    reply = await ask(stub, f"/ack {a.id}")
    assert "acknowledged" in reply["text"]
    reply = await ask(stub, f"/snooze {b.id} 30m")
    assert "snooze" in reply["text"]

    acked, snoozed = stored_alert(db_path, a.id), stored_alert(db_path, b.id)
    assert acked.state is AlertState.ACKNOWLEDGED and acked.changed_by == "telegram:operator"
    assert snoozed.state is AlertState.SNOOZED
    assert snoozed.snoozed_until_ms - snoozed.changed_ms == 30 * 60_000
    assert alerts.get(a.id).state is AlertState.ACKNOWLEDGED
    assert alerts.get(b.id).state is AlertState.SNOOZED


@pytest.mark.parametrize("text, expected", [
    ("/ack", "usage: /ack ID"),
    ("/ack abc", "usage: /ack ID"),
    ("/ack 1 2", "usage: /ack ID"),
    ("/snooze 5 7x", "usage: /snooze ID DURATION"),
    ("/snooze 5", "usage: /snooze ID DURATION"),
    ("/snooze x 30m", "usage: /snooze ID DURATION"),
    ("/kill now", "usage: /kill"),
    ("/pause", "usage: /pause SYMBOL"),
    ("/forceexit BTC/USDT ETH/USDT", "usage: /forceexit SYMBOL"),
    ("/resume BTC/USDT now", "usage: /resume [SYMBOL]"),
    ("/daily x", "usage: /daily [N]"),
    ("/pause DOGE/USDT", "/pause DOGE/USDT: no strategy runs on 'DOGE/USDT'"),
    ("/resume BTC/USDT", "/resume BTC/USDT: BTC/USDT is not paused"),
    ("/ack 424242", "424242"),
    ("/frobnicate", "unknown command /frobnicate"),
])
async def test_bad_input_gets_a_usage_reply(stub: TelegramStub, bot: TelegramBot, text: str, expected: str) -> None:
    reply = await ask(stub, text)
    assert expected in reply["text"]
    assert bot.stats().reply_failures == 0


async def test_status_help_and_engine_texts(stub: TelegramStub, bot: TelegramBot, alerts: AlertEngine) -> None:
    await alerts.raise_alert("k", "critical", "risk", "margin low")
    assert "alerts: 1 open, 1 unacknowledged" in (await ask(stub, "/status"))["text"]
    assert (await ask(stub, "/positions"))["text"] == "no open positions"
    assert (await ask(stub, f"/pnl@{BOT_USERNAME}"))["text"].startswith("P&L")
    assert (await ask(stub, "/jobs"))["text"] == "no jobs"
    help_text = (await ask(stub, "/help"))["text"]
    for name in ("status", "positions", "pnl", "alerts", "ack", "snooze", "kill", "resume", "jobs", "help",
                 "balance", "daily", "pause", "forceexit"):
        assert f"/{name}" in help_text
    assert "/resume [SYMBOL]" in help_text and "/forceexit SYMBOL" in help_text
    assert (await ask(stub, "/balance"))["text"].startswith("total: equity 10,000.00")
    assert (await ask(stub, "/daily 2"))["text"] == "day -1: +0.00 USDT\nday -0: +0.00 USDT"


# --------------------------------------------------------------------------- kill / resume


async def test_kill_needs_confirmation_and_runs_once(
        stub: TelegramStub, bot: TelegramBot, control: InMemoryEngineControl) -> None:
    first = await ask(stub, "/kill")
    assert "KILL SWITCH" in first["text"]
    first_buttons = buttons(first)
    assert set(first_buttons) == {"Yes, kill", "Cancel"}
    assert control.kill_calls == []

    # cancel: nothing happens, and that confirmation cannot be used any more
    stub.push_callback(ALLOWED, first_buttons["Cancel"], first["message_id"])
    await eventually(lambda: len(stub.edits) == 1, what="cancel edit")
    assert "cancelled" in stub.edits[0]["text"]
    stub.push_callback(ALLOWED, first_buttons["Yes, kill"], first["message_id"])
    await eventually(lambda: len(stub.edits) == 2, what="stale confirm edit")
    assert "no longer valid" in stub.edits[1]["text"]
    assert control.kill_calls == [] and not control.killed

    second = await ask(stub, "/kill")
    confirm = buttons(second)["Yes, kill"]
    stub.push_callback(ALLOWED, confirm, second["message_id"])
    await eventually(lambda: len(stub.edits) == 3, what="kill edit")
    assert control.killed and control.kill_calls == ["telegram:operator"]
    assert "ENGAGED" in stub.edits[2]["text"] and int(stub.edits[2]["message_id"]) == second["message_id"]

    stub.push_callback(ALLOWED, confirm, second["message_id"])  # double tap
    await eventually(lambda: len(stub.edits) == 4, what="double tap edit")
    assert control.kill_calls == ["telegram:operator"]
    assert len(stub.answers) == 4  # every press from an allowed chat is answered

    resume = await ask(stub, "/resume")
    stub.push_callback(ALLOWED, buttons(resume)["Yes, resume"], resume["message_id"])
    await eventually(lambda: not control.killed, what="resume")
    assert control.resume_calls == ["telegram:operator"]


async def test_runner_commands_need_confirmation_and_carry_their_symbol(
        stub: TelegramStub, bot: TelegramBot, control: InMemoryEngineControl) -> None:
    reply = await ask(stub, "/pause btc/usdt")
    assert reply["text"].startswith("Pause BTC/USDT?") and set(buttons(reply)) == {"Yes, pause", "Cancel"}
    assert control.calls == []
    stub.push_callback(ALLOWED, buttons(reply)["Yes, pause"], reply["message_id"])
    await eventually(lambda: len(stub.edits) == 1, what="pause edit")
    assert control.calls == [("pause", "telegram:operator", "BTC/USDT")]
    assert stub.edits[0]["text"] == "paused BTC/USDT by telegram:operator"

    reply = await ask(stub, "/resume BTC/USDT")                  # a symbol: that runner, not the kill switch
    assert reply["text"].startswith("Resume BTC/USDT?")
    stub.push_callback(ALLOWED, buttons(reply)["Yes, resume"], reply["message_id"])
    await eventually(lambda: len(stub.edits) == 2, what="resume edit")
    assert control.calls[-1] == ("resume_runner", "telegram:operator", "BTC/USDT") and control.resume_calls == []

    reply = await ask(stub, "/forceexit BTC/USDT")
    stub.push_callback(ALLOWED, buttons(reply)["Cancel"], reply["message_id"])
    await eventually(lambda: len(stub.edits) == 3, what="cancel edit")
    assert stub.edits[2]["text"] == "/forceexit BTC/USDT cancelled by telegram:operator"
    stub.push_callback(ALLOWED, buttons(reply)["Yes, close"], reply["message_id"])     # used up by the cancel
    await eventually(lambda: len(stub.edits) == 4, what="stale edit")
    assert "no longer valid" in stub.edits[3]["text"] and len(control.calls) == 2


async def test_confirmation_expires(stub: TelegramStub, alerts: AlertEngine, control: InMemoryEngineControl) -> None:
    clock = ManualClock(T0)
    bot = await started(TelegramBot(TOKEN, [ALLOWED], control, alerts=alerts,
                                    settings=fast(stub, confirm_ttl_s=60), clock=clock))
    try:
        reply = await ask(stub, "/kill")
        clock.advance(61_000)
        stub.push_callback(ALLOWED, buttons(reply)["Yes, kill"], reply["message_id"])
        await eventually(lambda: len(stub.edits) == 1, what="expiry edit")
        assert "expired" in stub.edits[0]["text"]
        assert control.kill_calls == [] and not control.killed
    finally:
        await bot.stop()


# --------------------------------------------------------------------------- notifications


async def test_notifications_above_threshold_and_trade_messages(
        stub: TelegramStub, bot: TelegramBot, alerts: AlertEngine) -> None:
    info = await alerts.raise_alert("grid.info", "info", "grid", "level filled")
    crit = await alerts.raise_alert("risk.kill", "critical", "risk", "kill switch engaged")
    assert bot.send_grid_level_opened("BTC/USDT:USDT", 2, "long", 64250.5, 0.003, T0)
    assert bot.send_cycle_closed("BTC/USDT:USDT", 12.345, "USDT", T0, pnl_pct=1.2, duration_ms=5_400_000, levels=3)
    assert bot.send_daily_report(T0, {"P&L": "+12.35 USDT", "Cycles": "1 closed"})

    await eventually(lambda: bot.stats().outbox.sent == 4, what="4 messages")
    texts = stub.texts_to(ALLOWED)
    assert len(texts) == 4
    assert texts[0].startswith("[CRITICAL] kill switch engaged") and f"/ack {crit.id}" in texts[0]
    assert not any(f"#{info.id}" in t for t in texts)
    assert texts[1].startswith("Grid level 2 opened: BTC/USDT:USDT long 0.003 @ 64250.5")
    assert texts[2].startswith("Cycle closed: BTC/USDT:USDT +12.35 USDT (+1.20%)") and "3 level(s), open 1h 30m" in texts[2]
    assert texts[3].startswith("Radar daily report 2026-01-01 (UTC)\nP&L: +12.35 USDT\nCycles: 1 closed")


@pytest.mark.parametrize("fault", ["500", "hang"])
async def test_engine_keeps_its_pace_while_telegram_fails(
        stub: TelegramStub, alerts: AlertEngine, control: InMemoryEngineControl, db_path: Path, fault: str) -> None:
    bot = await started(TelegramBot(TOKEN, [ALLOWED], control, alerts=alerts, settings=fast(stub, send_timeout_s=1.0)))
    try:
        if fault == "500":
            stub.fail("sendMessage", 500)
        else:
            stub.hang("sendMessage")
        raised: list[int] = []
        max_lag = 0.0

        async def engine() -> None:  # ticks every 10 ms and raises an alert every 10th tick
            nonlocal max_lag
            last = time.monotonic()
            for tick in range(100):
                await asyncio.sleep(0.01)
                now = time.monotonic()
                max_lag = max(max_lag, now - last - 0.01)  # includes the previous tick's raise_alert
                last = now
                if tick % 10 == 0:
                    alert = await alerts.raise_alert(f"feed.stale:{tick}", "error", "feed", f"feed {tick} stale")
                    raised.append(alert.id)

        await engine()
        assert len(raised) == 10
        # an engine waiting on Telegram would stall for the send timeout (1 s) or the backoff
        assert max_lag < 0.5, f"engine stalled {max_lag:.3f}s"
        stats = bot.stats().outbox
        assert stub.calls_of("sendMessage") and stats.sent == 0 and stats.failed == 0
        assert stats.queued + stats.in_flight == 10
        conn = open_sync(db_path)
        try:
            assert all(store.get(conn, i) is not None for i in raised)
        finally:
            conn.close()

        stub.recover()
        await eventually(lambda: bot.stats().outbox.sent == 10, timeout=8, what="delivery after recovery")
        delivered = "\n".join(stub.texts_to(ALLOWED))
        assert all(f"#{i}" in delivered for i in raised)
        assert bot.stats().outbox.sent == 10 and bot.stats().outbox.failed == 0
    finally:
        await bot.stop()


# python-telegram-bot itself warns when it builds RetryAfter (its int-vs-timedelta migration)
@pytest.mark.filterwarnings("ignore::telegram.warnings.PTBDeprecationWarning")
async def test_retry_after_from_429_is_respected(stub: TelegramStub, bot: TelegramBot) -> None:
    stub.rate_limit("sendMessage", retry_after=1, times=1)
    bot.send_text("hello")
    await eventually(lambda: bot.stats().outbox.sent == 1, what="delivery after 429")
    assert stub.texts_to(ALLOWED) == ["hello"]
    first, second = stub.calls_of("sendMessage")[:2]
    assert first.outcome == "429" and second.outcome == "ok"
    assert second.at - first.at >= 1.0
    assert bot.stats().outbox.retries == 1 and bot.stats().outbox.sent == 1


async def test_permanent_failure_is_counted_not_raised(
        stub: TelegramStub, bot: TelegramBot, caplog: pytest.LogCaptureFixture) -> None:
    stub.fail("sendMessage", 400, times=1)
    assert bot.send_text("to a vanished chat") is True
    bot.send_text("next one")
    await eventually(lambda: bot.stats().outbox.sent == 1, what="next message")
    assert stub.texts_to(ALLOWED) == ["next one"]
    stats = bot.stats().outbox
    assert stats.failed == 1 and stats.sent == 1 and stats.retries == 0
    assert "chat not found" in (stats.last_error or "").lower()
    assert any("gave up" in r.getMessage() for r in caplog.records)


async def test_telegram_down_at_start_does_not_block_and_connects_later(
        stub: TelegramStub, alerts: AlertEngine, control: InMemoryEngineControl) -> None:
    stub.fail("getMe", 500, times=3)
    bot = TelegramBot(TOKEN, [ALLOWED], control, alerts=alerts, settings=fast(stub))
    try:
        bot.start()  # returns at once
        assert bot.stats().state == "connecting"
        bot.send_text("queued before connecting")
        await asyncio.wait_for(bot.wait_connected(), 5)
        assert bot.stats().connect_failures == 3
        await eventually(lambda: bot.stats().outbox.sent == 1, what="delivery")
        assert stub.texts_to(ALLOWED) == ["queued before connecting"]
    finally:
        await bot.stop()
    assert bot.stats().state == "stopped"


# --------------------------------------------------------------------------- outbox (no Telegram)


class FakeSend:
    """A send function failing with the given exceptions first, then succeeding; records attempts."""

    def __init__(self, *failures: BaseException) -> None:
        self.failures = list(failures)
        self.attempts: list[str] = []
        self.delivered: list[str] = []

    async def __call__(self, msg: OutgoingMessage) -> None:
        self.attempts.append(msg.text)
        if self.failures:
            raise self.failures.pop(0)
        self.delivered.append(msg.text)


def recording_sleep(delays: list[float]) -> Callable[[float], Any]:
    async def sleep(s: float) -> None:
        delays.append(s)
        await asyncio.sleep(0)
    return sleep


async def test_outbox_backoff_doubles_up_to_the_cap_and_respects_retry_later() -> None:
    send = FakeSend(ConnectionError("down"), ConnectionError("down"), RetryLater(7), ConnectionError("down"),
                    ConnectionError("down"))
    delays: list[float] = []
    box = Outbox(send, max_size=10, retry_base_s=1.0, retry_max_s=4.0, sleep=recording_sleep(delays))
    box.put(ALLOWED, "m")
    box.start()
    await asyncio.wait_for(box.wait_idle(), 2)
    await box.stop()
    assert delays == [1.0, 2.0, 7.0, 4.0, 4.0]
    assert send.delivered == ["m"] and box.stats().sent == 1 and box.stats().retries == 5


async def test_outbox_gives_up_permanent_exhausted_and_expired_messages() -> None:
    clock = ManualClock(T0)
    send = FakeSend(PermanentSendError("Forbidden: bot was blocked"), TimeoutError(), TimeoutError())
    box = Outbox(send, max_size=10, max_attempts=2, expire_after_ms=60_000, clock=clock,
                 sleep=recording_sleep([]))
    box.put(ALLOWED, "blocked")
    box.put(ALLOWED, "flaky")
    box.put(ALLOWED, "ok")
    box.start()
    await asyncio.wait_for(box.wait_idle(), 2)
    assert send.attempts == ["blocked", "flaky", "flaky", "ok"] and send.delivered == ["ok"]
    assert box.stats().failed == 2 and box.stats().sent == 1

    box.put(ALLOWED, "stale")
    await box.stop()  # unsent at stop counts as failed
    assert box.stats().failed == 3
    box2 = Outbox(FakeSend(), max_size=10, expire_after_ms=60_000, clock=clock)
    box2.put(ALLOWED, "old")
    clock.advance(61_000)
    box2.start()
    await asyncio.wait_for(box2.wait_idle(), 2)
    await box2.stop()
    assert box2.stats().failed == 1 and box2.stats().sent == 0


async def test_outbox_overflow_drops_oldest_low_severity_first() -> None:
    box = Outbox(FakeSend(), max_size=4)  # not started: everything stays queued
    for text, sev in [("i1", "info"), ("w1", "warning"), ("i2", "info"), ("c1", "critical")]:
        assert box.put(ALLOWED, text, sev)
    assert box.put(ALLOWED, "w2", "warning")       # drops i1 (oldest info)
    assert box.put(ALLOWED, "i3", "info")          # drops i2 (oldest info), keeps the newer info
    assert box.put(ALLOWED, "c2", "critical")      # drops i3
    assert not box.put(ALLOWED, "i4", "info")      # nothing lower queued: the new info is dropped
    assert box.put(ALLOWED, "c3", "critical")      # drops w1
    assert box.put(ALLOWED, "c4", "critical")      # drops w2
    assert box.put(ALLOWED, "c5", "critical")      # only criticals left: the oldest critical goes
    assert [m.text for m in box.pending()] == ["c2", "c3", "c4", "c5"]
    assert box.stats().dropped == 7 and box.stats().queued == 4


@hsettings(max_examples=200, deadline=None)
@given(st.integers(min_value=1, max_value=5), st.lists(st.sampled_from(list(Severity)), max_size=40))
def test_outbox_never_drops_a_message_for_a_less_severe_one(size: int, severities: list[Severity]) -> None:
    box = Outbox(FakeSend(), max_size=size)
    for i, sev in enumerate(severities):
        before = {m.seq: m.severity for m in box.pending()}
        box.put(ALLOWED, str(i), sev)
        after = {m.seq: m.severity for m in box.pending()}
        offered = {**before, float("inf"): sev}  # the new message is the newest
        kept = {s for s in offered if s in after} | ({float("inf")} if len(after) > len(set(after) & set(before))
                                                      else set())
        dropped = [s for s in offered if s not in kept]
        assert len(after) <= size and len(dropped) <= 1
        for d in dropped:  # everything kept is more severe, or as severe and newer
            assert all(offered[k].rank > offered[d].rank or (offered[k] is offered[d] and k > d) for k in kept)
    assert box.stats().dropped + box.stats().queued == len(severities)


# --------------------------------------------------------------------------- secrets and config


async def test_token_never_appears_in_logs(
        stub: TelegramStub, alerts: AlertEngine, control: InMemoryEngineControl,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    httpx_logger = logging.getLogger("httpx")
    old_level = httpx_logger.level
    # a rejected token: python-telegram-bot puts the token into the InvalidToken message
    wrong = "7000001:WRONGsecretTOKEN-abc"
    rejected = TelegramBot(wrong, [ALLOWED], control, settings=fast(stub))
    rejected.start()
    await eventually(lambda: rejected.stats().state == "token rejected", what="token rejection")
    await rejected.stop()

    bot = TelegramBot(TOKEN, [ALLOWED], control, alerts=alerts, settings=fast(stub))
    try:
        httpx_logger.setLevel(logging.DEBUG)  # someone turns request logging on: URLs are still redacted
        await started(bot)
        await ask(stub, "/status")
        stub.fail("sendMessage", 500, times=2)
        bot.send_text("through errors")
        await eventually(lambda: bot.stats().outbox.sent == 1, what="delivery")
    finally:
        await bot.stop()
        httpx_logger.setLevel(old_level)

    messages = [r.getMessage() for r in caplog.records]
    assert any(r.name == "httpx" and "/bot***/sendMessage" in r.getMessage() for r in caplog.records)
    assert any("token was rejected" in m for m in messages)
    for secret in (TOKEN, wrong):
        assert secret not in caplog.text
        assert not any(secret in m for m in messages)
        assert secret not in str(bot.stats()) and secret not in str(rejected.stats())


def test_config_errors_name_the_variable(stub: TelegramStub, control: InMemoryEngineControl) -> None:
    with pytest.raises(ConfigError, match="TELEGRAM_ALLOWED_CHAT_IDS"):
        TelegramBot(TOKEN, [], control, settings=fast(stub))
    with pytest.raises(ConfigError, match="TELEGRAM_BOT_TOKEN") as err:
        TelegramBot("  ", [ALLOWED], control)
    assert TOKEN not in str(err.value)
    with pytest.raises(ConfigError, match="queue_size"):
        TelegramSettings(queue_size=0)
    with pytest.raises(ConfigError, match="min_severity"):
        TelegramSettings(min_severity="loud")  # type: ignore[arg-type]


def test_parse_command() -> None:
    assert parse_command("/ack 12") == ("ack", ["12"])
    assert parse_command(f"/Status@{BOT_USERNAME}", BOT_USERNAME) == ("status", [])
    assert parse_command("/status@other_bot", BOT_USERNAME) is None
    assert parse_command("hello /status") is None
    assert parse_command("") is None
    assert fmt.fit("x" * 5000).endswith("…") and len(fmt.fit("x" * 5000)) == 4096
