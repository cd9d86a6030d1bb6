"""`GET /v1/events`: the engine's bus events as JSON over a websocket; a client that does not read
is dropped while the engine (publishing, other clients) carries on unblocked."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import time

import pytest

from core.api.client import EngineClient, StreamDropped
from core.api.sockets import reachable
from core.events.bus import HealthEvent
from tests.api.conftest import Run, eventually


async def _next(agen, want: str, timeout: float = 10.0) -> dict:
    """The next message of type `want` from the stream (others skipped)."""
    async def find() -> dict:
        while True:
            msg = await agen.__anext__()
            if msg["type"] == want:
                return msg
    return await asyncio.wait_for(find(), timeout)


async def test_events_are_streamed_as_json(run: Run) -> None:
    bus = run.engine.bus
    async with EngineClient(run.socket, readonly=True, source="console") as c:
        stream = c.events(["HealthEvent", "KillSwitchEvent", "OrderEvent"])
        fills = c.events(["FillEvent"])
        first = asyncio.ensure_future(stream.__anext__())
        first_fill = asyncio.ensure_future(fills.__anext__())
        await eventually(lambda: run.server.stats.event_clients == 2, 10, "the streams to open")
        bus.publish(HealthEvent("test", "ok", "hello"))
        msg = await asyncio.wait_for(first, 10)
        assert msg == {"type": "HealthEvent", "seq": 1,
                       "event": {"component": "test", "state": "ok", "detail": "hello"}}

        async with EngineClient(run.socket, source="cli") as rw:             # a command's events
            await rw.kill(flatten=True, reason="events test")
        ks = await _next(stream, "KillSwitchEvent")
        assert ks["seq"] > 1 and ks["event"] == {"active": True, "flatten": True,
                                                 "actor": ks["event"]["actor"], "reason": "events test"}
        fill = await asyncio.wait_for(first_fill, 10)                        # the flatten's exit fill
        assert fill["type"] == "FillEvent" and fill["event"]["kind"] == "exit" and fill["event"]["reason"] == "kill"
        assert fill["event"]["symbol"] == "BTC/USDT" and fill["event"]["qty"] > 0
        await stream.aclose()
        await fills.aclose()
    await eventually(lambda: run.server.stats.event_clients == 0, 10, "the streams to close")


async def _raw_ws_that_never_reads(path: str) -> socket.socket:
    """A websocket client on `path` that completes the handshake and then reads nothing."""
    loop = asyncio.get_running_loop()
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.setblocking(False)
    await loop.sock_connect(s, path)
    key = base64.b64encode(os.urandom(16))
    await loop.sock_sendall(s, b"GET /v1/events HTTP/1.1\r\nHost: radar\r\nUpgrade: websocket\r\n"
                               b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key
                            + b"\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        head += await loop.sock_recv(s, 1)
    assert b" 101 " in head.split(b"\r\n")[0], head
    return s


async def test_a_slow_consumer_is_dropped_without_blocking_the_engine(run: Run) -> None:
    server, bus = run.server, run.engine.bus
    server.queue_limit = 50
    subscribers = bus.subscribers
    with reachable(run.socket) as path:
        slow = await _raw_ws_that_never_reads(path)
        try:
            await eventually(lambda: server.stats.event_clients == 1, 10, "the stream to open")
            detail = "x" * 4000
            worst = 0.0
            t0 = time.monotonic()
            for i in range(5000):                  # 20 MB: far beyond the socket buffers
                t = time.perf_counter()
                bus.publish(HealthEvent("flood", "ok", f"{i} {detail}"))
                worst = max(worst, time.perf_counter() - t)
                if i % 50 == 0:
                    await asyncio.sleep(0)         # the loop (and the server's sender) runs on
                if server.stats.slow_dropped:
                    break
            await eventually(lambda: server.stats.slow_dropped == 1, 10, "the slow client to be dropped")
            assert worst < 0.05, f"a publish took {worst:.3f} s"
            assert time.monotonic() - t0 < 10
            await eventually(lambda: server.stats.event_clients == 0 and bus.subscribers == subscribers, 10,
                             "the stream's subscription to be closed")
            async with EngineClient(run.socket) as c:                   # the engine serves on
                assert (await c.snapshot())["mode"] == "paper"
                assert 'radar_api_slow_clients_dropped_total 1.0' in await c.metrics()
        finally:
            slow.close()


async def test_the_stream_ends_when_the_engine_api_stops(tmp_path, open_position_candles) -> None:
    run = Run(tmp_path / "radar.db", open_position_candles)
    async with run:
        c = await EngineClient(run.socket).open()
        stream = c.events()
        nxt = asyncio.ensure_future(stream.__anext__())
        await eventually(lambda: run.server.stats.event_clients == 1, 10, "the stream to open")
    # the engine stopped and its services closed: the stream ended (an event or two may come first)
    with pytest.raises(StopAsyncIteration):
        while True:
            await asyncio.wait_for(nxt, 10)
            nxt = asyncio.ensure_future(stream.__anext__())
    await c.close()


async def test_a_client_that_lost_events_is_told_it_was_dropped(run: Run) -> None:
    """A burst beyond the client's queue makes the bus drop events for it: the engine closes its
    stream with code 1013 and the client raises StreamDropped (it knows it missed events)."""
    run.server.queue_limit = 5
    async with EngineClient(run.socket, readonly=True) as c:
        stream = c.events(["HealthEvent"])
        first = asyncio.ensure_future(stream.__anext__())
        await eventually(lambda: run.server.stats.event_clients == 1, 10, "the stream to open")
        for i in range(50):
            run.engine.bus.publish(HealthEvent("burst", "ok", str(i)))
        with pytest.raises(StreamDropped, match="read too slowly"):
            await asyncio.wait_for(first, 10)
            while True:
                await asyncio.wait_for(stream.__anext__(), 10)
    assert run.server.stats.slow_dropped == 1
