"""The commands of `POST /v1/commands/{name}`: their arguments, checked in full before
anything is done, and their execution through `EngineAPI`.

    kill            {"flatten": bool = false, "reason": str}   kill switch on; entries cancelled
    resume          {"reason": str}                            kill switch off (every runner)
    flatten         {"symbol": str | null, "strategy": str}    force-exit one runner's / symbol's / every
                                                               position at market (reason "forceexit")
    cancel_entries  {"symbol": str | null}                     cancel resting entries
    ack             {"id": int}                                acknowledge an alert
    snooze          {"id": int, "minutes": int}                snooze an alert (1 .. 525600 minutes)
    pause           {"symbol": str, "strategy": str, "reason": str}
                                                               one runner: no new entries (persisted),
                                                               resting entries cancelled, stops kept
    resume_runner   {"symbol": str, "strategy": str, "reason": str}
                                                               lift that runner's pause
    apply_params    {"symbol": str, "strategy": str, "params": {name: value}}
                                                               new strategy params: at once when the
                                                               runner is flat, else at its next flat moment
    job_submit      {"kind": "optimize", "params": {...}}      queue a research job (the console's job
                                                               form: `core.jobs.optimize_job.optimize_params`)
    job_cancel      {"id": int}                                cancel a queued / running job

`strategy` picks the runner when several strategies run on `symbol` (required then).

A request that is refused raises `CommandError` (HTTP status, code, message) before any
change: unknown command (404), malformed body or bad/missing/unknown argument, bad symbol,
bad strategy, ambiguous runner, bad params, bad job arguments (400), engine not running, no
alert engine or no job manager (409), unknown alert or job id (404), resolved alert, finished
job (409); the engine refuses what its state does not allow (pausing a paused runner, resuming
one that is not paused: 409 "engine_refused").
"""

from __future__ import annotations

import json
from typing import Any

from core.api.protocol import COMMANDS
from core.errors import UsageError
from core.jobs.model import JobQueueFull

#: name -> {argument: type}
ARGS: dict[str, dict[str, type]] = {
    "kill": {"flatten": bool, "reason": str},
    "resume": {"reason": str},
    "flatten": {"symbol": str, "strategy": str},
    "cancel_entries": {"symbol": str},
    "ack": {"id": int},
    "snooze": {"id": int, "minutes": int},
    "pause": {"symbol": str, "strategy": str, "reason": str},
    "resume_runner": {"symbol": str, "strategy": str, "reason": str},
    "apply_params": {"symbol": str, "strategy": str, "params": dict},
    "job_submit": {"kind": str, "params": dict},
    "job_cancel": {"id": int},
}
REQUIRED: dict[str, tuple[str, ...]] = {"ack": ("id",), "snooze": ("id", "minutes"), "pause": ("symbol",),
                                        "resume_runner": ("symbol",), "apply_params": ("symbol", "params"),
                                        "job_submit": ("kind", "params"), "job_cancel": ("id",)}
#: commands on one runner (`EngineAPI.runner`: symbol, and strategy when several run on it)
RUNNER_COMMANDS = ("pause", "resume_runner", "apply_params")
JOB_COMMANDS = ("job_submit", "job_cancel")
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
    if "strategy" in out and "symbol" not in out:
        raise CommandError(400, "missing_argument", f"{name}: strategy needs a symbol")
    if "id" in out and out["id"] < 1:
        what = "job" if name in JOB_COMMANDS else "alert"
        raise CommandError(400, "bad_argument", f"{name}: id must be a positive {what} id, got {out['id']}")
    if "minutes" in out and not 1 <= out["minutes"] <= MAX_MINUTES:
        raise CommandError(400, "bad_argument", f"{name}: minutes must be 1 .. {MAX_MINUTES}, got {out['minutes']}")
    if len(out.get("reason", "")) > MAX_REASON_CHARS:
        raise CommandError(400, "bad_argument", f"{name}: reason longer than {MAX_REASON_CHARS} characters")
    runner = None
    if name in RUNNER_COMMANDS or "strategy" in out:
        try:
            runner = api.runner(out["symbol"], out.get("strategy"))
        except UsageError as exc:
            code = "bad_strategy" if "strategy" in out else "ambiguous_runner"
            raise CommandError(400, code, f"{name}: {exc}") from None
    if name in ("ack", "snooze"):
        if api.alerts is None:
            raise CommandError(409, "no_alerts", "no alert engine in this run")
    elif name in JOB_COMMANDS:
        if api.jobs is None:
            raise CommandError(409, "no_jobs", "no job manager in this run")
    elif api.engine.kill_switch is None or api.engine.store is None:
        raise CommandError(409, "not_running", "the engine is not running (not started yet, or stopped)")
    if name == "apply_params":
        bad = [k for k, v in out["params"].items()
               if not isinstance(k, str) or not (v is None or isinstance(v, (bool, int, float, str)))]
        if bad:
            raise CommandError(400, "bad_params", f"{name}: parameter values must be numbers, got "
                                                  f"{json.dumps({k: out['params'][k] for k in bad}, default=str)}")
        try:
            out["params"] = api.check_params(runner, out["params"])
        except UsageError as exc:
            raise CommandError(400, "bad_params", f"{name}: {exc}") from None
    if name == "job_submit":
        try:
            out["params"] = api.check_job(out["kind"], out["params"])
        except UsageError as exc:
            raise CommandError(400, "bad_job", f"{name}: {exc}") from None
    if name == "job_cancel":
        try:
            api.check_job_id(out["id"])
        except LookupError as exc:
            raise CommandError(404, "unknown_job", f"{name}: {exc}") from None
        except ValueError as exc:
            raise CommandError(409, "job_finished", f"{name}: {exc}") from None
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
    if kind is dict and isinstance(value, dict):
        return dict(value)
    want = {bool: "true or false", int: "a whole number", str: "a non-empty string", dict: "a JSON object"}[kind]
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
            r = await api.flatten(actor, args.get("symbol"), args.get("strategy"))
            return r, (f"force-exit: {r['flattened']} position(s) closed at market on "
                       f"{', '.join(r['symbols']) or 'no symbol'}{' (' + args['strategy'] + ')' if 'strategy' in args else ''}"
                       f", {r['cancelled_entries']} entry order(s) cancelled")
        if name == "pause":
            r = await api.pause(actor, args["symbol"], args.get("strategy"), args.get("reason", ""))
            return r, (f"paused {r['strategy']} on {r['symbol']} ({r['timeframe']}): no new entries, "
                       f"{r['cancelled_entries']} entry order(s) cancelled; the position keeps its stop and take-profit")
        if name == "resume_runner":
            r = await api.resume_runner(actor, args["symbol"], args.get("strategy"), args.get("reason", ""))
            return r, f"resumed {r['strategy']} on {r['symbol']} ({r['timeframe']}): entries from the next candle"
        if name == "apply_params":
            r = await api.apply_params(actor, args["symbol"], args["params"], args.get("strategy"))
            what = {"applied": "applied now (flat: grid rebuilt)",
                    "pending": "pending until flat (applied at the runner's next flat moment)",
                    "unchanged": "unchanged (the runner trades these params already)"}[r["state"]]
            shown = r["pending_params"] if r["state"] == "pending" else r["params"]
            return r, (f"{r['strategy']} on {r['symbol']} ({r['timeframe']}): params {what}: "
                       f"{', '.join(f'{k}={v}' for k, v in shown.items())}")
        if name == "job_submit":
            r = await api.job_submit(actor, args["kind"], args["params"])
            syms = ", ".join(x["symbol"] for x in r["params"]["series"])
            return r, f"job {r['id']} queued: {args['kind']} {r['params']['strategy']} {syms} {r['params']['timeframe']}"
        if name == "job_cancel":
            r = await api.job_cancel(actor, args["id"])
            return r, (f"job {r['id']} cancelled" if r["state"] == "cancelled"
                       else f"job {r['id']} cancelling: it stops at its next check (completed windows kept)")
        if name == "cancel_entries":
            r = await api.cancel_entries(actor, args.get("symbol"))
            return r, f"cancelled {r['cancelled_entries']} entry order(s) on {', '.join(r['symbols']) or 'no symbol'}"
        if name == "ack":
            res = await api.ack_alert(args["id"], actor)
        else:
            res = await api.snooze_alert(args["id"], actor, args["minutes"])
    except UsageError as exc:
        raise CommandError(409, "engine_refused", str(exc)) from None
    except JobQueueFull as exc:
        raise CommandError(409, "queue_full", str(exc)) from None
    except (LookupError, ValueError) as exc:
        if name != "job_cancel":
            raise
        raise CommandError(404 if isinstance(exc, LookupError) else 409,
                           "unknown_job" if isinstance(exc, LookupError) else "job_finished", str(exc)) from None
    if not res.ok:
        status = _ALERT_ERRORS.get(res.error or "", 400)
        raise CommandError(status, res.error or "alert", res.message, "failed" if status >= 500 else "refused")
    return {"alert": res.alert.to_dict() if res.alert is not None else None}, res.message
