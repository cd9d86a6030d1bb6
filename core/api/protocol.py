"""The engine API's wire protocol: version, socket path, headers, JSON encoding, errors.

* Protocol version "MAJOR.MINOR" (`PROTOCOL_VERSION`): a client refuses an engine whose MAJOR
  differs (`ProtocolMismatch`); a MINOR bump only adds fields or endpoints. Every path is
  under `/v{MAJOR}/` (plus `/metrics` for Prometheus).
* Socket: `<database>.sock` next to the engine's database (`socket_path_for`).
* Headers a client sends: `X-Radar-Source` (who it is: console | cli | telegram | ...;
  recorded in the audit) and `X-Radar-Readonly: 1` (or `?readonly=1`): the engine refuses
  every command on such a request (HTTP 403).
* Errors are JSON `{"error": {"code": CODE, "message": SENTENCE}}` with a proper HTTP status.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import re
from pathlib import Path
from typing import Any

from core.errors import RadarError

#: The protocol this engine serves and this client speaks.
PROTOCOL_VERSION = "1.2"  # 1.2: GET /v1/risk, /v1/performance; the snapshot's allocation
PROTOCOL_MAJOR = int(PROTOCOL_VERSION.split(".")[0])
#: Prefix of every versioned path.
PREFIX = f"/v{PROTOCOL_MAJOR}"

SOURCE_HEADER = "X-Radar-Source"
READONLY_HEADER = "X-Radar-Readonly"
#: Accepted declared sources: short lowercase words (anything else is refused with 400).
SOURCE_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
#: The commands of `POST /v1/commands/{name}` (a "-" in the name is read as "_"). 1.1 added pause,
#: resume_runner, apply_params, job_submit, job_cancel (and `GET /v1/audit`).
COMMANDS = ("kill", "resume", "flatten", "cancel_entries", "ack", "snooze", "pause", "resume_runner",
            "apply_params", "job_submit", "job_cancel")


def socket_path_for(db_path: str | Path) -> Path:
    """The API socket of the engine on `db_path`: the same path with ".sock" appended
    (`radar.db` -> `radar.db.sock`)."""
    p = Path(db_path)
    return p.with_name(p.name + ".sock")


def truthy(value: str | None) -> bool:
    """True for "1", "true", "yes", "on" (any case); False for None and anything else."""
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def plain(obj: Any) -> Any:
    """`obj` as JSON-able data: dataclasses as dicts, enums as values, paths as strings, tuples
    and sets as lists, non-finite floats (NaN, inf) as None."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if obj is None or isinstance(obj, (str, int, bool)):
        return obj
    if isinstance(obj, enum.Enum):
        return plain(obj.value)
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [plain(v) for v in obj]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item"):                       # numpy scalars
        return plain(obj.item())
    return str(obj)


def dumps(obj: Any) -> str:
    """Strict JSON of `plain(obj)` (never NaN)."""
    return json.dumps(plain(obj), allow_nan=False, separators=(",", ":"))


def event_message(event: Any, seq: int) -> dict:
    """The websocket message of one bus event: {"type": class name, "seq": n (1.. per
    connection), "event": its fields (times ms UTC, money USDT)}."""
    return {"type": type(event).__name__, "seq": seq, "event": plain(event)}


# ---------------------------------------------------------------------------- client-side errors


class ApiClientError(RadarError):
    """Base of the errors of `core.api.client` (exit code 1)."""


class EngineNotRunning(ApiClientError):
    """Nothing listens on the socket (no file, or a stale file of a stopped engine)."""


class EngineUnreachable(ApiClientError):
    """The socket exists but cannot be used (permission denied, timeout, connection reset)."""


class ProtocolMismatch(ApiClientError):
    """The engine speaks another major protocol version than this client (exit code 2)."""

    exit_code = 2


class ApiError(ApiClientError):
    """The engine answered an error. Attributes: status (HTTP), code (e.g. "bad_symbol",
    "readonly", "unknown_command"), message (the engine's sentence). Exit code 2 for a
    request the engine refused as invalid (4xx), 1 otherwise."""

    def __init__(self, status: int, code: str, message: str) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.exit_code = 2 if 400 <= status < 500 else 1
        super().__init__(f"the engine refused ({status} {code}): {message}")


def refusal_text(exc: BaseException) -> str:
    """One line saying why the engine did not run a command: "refused by the engine: read-only
    console" for a read-only connection, the engine's sentence otherwise."""
    if isinstance(exc, ApiError):
        if exc.code == "readonly":
            return "refused by the engine: read-only console"
        return f"refused by the engine ({exc.status} {exc.code}): {exc.message}"
    return f"not sent: {exc}"


class CommandRefused(RadarError):
    """A console's command that the engine refused or that could not be sent (the console shows
    the message as a toast)."""
