"""The engine's API: a running engine serves it on a private Unix socket next to its database
(`<db>.sock`, mode 0600, peer credentials checked), HTTP + websocket (aiohttp), versioned
under `/v1/`; consoles, the CLI (`radar status`, `radar ctl`) and scripts attach to it.

* `protocol`: version, socket path, headers, JSON, client-side errors.
* `server`: `ApiServer` (endpoints, read-only connections, audit of commands).
* `client`: `EngineClient`, the async client.
* `commands`, `events`, `metrics`, `audit`, `peercred`, `sockets`: the parts.
* `metrics_tcp`: the optional `GET /metrics` on TCP 127.0.0.1 (health.yaml `metrics.tcp_port`);
  nothing else of the API is ever served on TCP.

Example: `curl --unix-socket ~/.local/share/radar/radar.db.sock http://radar/v1/snapshot`.
"""
