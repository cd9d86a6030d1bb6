"""A local stand-in for the Telegram Bot API (aiohttp on 127.0.0.1) for python-telegram-bot tests.

Point the library at it with `base_url=stub.base_url` (".../bot"; the library appends the token).
Serves POST/GET /bot<TOKEN>/<method> for getMe, getUpdates (long polling on
injected updates), sendMessage, answerCallbackQuery, editMessageText,
deleteWebhook and setMyCommands; a wrong token gets 401; an unknown method 404.
Requests are form-encoded as python-telegram-bot sends them (non-string values JSON-encoded).

Test side:
* `push_command(chat_id, "/ack 3")` (returns the message id replies refer to), `push_callback(chat_id, data, message_id)` queue updates;
* `sent`, `answers`, `edits`, `calls` record what the bot did (with monotonic times);
* `fail(method, status=500, times=None)`, `rate_limit(method, retry_after, times=1)`,
  `hang(method)`, `recover()` inject faults.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

BOT_ID = 7_000_001
BOT_USERNAME = "radar_test_bot"


@dataclass
class Fault:
    """One injected fault: HTTP status (with retry_after for 429) or hang; `times` None: until recover()."""

    kind: str  # "status" | "hang"
    status: int = 500
    retry_after: int | None = None
    times: int | None = None


@dataclass
class Call:
    """One request the stub answered (or hung on)."""

    method: str
    params: dict[str, Any]
    at: float = field(default_factory=time.monotonic)
    outcome: str = "ok"


class TelegramStub:
    """The stand-in server. Use `async with TelegramStub(token) as stub:`.

    Args:
        token: the only token accepted.
        max_poll_s: longest a getUpdates long poll is held (keeps shutdown quick).
    """

    def __init__(self, token: str, max_poll_s: float = 1.0) -> None:
        self.token = token
        self.max_poll_s = max_poll_s
        self.calls: list[Call] = []
        self.sent: list[dict[str, Any]] = []
        self.answers: list[dict[str, Any]] = []
        self.edits: list[dict[str, Any]] = []
        self._updates: list[dict[str, Any]] = []
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1000)
        self._faults: dict[str, Fault] = {}
        self._new_update = asyncio.Event()
        self._release = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    # ------------------------------------------------------------------- lifecycle

    async def start(self) -> "TelegramStub":
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5, access_log=None)  # its lines hold the token
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        self._release.set()
        self._new_update.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> "TelegramStub":
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        """The `base_url` for python-telegram-bot ("http://127.0.0.1:PORT/bot")."""
        return f"http://127.0.0.1:{self.port}/bot"

    # ------------------------------------------------------------------- test side: updates

    def push_command(self, chat_id: int, text: str, user_id: int | None = None,
                     username: str | None = "operator") -> int:
        """Queue a text message (a bot_command entity when it starts with "/"); returns its message_id."""
        message = self._message(chat_id, text, user_id or chat_id, username, from_bot=False)
        if text.startswith("/"):
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
        self._push({"message": message})
        return message["message_id"]

    def push_callback(self, chat_id: int, data: str, message_id: int, user_id: int | None = None,
                      username: str | None = "operator") -> int:
        """Queue a callback query (button press) on bot message `message_id` in `chat_id`; returns its update_id."""
        uid = user_id or chat_id
        message = self._message(chat_id, "(confirmation)", BOT_ID, BOT_USERNAME, from_bot=True)
        message["message_id"] = message_id
        query = {"id": f"cb{next(self._update_ids)}", "from": self._user(uid, username, False),
                 "chat_instance": f"ci{chat_id}", "data": data, "message": message}
        return self._push({"callback_query": query})

    def _push(self, body: dict[str, Any]) -> int:
        update_id = next(self._update_ids)
        self._updates.append({"update_id": update_id, **body})
        self._new_update.set()
        return update_id

    @staticmethod
    def _user(uid: int, username: str | None, is_bot: bool) -> dict[str, Any]:
        user: dict[str, Any] = {"id": uid, "is_bot": is_bot, "first_name": "Radar" if is_bot else "Op"}
        if username:
            user["username"] = username
        return user

    def _message(self, chat_id: int, text: str, uid: int, username: str | None, from_bot: bool) -> dict[str, Any]:
        chat_type = "private" if chat_id > 0 else "supergroup"
        chat: dict[str, Any] = {"id": chat_id, "type": chat_type}
        if chat_type != "private":
            chat["title"] = "ops"
        return {"message_id": next(self._message_ids), "date": int(time.time()), "chat": chat,
                "from": self._user(uid, username, from_bot), "text": text}

    # ------------------------------------------------------------------- test side: faults and records

    def fail(self, method: str, status: int = 500, times: int | None = None) -> None:
        """Answer `method` with HTTP `status` (`times` times, or until `recover()`)."""
        self._faults[method] = Fault("status", status=status, times=times)

    def rate_limit(self, method: str, retry_after: int = 1, times: int | None = 1) -> None:
        """Answer `method` with 429 and parameters.retry_after (seconds)."""
        self._faults[method] = Fault("status", status=429, retry_after=retry_after, times=times)

    def hang(self, method: str) -> None:
        """Never answer `method` (until `recover()` or stop)."""
        self._release.clear()
        self._faults[method] = Fault("hang")

    def recover(self) -> None:
        """Remove every fault and release hung requests (they then fail with 503)."""
        self._faults.clear()
        self._release.set()

    def texts_to(self, chat_id: int) -> list[str]:
        """Texts of sendMessage calls to `chat_id` that were answered with success, in order."""
        return [m["text"] for m in self.sent if m["chat_id"] == chat_id]

    def calls_of(self, method: str) -> list[Call]:
        """Every request for `method` (whatever its outcome)."""
        return [c for c in self.calls if c.method == method]

    # ------------------------------------------------------------------- server side

    async def _handle(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return _error(401, "Unauthorized")
        method = request.match_info["method"]
        params = _params(await request.post()) if request.can_read_body else {}
        call = Call(method, params)
        self.calls.append(call)
        fault = self._faults.get(method)
        if fault is not None:
            if fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    del self._faults[method]
            if fault.kind == "hang":
                call.outcome = "hang"
                await self._release.wait()
                return _error(503, "Service Unavailable")
            call.outcome = str(fault.status)
            if fault.status == 429:
                return _error(429, f"Too Many Requests: retry after {fault.retry_after}",
                              {"retry_after": fault.retry_after})
            return _error(fault.status, "Bad Request: chat not found" if fault.status == 400
                          else "Internal Server Error")
        handler = getattr(self, f"_m_{method}", None)
        if handler is None:
            return _error(404, "Not Found")
        return _ok(await handler(params))

    async def _m_getMe(self, p: dict[str, Any]) -> Any:
        return {"id": BOT_ID, "is_bot": True, "first_name": "Radar", "username": BOT_USERNAME,
                "can_join_groups": True, "can_read_all_group_messages": False, "supports_inline_queries": False}

    async def _m_deleteWebhook(self, p: dict[str, Any]) -> Any:
        if p.get("drop_pending_updates"):
            self._updates.clear()
        return True

    async def _m_setMyCommands(self, p: dict[str, Any]) -> Any:
        return True

    async def _m_getUpdates(self, p: dict[str, Any]) -> Any:
        offset = int(p.get("offset") or 0)
        self._updates = [u for u in self._updates if u["update_id"] >= offset]
        wait = min(float(p.get("timeout") or 0), self.max_poll_s)
        if not self._updates and wait > 0:
            self._new_update.clear()
            try:
                await asyncio.wait_for(self._new_update.wait(), wait)
            except asyncio.TimeoutError:
                pass
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        return list(self._updates)

    async def _m_sendMessage(self, p: dict[str, Any]) -> Any:
        chat_id = int(p["chat_id"])
        reply_to = (p.get("reply_parameters") or {}).get("message_id")
        record = {"chat_id": chat_id, "text": p["text"], "reply_markup": p.get("reply_markup"),
                  "reply_to": reply_to, "message_id": next(self._message_ids), "at": time.monotonic()}
        self.sent.append(record)
        message = self._message(chat_id, p["text"], BOT_ID, BOT_USERNAME, from_bot=True)
        message["message_id"] = record["message_id"]
        return message

    async def _m_answerCallbackQuery(self, p: dict[str, Any]) -> Any:
        self.answers.append(p)
        return True

    async def _m_editMessageText(self, p: dict[str, Any]) -> Any:
        self.edits.append(p)
        message = self._message(int(p["chat_id"]), p["text"], BOT_ID, BOT_USERNAME, from_bot=True)
        message["message_id"] = int(p["message_id"])
        return message


def _params(form: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in form.items():
        if key in ("text", "callback_query_id"):
            out[key] = value
            continue
        try:
            out[key] = json.loads(value)
        except (TypeError, ValueError):
            out[key] = value
    return out


def _ok(result: Any) -> web.Response:
    return web.json_response({"ok": True, "result": result})


def _error(status: int, description: str, parameters: dict[str, Any] | None = None) -> web.Response:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if parameters:
        body["parameters"] = parameters
    return web.json_response(body, status=status)
