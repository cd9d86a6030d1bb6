"""`GET /v1/events`: the engine's bus events as JSON over a websocket, bounded per client.

Each client gets its own bus subscription (`core.events.bus`: publishing never blocks
the engine). The first message is {"type": "hello", "protocol", "queue_limit"}; then one
message per event (`core.api.protocol.event_message`: type, seq, event). A client that
falls behind is DROPPED, it never slows the engine: when its queue reaches `queue_limit`
events (or the bus had to drop one for it), or one send takes longer than `send_timeout_s`,
the connection is closed (code 1013 "try again later" with the reason when the socket can
still take it, else aborted). `?kinds=FillEvent,OrderEvent` limits the stream to those
event types (an unknown name is refused with 400 before the upgrade).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import WSCloseCode, web

from core.api.protocol import PROTOCOL_VERSION, dumps, event_message

log = logging.getLogger(__name__)

#: Seconds between checks of a client's queue.
CHECK_INTERVAL_S = 0.05


def event_kinds(names: str | None) -> tuple[type, ...] | None:
    """The bus event classes named in a comma-separated list (None/empty: every kind).

    Raises:
        ValueError: an unknown name (the message lists the known ones).
    """
    if not names:
        return None
    from core.data.feed import FeedFresh, FeedReconnect, FeedStale
    from core.engine.engine import DataGap
    from core.events.bus import EVENT_KINDS

    known = {k.__name__: k for k in (*EVENT_KINDS, DataGap, FeedStale, FeedFresh, FeedReconnect)}
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    bad = [n for n in wanted if n not in known]
    if bad:
        raise ValueError(f"unknown event kind(s) {', '.join(bad)}; known: {', '.join(sorted(known))}")
    return tuple(known[n] for n in wanted)


class EventStream:
    """One websocket client of the event stream (see the module docstring).

    Args:
        bus: the engine's EventBus. kinds: event classes (None: all).
        stats: the server's `ServerStats` (event_clients, slow_dropped are updated).
        queue_limit: events queued for this client before it is dropped (>= 1).
        send_timeout_s: longest a single send may take before the client is dropped.
        who: the peer, for the log.
    """

    def __init__(self, bus: Any, kinds: tuple[type, ...] | None, stats: Any, *, queue_limit: int = 1000,
                 send_timeout_s: float = 5.0, who: str = "client") -> None:
        self.bus = bus
        self.kinds = kinds
        self.stats = stats
        self.queue_limit = queue_limit
        self.send_timeout_s = send_timeout_s
        self.who = who
        self.ws: web.WebSocketResponse | None = None
        self.dropped_reason: str | None = None
        self._sending = False
        self._closing = asyncio.Event()
        self.done = asyncio.Event()          # set once the stream ended and its socket is closed

    async def serve(self, request: web.Request) -> web.WebSocketResponse:
        """Upgrade `request` and stream until the client leaves, is dropped, or `close()`."""
        ws = self.ws = web.WebSocketResponse(heartbeat=30.0)
        await ws.prepare(request)
        sub = self.bus.subscribe(self.kinds, self.queue_limit)
        self.stats.event_clients += 1
        reader = asyncio.ensure_future(self._read(ws))
        tasks = {asyncio.ensure_future(self._send(ws, sub)), reader,
                 asyncio.ensure_future(self._watch(sub)), asyncio.ensure_future(self._closing.wait())}
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for t in done:
                exc = None if t.cancelled() else t.exception()
                if isinstance(exc, TimeoutError):
                    self.dropped_reason = f"a send took longer than {self.send_timeout_s:g} s"
                elif exc is None and not t.cancelled() and isinstance(t.result(), str):
                    self.dropped_reason = t.result()
                elif exc is not None and not isinstance(exc, ConnectionError):
                    log.warning("event stream of %s ended on %s: %s", self.who, type(exc).__name__, exc)
        finally:
            others = tasks - {reader}               # the reader stays: `ws.close()` ends its receive
            for t in others:
                t.cancel()
            await asyncio.gather(*others, return_exceptions=True)
            sub.close()
            self.stats.event_clients -= 1
        try:
            await self._finish(ws, request)
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
            self.done.set()
        return ws

    async def _send(self, ws: web.WebSocketResponse, sub: Any) -> None:
        await ws.send_str(dumps({"type": "hello", "protocol": PROTOCOL_VERSION, "queue_limit": self.queue_limit}))
        seq = 0
        async for ev in sub:
            seq += 1
            text = dumps(event_message(ev, seq))
            self._sending = True
            await asyncio.wait_for(ws.send_str(text), self.send_timeout_s)
            self._sending = False

    async def _read(self, ws: web.WebSocketResponse) -> None:
        async for _ in ws:          # the client sends nothing we use; this sees it close
            pass

    async def _watch(self, sub: Any) -> str:
        while True:
            await asyncio.sleep(CHECK_INTERVAL_S)
            if len(sub) >= self.queue_limit or sub.dropped_total:
                return f"{len(sub)} events queued (limit {self.queue_limit})"

    async def _finish(self, ws: web.WebSocketResponse, request: web.Request) -> None:
        if self.dropped_reason is not None:
            self.stats.slow_dropped += 1
            log.warning("event stream of %s dropped: too slow (%s)", self.who, self.dropped_reason)
            if self._sending and request.transport is not None:      # a frame half sent: no clean close
                request.transport.abort()
                return
            message, code = f"too slow: {self.dropped_reason}"[:120].encode(), WSCloseCode.TRY_AGAIN_LATER
        elif self._closing.is_set():
            message, code = b"engine API stopping", WSCloseCode.GOING_AWAY
        else:
            message, code = b"", WSCloseCode.OK
        try:
            await asyncio.wait_for(ws.close(code=code, message=message), 1.0)
        except (TimeoutError, ConnectionError):
            if request.transport is not None:
                request.transport.abort()

    def close(self) -> None:
        """End the stream (the engine's API is stopping): the client gets code 1001."""
        self._closing.set()
