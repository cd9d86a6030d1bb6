"""The bot's commands: parsing, the replies, and the confirmations of /kill, /resume [SYMBOL],
/pause SYMBOL and /forceexit SYMBOL (each runs, once confirmed, through `EngineControl`: the
engine's audited command path, as from the CLI). /resume without an argument releases the kill
switch; with a SYMBOL it lifts that runner's pause.

Independent of python-telegram-bot: `CommandRouter.handle` takes a command
name and its arguments from an allowed chat and returns a `Reply`;
`CommandRouter.handle_callback` takes a confirmation button press. Neither
ever raises (except cancellation): bad input gets a usage reply, an engine
error gets an error reply and is logged. Who may command is decided before
(see `core.telegram.bot`).
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from typing import Awaitable, Callable

from core.alerts.durations import ACCEPTED_FORMS, parse_duration_ms
from core.alerts.engine import AlertEngine
from core.errors import UsageError
from core.telegram import format as fmt
from core.telegram.confirm import Confirmations, TakeStatus
from core.telegram.control import EngineControl

log = logging.getLogger(__name__)

#: Callback data prefixes of the confirmation buttons ("<prefix><token>", at most 64 bytes).
CONFIRM_PREFIX = "ok:"
CANCEL_PREFIX = "no:"

_COMMAND_RE = re.compile(r"/([A-Za-z0-9_]{1,32})(?:@([A-Za-z0-9_]{1,64}))?")


@dataclass(frozen=True)
class CommandSpec:
    """One command for /help and the Telegram command menu."""

    name: str
    usage: str
    description: str


COMMANDS: tuple[CommandSpec, ...] = (
    CommandSpec("status", "/status", "engine state, kill switch and alert counts"),
    CommandSpec("positions", "/positions", "open positions"),
    CommandSpec("pnl", "/pnl", "profit and loss"),
    CommandSpec("alerts", "/alerts", "open alerts, most severe first"),
    CommandSpec("ack", "/ack ID", "acknowledge alert ID"),
    CommandSpec("snooze", "/snooze ID DURATION", "snooze alert ID for e.g. 30m, 2h, 1d"),
    CommandSpec("balance", "/balance", "equity, cash and day P&L per runner and in total (USDT)"),
    CommandSpec("daily", "/daily [N]", "P&L per UTC day of the last N days (default 7)"),
    CommandSpec("kill", "/kill", "trip the kill switch (asks to confirm)"),
    CommandSpec("resume", "/resume [SYMBOL]", "release the kill switch; with SYMBOL: resume that runner (asks to confirm)"),
    CommandSpec("pause", "/pause SYMBOL", "pause a runner: no new entries, stops kept (asks to confirm)"),
    CommandSpec("forceexit", "/forceexit SYMBOL", "close SYMBOL's position at market (asks to confirm)"),
    CommandSpec("jobs", "/jobs", "research jobs"),
    CommandSpec("help", "/help", "this list"),
)
_USAGE = {c.name: c.usage for c in COMMANDS}
#: /daily: most days asked at once
MAX_DAYS = 366
#: confirmed actions -> (question, button label); "{symbol}" is filled in
_QUESTIONS = {
    "kill": ("Trip the KILL SWITCH? Radar stops opening positions and cancels working orders.", "Yes, kill"),
    "resume": ("Release the kill switch and resume trading?", "Yes, resume"),
    "resume_runner": ("Resume {symbol}? Its entries are placed again from the next candle.", "Yes, resume"),
    "pause": (("Pause {symbol}? No new entries (working entry orders cancelled); its open position keeps its "
               "stop and take-profit."), "Yes, pause"),
    "forceexit": ("Close the position of {symbol} at market NOW (force-exit; its entry orders cancelled)?",
                  "Yes, close"),
}


@dataclass(frozen=True)
class Reply:
    """A message to send back.

    Attributes:
        text: plain text (already fitted to Telegram's limit).
        buttons: one row of inline-keyboard buttons as (label, callback data); empty: none.
    """

    text: str
    buttons: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class CallbackOutcome:
    """What to do after a button press.

    Attributes:
        toast: the short answer shown by the Telegram client (answerCallbackQuery).
        edit_text: the new text of the message holding the buttons (buttons removed), or None.
    """

    toast: str
    edit_text: str | None


def parse_command(text: str | None, bot_username: str | None = None) -> tuple[str, list[str]] | None:
    """(command name in lower case, arguments) of a "/name[@bot] args..." text, or None.

    None for a text that is not a command, and for a command addressed to another
    bot ("/status@OtherBot") when `bot_username` is known.
    """
    if not text:
        return None
    parts = text.split()
    m = _COMMAND_RE.fullmatch(parts[0])
    if m is None:
        return None
    if m.group(2) and bot_username and m.group(2).lower() != bot_username.lower():
        return None
    return m.group(1).lower(), parts[1:]


def command_name_for_log(text: str | None) -> str:
    """The first word of a message if it looks like a command (at most 40 safe characters), for logs.

    Never returns anything after the first word, so message contents stay out of logs.
    """
    if not text or not text.startswith("/"):
        return "(not a command)"
    first = text.split(maxsplit=1)[0][:40]
    return re.sub(r"[^A-Za-z0-9_@/]", "?", first)


def help_text() -> str:
    """The /help reply."""
    width = max(len(c.usage) for c in COMMANDS)
    return "Radar commands:\n" + "\n".join(f"{c.usage.ljust(width)}  {c.description}" for c in COMMANDS)


def _usage(name: str, problem: str | None = None) -> Reply:
    text = f"usage: {_USAGE[name]}"
    if name == "snooze":
        text += " (e.g. /snooze 12 30m)"
    return Reply(f"{problem}\n{text}" if problem else text)


def _alert_id(raw: str) -> int | None:
    return int(raw) if raw.isdigit() and len(raw) <= 18 and int(raw) > 0 else None


class CommandRouter:
    """Runs commands from allowed chats against the engine and the alerts.

    Args:
        control: the engine (see `core.telegram.control`).
        alerts: the alert engine, or None (the alert commands then say so).
        confirmations: the pending confirmations (/kill, /resume [SYMBOL], /pause, /forceexit).
        command_timeout_s: how long a read-only engine query (and the check before a confirmation)
            may take; confirmed commands are never cut short.
    """

    def __init__(self, control: EngineControl, alerts: AlertEngine | None, confirmations: Confirmations,
                 command_timeout_s: float = 10.0) -> None:
        self._control = control
        self._alerts = alerts
        self._confirmations = confirmations
        self._timeout_s = command_timeout_s

    async def handle(self, name: str, args: list[str], chat_id: int, actor: str) -> Reply:
        """The reply to command `name` with `args` from `chat_id` sent by `actor`. Never raises."""
        try:
            return await self._dispatch(name, args, chat_id, actor)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("telegram command /%s from chat %s failed", name, chat_id)
            return Reply(fmt.fit(f"/{name} failed: {type(exc).__name__}: {exc}"))

    async def _dispatch(self, name: str, args: list[str], chat_id: int, actor: str) -> Reply:
        simple: dict[str, Callable[[], Awaitable[str]]] = {
            "positions": self._control.positions_text,
            "pnl": self._control.pnl_text,
            "jobs": self._control.jobs_text,
            "balance": self._control.balance_text,
        }
        if name in simple:
            return Reply(fmt.fit(await self._query(simple[name])))
        if name == "status":
            return Reply(fmt.fit(await self._status()))
        if name in ("help", "start"):
            return Reply(help_text())
        if name == "alerts":
            if self._alerts is None:
                return Reply("alerts are not available")
            return Reply(fmt.alerts_text(self._alerts.list(), self._alerts.unacknowledged_count()))
        if name == "ack":
            return await self._ack(args, actor)
        if name == "snooze":
            return await self._snooze(args, actor)
        if name == "daily":
            return await self._daily(args)
        if name == "kill":
            return self._ask_confirmation(name, args, chat_id, actor)
        if name == "resume":
            if not args:
                return self._ask_confirmation(name, args, chat_id, actor)
            return await self._ask_runner_confirmation("resume_runner", "resume", args, chat_id, actor)
        if name in ("pause", "forceexit"):
            return await self._ask_runner_confirmation(name, name, args, chat_id, actor)
        return Reply(f"unknown command /{name}; /help lists the commands")

    async def _daily(self, args: list[str]) -> Reply:
        if len(args) > 1:
            return _usage("daily", "too many arguments")
        if args and not (args[0].isdigit() and 1 <= int(args[0]) <= MAX_DAYS):
            return _usage("daily", f"invalid number of days {args[0][:20]!r}: expected 1 .. {MAX_DAYS}")
        days = int(args[0]) if args else 7
        return Reply(fmt.fit(await self._query(lambda: self._control.daily_text(days))))

    async def _ask_runner_confirmation(self, action: str, command: str, args: list[str], chat_id: int,
                                       actor: str) -> Reply:
        """Confirmation of a command on one runner (`args`: its SYMBOL), after the engine says it can be done."""
        if len(args) != 1:
            return _usage(command, "give one symbol, e.g. BTC/USDT" if not args else "too many arguments")
        symbol = args[0].upper()
        why = await self._query(lambda: self._check(action, symbol))
        if why:
            return Reply(fmt.fit(f"/{command} {symbol}: {why}"))
        return self._confirm(action, (symbol,), chat_id, actor)

    async def _check(self, action: str, symbol: str) -> str:
        return await self._control.check(action, symbol) or ""

    async def _query(self, fn: Callable[[], Awaitable[str]]) -> str:
        try:
            return await asyncio.wait_for(fn(), self._timeout_s)
        except asyncio.TimeoutError:
            return f"the engine did not answer within {self._timeout_s:g}s"

    async def _status(self) -> str:
        text = await self._query(self._control.status_text)
        if self._alerts is not None:
            text += (f"\nalerts: {len(self._alerts.list())} open, "
                     f"{self._alerts.unacknowledged_count()} unacknowledged")
        return text

    async def _ack(self, args: list[str], actor: str) -> Reply:
        if len(args) != 1:
            return _usage("ack", "give one alert id" if not args else "too many arguments")
        alert_id = _alert_id(args[0])
        if alert_id is None:
            return _usage("ack", f"invalid alert id {args[0][:20]!r}: expected a number such as 12")
        if self._alerts is None:
            return Reply("alerts are not available")
        res = await self._alerts.ack(alert_id, actor)
        return Reply(fmt.fit(res.message))

    async def _snooze(self, args: list[str], actor: str) -> Reply:
        if len(args) != 2:
            return _usage("snooze", "give an alert id and a duration")
        alert_id = _alert_id(args[0])
        if alert_id is None:
            return _usage("snooze", f"invalid alert id {args[0][:20]!r}: expected a number such as 12")
        try:
            parse_duration_ms(args[1])
        except UsageError:
            return _usage("snooze", f"invalid duration {args[1][:20]!r}: expected {ACCEPTED_FORMS}")
        if self._alerts is None:
            return Reply("alerts are not available")
        res = await self._alerts.snooze(alert_id, actor, duration=args[1])
        return Reply(fmt.fit(res.message))

    def _ask_confirmation(self, name: str, args: list[str], chat_id: int, actor: str) -> Reply:
        if args:
            return _usage(name, "this command takes no arguments")
        return self._confirm(name, (), chat_id, actor)

    def _confirm(self, action: str, args: tuple[str, ...], chat_id: int, actor: str) -> Reply:
        pending = self._confirmations.create(action, chat_id, actor, args)
        ttl_s = (pending.expires_ms - pending.created_ms) / 1000
        question, label = _QUESTIONS[action]
        question = question.format(symbol=args[0] if args else "")
        return Reply(f"{question}\nThis confirmation expires in {ttl_s:g}s.",
                     ((label, CONFIRM_PREFIX + pending.token), ("Cancel", CANCEL_PREFIX + pending.token)))

    async def handle_callback(self, data: str | None, chat_id: int, actor: str) -> CallbackOutcome:
        """Act on a confirmation button pressed in `chat_id` by `actor`. Never raises.

        Only a confirm press carrying a valid, unexpired token made in the same chat
        runs the action (once); cancel forgets the token.
        """
        data = data or ""
        confirm = data.startswith(CONFIRM_PREFIX)
        if not confirm and not data.startswith(CANCEL_PREFIX):
            return CallbackOutcome("unknown button", None)
        status, pending = self._confirmations.take(data[len(CONFIRM_PREFIX):], chat_id)
        if status is TakeStatus.UNKNOWN or status is TakeStatus.WRONG_CHAT:
            return CallbackOutcome("this confirmation is no longer valid", "confirmation no longer valid")
        assert pending is not None
        shown = _shown(pending.action, pending.args)
        if status is TakeStatus.EXPIRED:
            return CallbackOutcome("expired", f"{shown} confirmation expired; send {shown} again")
        if not confirm:
            log.info("telegram: %s cancelled by %s in chat %s", shown, actor, chat_id)
            return CallbackOutcome("cancelled", f"{shown} cancelled by {actor}")
        log.warning("telegram: %s confirmed by %s in chat %s", shown, actor, chat_id)
        ctl = self._control
        try:
            if pending.action == "kill":
                result = await ctl.kill(actor)
            elif pending.action == "resume":
                result = await ctl.resume(actor)
            elif pending.action == "resume_runner":
                result = await ctl.resume_runner(actor, pending.args[0])
            elif pending.action == "pause":
                result = await ctl.pause(actor, pending.args[0])
            else:
                result = await ctl.forceexit(actor, pending.args[0])
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("telegram: %s by %s failed", shown, actor)
            return CallbackOutcome("failed", fmt.fit(f"{shown} FAILED: {type(exc).__name__}: {exc}"))
        return CallbackOutcome("done", fmt.fit(result))


def _shown(action: str, args: tuple[str, ...]) -> str:
    """The command as the operator typed it, e.g. "/resume BTC/USDT" for action resume_runner."""
    command = "resume" if action == "resume_runner" else action
    return " ".join((f"/{command}", *args))
