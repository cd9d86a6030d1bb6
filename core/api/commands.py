"""The commands of `POST /v1/commands/{name}`: their arguments, checked in full before
anything is done, and their execution through `EngineAPI`.

    kill            {"flatten": bool = false, "reason": str}   kill switch on; entries cancelled
    resume          {"reason": str}                            kill switch off
    flatten         {"symbol": str | null}                     close one symbol's / every position
    cancel_entries  {"symbol": str | null}                     cancel resting entries
    ack             {"id": int}                                acknowledge an alert
    snooze          {"id": int, "minutes": int}                snooze an alert (1 .. 525600 minutes)

A request that is refused raises `CommandError` (HTTP status, code, message) before any
change: unknown command (404), malformed body or bad/missing/unknown argument or bad symbol
(400), engine not running or no alert engine (409), unknown alert id (404), resolved alert (409).
"""

from __future__ import annotations

import json
from typing import Any

from core.api.protocol import COMMANDS
from core.errors import UsageError

#: name -> {argument: type}
ARGS: dict[str, dict[str, type]] = {
    "kill": {"flatten": bool, "reason": str},
    "resume": {"reason": str},
    "flatten": {"symbol": str},
    "cancel_entries": {"symbol": str},
    "ack": {"id": int},
    "snooze": {"id": int, "minutes": int},
}
REQUIRED: dict[str, tuple[str, ...]] = {"ack": ("id",), "snooze": ("id", "minutes")}
MAX_MINUTES = 365 * 24 * 60
MAX_REASON_CHARS = 200
_ALERT_ERRORS = {"invalid": 400, "unknown_id": 404, "resolved": 409, "storage": 503}


class CommandError(Exception):
    """A command refused or failed. Attributes: status (HTTP), code, message, outcome
    ("refused": nothing was done; "failed": it was attempted and failed)."""

    def __init__(self, status: int, code: str, message: str, outcome: str = "refused") -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.outcome = status, code, message, outcome


def command_name(raw: str) -> str:
    """The command of a URL segment ("cancel-entries" -> "cancel_entries")."""
    return raw.strip().lower().replace("-", "_")


def parse_body(raw: bytes) -> dict:
    """The JSON object of a request body ({} when empty).

    Raises:
        CommandError(400, "malformed_body"): not UTF-8 JSON, or not an object.
    """
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise CommandError(400, "malformed_body", f"malformed body: expected a JSON object ({exc})") from None
    if not isinstance(body, dict):
        raise CommandError(400, "malformed_body", f"malformed body: expected a JSON object, got {type(body).__name__}")
    return body


def validate(api: Any, name: str, args: dict) -> dict:
    """The checked arguments of command `name` (see the module docstring for the refusals).

    Raises:
        CommandError: the command cannot run as asked; nothing was done.
    """
    if name not in ARGS:
        raise CommandError(404, "unknown_command", f"unknown command {name!r}; commands: {', '.join(COMMANDS)}")
    spec = ARGS[name]
    extra = sorted(set(args) - set(spec))
    if extra:
        raise CommandError(400, "bad_argument", f"{name}: unknown argument(s) {', '.join(map(repr, extra))}; "
                                                f"expected: {', '.join(spec) or 'none'}")
    missing = [k for k in REQUIRED.get(name, ()) if args.get(k) is None]
    if missing:
        raise CommandError(400, "missing_argument", f"{name}: missing argument(s) {', '.join(missing)}")
    out: dict[str, Any] = {}
    for key, kind in spec.items():
        if args.get(key) is not None:
            out[key] = _typed(name, key, args[key], kind)
    if "symbol" in out and out["symbol"] not in api.symbols():
        raise CommandError(400, "bad_symbol", f"{name}: no strategy runs on {out['symbol']!r}; running: "
                                              f"{', '.join(api.symbols()) or 'none'}")
    if "id" in out and out["id"] < 1:
        raise CommandError(400, "bad_argument", f"{name}: id must be a positive alert id, got {out['id']}")
    if "minutes" in out and not 1 <= out["minutes"] <= MAX_MINUTES:
        raise CommandError(400, "bad_argument", f"{name}: minutes must be 1 .. {MAX_MINUTES}, got {out['minutes']}")
    if len(out.get("reason", "")) > MAX_REASON_CHARS:
        raise CommandError(400, "bad_argument", f"{name}: reason longer than {MAX_REASON_CHARS} characters")
    if name in ("ack", "snooze"):
        if api.alerts is None:
            raise CommandError(409, "no_alerts", "no alert engine in this run")
    elif api.engine.kill_switch is None or api.engine.store is None:
        raise CommandError(409, "not_running", "the engine is not running (not started yet, or stopped)")
    return out


def _typed(name: str, key: str, value: Any, kind: type) -> Any:
    if kind is bool and isinstance(value, bool):
        return value
    if kind is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind is int and isinstance(value, str) and value.strip().isdigit():
        return int(value)
    if kind is str and isinstance(value, str) and value.strip():
        return value.strip()
    want = {bool: "true or false", int: "a whole number", str: "a non-empty string"}[kind]
    raise CommandError(400, "bad_argument", f"{name}: {key} must be {want}, got {json.dumps(value)}")


async def execute(api: Any, name: str, args: dict, actor: str) -> tuple[dict, str]:
    """Run checked command `name` as `actor`; returns (result, one-line message).

    Raises:
        CommandError: refused by the engine (e.g. unknown alert id) or failed.
    """
    try:
        if name == "kill":
            r = await api.kill(actor, flatten=args.get("flatten", False), reason=args.get("reason", "api kill"))
            return r, (f"kill switch ON: {r['cancelled_entries']} entry order(s) cancelled, {r['flattened']} "
                       "position(s) flattened; stops kept")
        if name == "resume":
            r = await api.resume(actor, reason=args.get("reason", "api resume"))
            return r, "kill switch off: entries resume from the next candle"
        if name == "flatten":
            r = await api.flatten(actor, args.get("symbol"))
            return r, f"flattened {r['flattened']} position(s) on {', '.join(r['symbols']) or 'no symbol'}"
        if name == "cancel_entries":
            r = await api.cancel_entries(actor, args.get("symbol"))
            return r, f"cancelled {r['cancelled_entries']} entry order(s) on {', '.join(r['symbols']) or 'no symbol'}"
        if name == "ack":
            res = await api.ack_alert(args["id"], actor)
        else:
            res = await api.snooze_alert(args["id"], actor, args["minutes"])
    except UsageError as exc:
        raise CommandError(409, "engine_refused", str(exc)) from None
    if not res.ok:
        status = _ALERT_ERRORS.get(res.error or "", 400)
        raise CommandError(status, res.error or "alert", res.message, "failed" if status >= 500 else "refused")
    return {"alert": res.alert.to_dict() if res.alert is not None else None}, res.message
