"""`GET /metrics` on TCP, loopback only, for a Prometheus on the trading host.

    tcp = await MetricsTcpServer(registry, "127.0.0.1", 9464).start()    # health.yaml metrics.tcp_port
    tcp.port                                                             # the bound port (0 -> a free one)
    await tcp.stop()

It serves the same registry as the engine's socket (`core.api.metrics`) and nothing else:
every other path is 404, every other method 405; there is no peer check on TCP, which is why
it binds a loopback address only (a non-loopback host is refused here as in the config,
`core.config.health.MetricsConfig`). The engine's API (queries, events, commands) is never
served on TCP.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from typing import Any

from aiohttp import web

from core.api.metrics import CONTENT_TYPE, render
from core.config.health import is_loopback

log = logging.getLogger(__name__)


class MetricsTcpServer:
    """See the module docstring.

    Args:
        registry: the `CollectorRegistry` to render. host: a loopback IP literal. port: TCP port
            (0: any free port).

    Raises:
        ValueError: `host` is not a loopback address (at construction).
    """

    def __init__(self, registry: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        if not is_loopback(host):
            raise ValueError(f"the metrics TCP listener binds a loopback address only (127.0.0.1 or ::1), got {host!r}")
        self.registry = registry
        self.host = host
        self.port = int(port)
        self.address: str | None = None          # the bound address, once started
        self._runner: web.AppRunner | None = None

    async def start(self) -> MetricsTcpServer:
        """Bind and serve; `port` is then the bound port.

        Raises:
            OSError: the address is in use or cannot be bound.
        """
        family = socket.AF_INET6 if ipaddress.ip_address(self.host).version == 6 else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self.host, self.port))
            sock.listen(128)
            sock.setblocking(False)
            self.address, self.port = sock.getsockname()[:2]
            app = web.Application(client_max_size=1024)
            app.router.add_get("/metrics", self._metrics)
            self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
            await self._runner.setup()
            await web.SockSite(self._runner, sock).start()
        except BaseException:
            sock.close()
            await self.stop()
            raise
        log.info("metrics on http://%s/metrics (TCP, loopback only)", _hostport(self.host, self.port))
        return self

    async def stop(self) -> None:
        """Stop serving; idempotent, never raises."""
        runner, self._runner = self._runner, None
        if runner is not None:
            try:
                await runner.cleanup()
            except Exception as exc:  # pragma: no cover - best effort at shutdown
                log.warning("stopping the metrics TCP listener failed: %s", exc)

    @property
    def url(self) -> str:
        """http://host:port/metrics."""
        return f"http://{_hostport(self.host, self.port)}/metrics"

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=render(self.registry), headers={"Content-Type": CONTENT_TYPE})


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
