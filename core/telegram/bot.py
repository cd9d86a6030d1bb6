"""The Telegram bot: python-telegram-bot wiring, allow-list, notifications and the outbox.

Runs inside the engine's event loop (never `run_polling`, which owns the loop):
`start()` only schedules a background task that connects (getMe,
deleteWebhook, setMyCommands) with backoff until Telegram answers, then starts
the Application, long polling and the outbox drain. Telegram being slow,
down, rate limiting or rejecting the token never blocks or stops the engine:
nothing the engine calls here awaits Telegram (`notify` and the `send_*`
methods only queue), and every failure is counted and logged.

Access: only chats in the allow-list (TELEGRAM_ALLOWED_CHAT_IDS) are served;
anything from another chat gets no answer at all and is logged with its chat
id and command name only (at most once a minute per chat). In an allowed group
every member may command.

The token is never logged: see `core.telegram.logs`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import warnings
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Awaitable, Iterable, Mapping

from pydantic import SecretStr
from telegram import BotCommand, InlineKeyboardButton, InlineKeyboardMarkup, ReplyParameters, Update
from telegram.error import BadRequest, ChatMigrated, Forbidden, InvalidToken, RetryAfter, TelegramError
from telegram.ext import Application, ApplicationBuilder, CallbackQueryHandler, ContextTypes, MessageHandler, filters

from core.alerts.engine import AlertEngine
from core.alerts.model import Severity
from core.alerts.notify import Notification
from core.config.secrets import TELEGRAM_CHATS_VAR, TELEGRAM_TOKEN_VAR, Secrets
from core.errors import ConfigError
from core.model.clock import Clock, system_clock
from core.telegram import format as fmt
from core.telegram.commands import COMMANDS, CommandRouter, Reply, command_name_for_log, parse_command
from core.telegram.confirm import Confirmations
from core.telegram.control import EngineControl
from core.telegram.logs import protect_token
from core.telegram.outbox import Outbox, OutboxStats, OutgoingMessage, PermanentSendError, RetryLater
from core.telegram.settings import TelegramSettings

log = logging.getLogger(__name__)

#: Interval between two log lines about the same refused chat, and between polling-error log lines (ms).
LOG_EVERY_MS = 60_000


@dataclass(frozen=True)
class TelegramStats:
    """Counters of the bot for the health screen (totals since creation unless said otherwise).

    Attributes:
        state: "stopped", "connecting", "connected" or "token rejected".
        outbox: the outgoing queue (queued, in_flight, retrying, sent, dropped, failed, retries).
        refused: messages and button presses from chats not on the allow-list.
        reply_failures: command replies / button answers that could not be sent (not retried).
        poll_errors: failed getUpdates calls (python-telegram-bot retries them).
        connect_failures: failed attempts to connect.
    """

    state: str
    outbox: OutboxStats
    refused: int
    reply_failures: int
    poll_errors: int
    connect_failures: int


def _retry_after_s(exc: RetryAfter) -> float:
    with warnings.catch_warnings():  # the int form of retry_after is deprecated in PTB 22
        warnings.simplefilter("ignore")
        value = exc.retry_after
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def _actor(update: Update) -> str:
    user = update.effective_user
    if user is None:
        chat = update.effective_chat
        return f"telegram:chat{chat.id if chat else '?'}"
    return f"telegram:{user.username or user.id}"[:64]


class TelegramBot:
    """The Telegram integration of one engine process.

    Args:
        token: the bot token (keep it a `SecretStr`).
        allowed_chat_ids: chats that receive notifications and may command (non-empty).
        control: the engine (see `core.telegram.control.EngineControl`).
        alerts: the alert engine: its notifications at or above `settings.min_severity`
            are sent (the bot adds itself to `alerts.sinks`), and /alerts, /ack, /snooze use it.
        settings: thresholds, queue size, retries, timeouts, base_url.
        clock: ms UTC time source.

    Raises:
        ConfigError: no token, or no allowed chat (file "environment", key = the variable).
    """

    def __init__(self, token: SecretStr | str, allowed_chat_ids: Iterable[int], control: EngineControl, *,
                 alerts: AlertEngine | None = None, settings: TelegramSettings | None = None,
                 clock: Clock = system_clock) -> None:
        value = token.get_secret_value() if isinstance(token, SecretStr) else token
        if not isinstance(value, str) or not value.strip():
            raise ConfigError("environment", TELEGRAM_TOKEN_VAR, "is not set")
        self._allowed = frozenset(int(c) for c in allowed_chat_ids)
        if not self._allowed:
            raise ConfigError("environment", TELEGRAM_CHATS_VAR, "is empty: nobody could use the bot")
        self._settings = s = settings or TelegramSettings()
        self._redactor = protect_token(value)  # before the builder logs the URL
        self._clock = clock
        self._alerts = alerts
        t = s.send_timeout_s
        self._app: Application = (
            ApplicationBuilder().token(value).base_url(s.base_url).job_queue(None).concurrent_updates(4)
            .connect_timeout(t).read_timeout(t).write_timeout(t).pool_timeout(t)
            .get_updates_connect_timeout(t).get_updates_read_timeout(t).get_updates_write_timeout(t)
            .get_updates_pool_timeout(t)
            .build())
        self._app.add_handler(MessageHandler(filters.UpdateType.MESSAGE, self._on_message))
        self._app.add_handler(CallbackQueryHandler(self._on_callback))
        self._app.add_error_handler(self._on_error)
        self._outbox = Outbox(
            self._send, max_size=s.queue_size, retry_base_s=s.retry_base_s, retry_max_s=s.retry_max_s,
            max_attempts=s.max_attempts,
            expire_after_ms=None if s.expire_after_s is None else int(s.expire_after_s * 1000),
            send_timeout_s=s.send_timeout_s, clock=clock, redact=self._redactor.redact)
        self._router = CommandRouter(control, alerts, Confirmations(int(s.confirm_ttl_s * 1000), clock),
                                     s.command_timeout_s)
        self._state = "stopped"
        self._connected = asyncio.Event()
        self._connect_task: asyncio.Task[None] | None = None
        self._refused = 0
        self._refused_logged: dict[int, int] = {}
        self._reply_failures = 0
        self._poll_errors = 0
        self._poll_logged_ms: int | None = None
        self._connect_failures = 0
        self._sink_attached = False
        if alerts is not None:  # notifications queue from now on, even before start()
            alerts.sinks.add(self.notify)
            self._sink_attached = True

    @classmethod
    def from_secrets(cls, secrets: Secrets, control: EngineControl, *, alerts: AlertEngine | None = None,
                     settings: TelegramSettings | None = None, clock: Clock = system_clock) -> "TelegramBot":
        """A bot from `Secrets` (TELEGRAM_BOT_TOKEN, TELEGRAM_ALLOWED_CHAT_IDS).

        Raises:
            ConfigError: the token is not set or the allow-list is empty.
        """
        if secrets.telegram_bot_token is None:
            raise ConfigError("environment", TELEGRAM_TOKEN_VAR, "is not set")
        return cls(secrets.telegram_bot_token, secrets.telegram_allowed_chat_ids, control, alerts=alerts,
                   settings=settings, clock=clock)

    # ------------------------------------------------------------------- lifecycle

    @property
    def allowed_chat_ids(self) -> frozenset[int]:
        """The chats served."""
        return self._allowed

    @property
    def outbox(self) -> Outbox:
        """The outgoing queue (for inspection; use the `send_*` methods to queue)."""
        return self._outbox

    def start(self) -> None:
        """Begin connecting in the background and return at once (idempotent).

        Needs a running event loop. Connection failures are retried with backoff
        (`connect_retry_base_s` doubling to `connect_retry_max_s`); a rejected token
        stops the attempts (state "token rejected", logged). Messages queued before the
        connection succeeds wait in the outbox. After `stop()` the bot may be started again.
        """
        if self._alerts is not None and not self._sink_attached:
            self._alerts.sinks.add(self.notify)
            self._sink_attached = True
        if self._connect_task is not None and not self._connect_task.done():
            return
        if self._state == "connected":
            return
        self._state = "connecting"
        self._connect_task = asyncio.get_running_loop().create_task(self._connect_loop(), name="telegram-connect")

    async def wait_connected(self) -> None:
        """Wait until polling runs (wrap in `asyncio.wait_for` to bound it)."""
        await self._connected.wait()

    async def stop(self) -> None:
        """Flush the outbox for up to `stop_flush_s`, stop polling and release the HTTP clients.

        Idempotent; never raises (except cancellation of the caller): shutdown errors are logged.
        """
        if self._alerts is not None:
            self._alerts.sinks.remove(self.notify)
            self._sink_attached = False
        if self._connect_task is not None:
            self._connect_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._connect_task
            self._connect_task = None
        await self._outbox.stop(self._settings.stop_flush_s if self._state == "connected" else 0.0)
        app = self._app
        try:
            if app.updater is not None and app.updater.running:
                await app.updater.stop()
            if app.running:
                await app.stop()
            await app.shutdown()
            await app.bot.shutdown()  # when initialize() failed half way; no-op otherwise
        except Exception as exc:
            log.warning("telegram shutdown: %s", self._redactor.redact(f"{type(exc).__name__}: {exc}"))
        self._state = "stopped"
        self._connected.clear()

    async def _connect_loop(self) -> None:
        s = self._settings
        delay = s.connect_retry_base_s
        while True:
            try:
                await self._connect()
                return
            except asyncio.CancelledError:
                raise
            except InvalidToken:
                self._state = "token rejected"
                self._connect_failures += 1
                log.error("telegram: the bot token was rejected by the server; the bot stays off "
                          "(check %s)", TELEGRAM_TOKEN_VAR)
                return
            except Exception as exc:
                self._connect_failures += 1
                log.warning("telegram: cannot connect (%s); retrying in %.1fs",
                            self._redactor.redact(f"{type(exc).__name__}: {exc}"), delay)
            await asyncio.sleep(delay)
            delay = min(s.connect_retry_max_s, delay * 2)

    async def _connect(self) -> None:
        s = self._settings
        app = self._app
        await app.initialize()  # getMe
        if s.register_commands:
            try:
                await app.bot.set_my_commands([BotCommand(c.name, c.description) for c in COMMANDS])
            except TelegramError as exc:
                log.warning("telegram: setMyCommands failed (%s); commands still work",
                            self._redactor.redact(str(exc)))
        if not app.running:
            await app.start()
        assert app.updater is not None
        if not app.updater.running:
            await app.updater.start_polling(
                timeout=timedelta(seconds=s.poll_timeout_s), allowed_updates=["message", "callback_query"],
                drop_pending_updates=s.drop_pending_updates, error_callback=self._on_poll_error)
        self._outbox.start()
        self._state = "connected"
        self._connected.set()
        log.info("telegram: connected as @%s, serving %d chat(s)", app.bot.username, len(self._allowed))

    # ------------------------------------------------------------------- outgoing

    def notify(self, notification: Notification) -> None:
        """AlertEngine sink: queue `notification` for every allowed chat if at or above the threshold.

        Never blocks and never raises.
        """
        if notification.alert.severity.rank < self._settings.min_severity.rank:
            return
        self._broadcast(fmt.notification_text(notification), notification.alert.severity)

    def send_text(self, text: str, severity: Severity | str = Severity.INFO) -> bool:
        """Queue plain `text` (cut to 4096 characters) for every allowed chat.

        Args:
            severity: priority if the queue overflows (not shown).

        Returns:
            True when queued for every chat (False: dropped for at least one; counted).

        Raises:
            AlertInputError: an unknown severity.
        """
        return self._broadcast(fmt.fit(text), Severity.parse(severity))

    def send_grid_level_opened(self, symbol: str, level: int, side: str, price: float, amount: float,
                               at_ms: int) -> bool:
        """Queue "grid level opened" (see `format.grid_level_opened_text`; info priority). Returns as `send_text`."""
        return self._broadcast(fmt.grid_level_opened_text(symbol, level, side, price, amount, at_ms),
                               Severity.INFO)

    def send_cycle_closed(self, symbol: str, pnl: float, quote: str, at_ms: int, *, pnl_pct: float | None = None,
                          duration_ms: int | None = None, levels: int | None = None) -> bool:
        """Queue "cycle closed with P&L" (see `format.cycle_closed_text`; info priority). Returns as `send_text`."""
        text = fmt.cycle_closed_text(symbol, pnl, quote, at_ms, pnl_pct=pnl_pct, duration_ms=duration_ms,
                                     levels=levels)
        return self._broadcast(text, Severity.INFO)

    def send_daily_report(self, day_start_ms: int,
                          sections: Mapping[str, str] | Iterable[tuple[str, str]]) -> bool:
        """Queue the daily report (see `format.daily_report_text`; warning priority, so it outlives
        info messages in an overflow). Returns as `send_text`."""
        return self._broadcast(fmt.daily_report_text(day_start_ms, sections), Severity.WARNING)

    def send_weekly_report(self, week_start_ms: int,
                           sections: Mapping[str, str] | Iterable[tuple[str, str]]) -> bool:
        """Queue the weekly report (see `format.weekly_report_text`; warning priority, as the daily
        one). Returns as `send_text`."""
        return self._broadcast(fmt.weekly_report_text(week_start_ms, sections), Severity.WARNING)

    def _broadcast(self, text: str, severity: Severity) -> bool:
        ok = True
        for chat_id in sorted(self._allowed):
            ok = self._outbox.put(chat_id, text, severity) and ok
        return ok

    async def _send(self, msg: OutgoingMessage) -> None:
        try:
            await self._app.bot.send_message(chat_id=msg.chat_id, text=msg.text)
        except RetryAfter as exc:
            raise RetryLater(_retry_after_s(exc)) from None
        except (BadRequest, Forbidden, InvalidToken, ChatMigrated) as exc:
            raise PermanentSendError(f"{type(exc).__name__}: {exc}") from None

    # ------------------------------------------------------------------- incoming

    def _allowed_chat(self, chat_id: int | None, what: str) -> bool:
        if chat_id is not None and chat_id in self._allowed:
            return True
        self._refused += 1
        now = self._clock()
        last = self._refused_logged.get(chat_id or 0)
        if last is None or now - last >= LOG_EVERY_MS:
            if len(self._refused_logged) > 1000:
                self._refused_logged.clear()
            self._refused_logged[chat_id or 0] = now
            log.warning("telegram: ignored %s from chat %s (not in %s; %d refused so far)",
                        what, chat_id, TELEGRAM_CHATS_VAR, self._refused)
        return False

    async def _on_message(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        msg, chat = update.message, update.effective_chat
        if msg is None:
            return
        if not self._allowed_chat(chat.id if chat else None, command_name_for_log(msg.text)):
            return
        assert chat is not None
        try:
            username = self._app.bot.username
        except RuntimeError:
            username = None
        parsed = parse_command(msg.text, username)
        if parsed is None:
            return
        name, args = parsed
        actor = _actor(update)
        log.info("telegram: /%s from %s in chat %s", name, actor, chat.id)
        reply = await self._router.handle(name, args, chat.id, actor)
        await self._reply(chat.id, reply, msg.message_id)

    async def _on_callback(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        if query is None:
            return
        message = query.message
        chat_id = message.chat.id if message is not None else None
        if not self._allowed_chat(chat_id, "a button press"):
            return
        assert message is not None and chat_id is not None
        outcome = await self._router.handle_callback(query.data, chat_id, _actor(update))
        await self._guard("answerCallbackQuery", self._app.bot.answer_callback_query(query.id, text=outcome.toast))
        if outcome.edit_text is not None:
            await self._guard("editMessageText", self._app.bot.edit_message_text(
                outcome.edit_text, chat_id=chat_id, message_id=message.message_id))

    async def _reply(self, chat_id: int, reply: Reply, to_message_id: int) -> None:
        """Send `reply` as a reply to the command message (sent anyway if that message is gone)."""
        markup = (InlineKeyboardMarkup([[InlineKeyboardButton(label, callback_data=data)
                                         for label, data in reply.buttons]]) if reply.buttons else None)
        quote = ReplyParameters(message_id=to_message_id, allow_sending_without_reply=True)
        await self._guard("reply", self._app.bot.send_message(chat_id=chat_id, text=reply.text,
                                                              reply_markup=markup, reply_parameters=quote))

    async def _guard(self, what: str, call: Awaitable[Any]) -> None:
        """Await a reply-side call with a timeout; failures are counted and logged, never raised."""
        try:
            await asyncio.wait_for(call, self._settings.send_timeout_s)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._reply_failures += 1
            log.warning("telegram %s failed: %s", what, self._redactor.redact(f"{type(exc).__name__}: {exc}"))

    def _on_poll_error(self, exc: TelegramError) -> None:
        self._poll_errors += 1
        now = self._clock()
        if self._poll_logged_ms is None or now - self._poll_logged_ms >= LOG_EVERY_MS:
            self._poll_logged_ms = now
            log.warning("telegram polling failed (%s; %d so far); python-telegram-bot retries",
                        self._redactor.redact(f"{type(exc).__name__}: {exc}"), self._poll_errors)

    async def _on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        err = context.error
        log.error("telegram update handling failed: %s",
                  self._redactor.redact(f"{type(err).__name__}: {err}"))

    # ------------------------------------------------------------------- state

    def stats(self) -> TelegramStats:
        """A snapshot of the counters (cheap; for the health screen)."""
        return TelegramStats(state=self._state, outbox=self._outbox.stats(), refused=self._refused,
                             reply_failures=self._reply_failures, poll_errors=self._poll_errors,
                             connect_failures=self._connect_failures)
