"""Health screen: every subsystem's status word (OK / DEGRADED / DOWN) and reason, plus the
figures operators ask for: feed latency per symbol, event-loop lag, database size, exchange
rate-limit headroom, Telegram queue.

Source: `source()` returning `{subsystem: SubsystemHealth}` (e.g. `Watchdog.snapshot`), given
to the constructor, else `app.health.snapshot()` (the app's watchdog), else `api.health()` when
it answers in that shape. The figures come from the checks' metrics (core.health): feeds `age_s`, loop `p50_s/p99_s/max_s`,
database `size_bytes/free_bytes/latency_s`, telegram `queued/failed/dropped/retrying`, and
rate-limit headroom from a gateway/exchange metric `rate_limit_remaining` (+ `rate_limit`)
when a check reports it ("n/a" otherwise). The table is updated by row key, changed cells only.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any, Callable, Mapping

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import DataTable, Static

from tui.actions import Action
from tui.screens.base import RadarScreen, sync_table

COLUMNS = (("subsystem", "subsystem"), ("status", "status"), ("since", "since"), ("reason", "reason"),
           ("figures", "figures"))

_WORD = {"ok": ("OK", "green"), "degraded": ("DEGRADED", "bold yellow"), "down": ("DOWN", "bold red")}
_ORDER = {"down": 0, "degraded": 1, "ok": 2}


def status_word(status: Any) -> Text:
    s = str(getattr(status, "value", status)).lower()
    word, style = _WORD.get(s, (s.upper() or "?", ""))
    return Text(word, style=style)


def _secs(x: Any) -> str:
    if x is None:
        return "—"
    x = float(x)
    return f"{x * 1000:.0f} ms" if x < 1 else f"{x:.1f} s"


def _bytes(n: Any) -> str:
    if n is None:
        return "—"
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def figures(name: str, m: Mapping[str, Any]) -> str:
    """The metrics of one subsystem as a short labelled text."""
    if not m:
        return ""
    if name.startswith("feed:"):
        return f"latency {_secs(m.get('age_s'))}" + (f", reconnect #{m['reconnect_attempt']}"
                                                      if m.get("reconnect_attempt") else "")
    if "p99_s" in m or "max_s" in m:
        return f"lag p50 {_secs(m.get('p50_s'))}, p99 {_secs(m.get('p99_s'))}, max {_secs(m.get('max_s'))}"
    if "size_bytes" in m:
        return (f"size {_bytes(m.get('size_bytes'))}, free {_bytes(m.get('free_bytes'))}, "
                f"probe {_secs(m.get('latency_s'))}")
    if "queued" in m and ("dropped" in m or "failed" in m):
        return (f"queue {m.get('queued')}, failed {m.get('failed')}, dropped {m.get('dropped')}, "
                f"retrying {m.get('retrying')}")
    parts = []
    if "state" in m:
        parts.append(f"circuit {m['state']}")
    if m.get("consecutive_failures"):
        parts.append(f"{m['consecutive_failures']} failures")
    if "rate_limit_remaining" in m:
        parts.append(f"rate limit {m['rate_limit_remaining']}" + (f"/{m['rate_limit']}" if m.get("rate_limit") else ""))
    return ", ".join(parts) or ", ".join(f"{k} {v}" for k, v in list(m.items())[:4])


def summary(snapshot: Mapping[str, Any]) -> str:
    """Overall word and the headline figures, one labelled item each."""
    items = list(snapshot.values())
    statuses = [str(getattr(h.status, "value", h.status)) for h in items]
    overall = "DOWN" if "down" in statuses else ("DEGRADED" if "degraded" in statuses else "OK")
    counts = ", ".join(f"{statuses.count(s)} {w}" for s, w in (("ok", "OK"), ("degraded", "DEGRADED"),
                                                                ("down", "DOWN")))
    feeds = [f"{h.subsystem[5:]} {_secs(h.metrics.get('age_s'))}" for h in items if h.subsystem.startswith("feed:")]
    loop = next((h.metrics for h in items if "p99_s" in h.metrics), None)
    db = next((h.metrics for h in items if "size_bytes" in h.metrics), None)
    tg = next((h.metrics for h in items if h.subsystem.startswith("telegram")), None)
    rl = [f"{h.subsystem} {h.metrics['rate_limit_remaining']}" for h in items if "rate_limit_remaining" in h.metrics]
    lines = [f"overall {overall}  ({counts})",
             "feed latency: " + (", ".join(feeds) if feeds else "no feeds"),
             "event-loop lag: " + (f"p50 {_secs(loop.get('p50_s'))}, p99 {_secs(loop.get('p99_s'))}, "
                                   f"max {_secs(loop.get('max_s'))}" if loop else "n/a")
             + "   database: " + (f"{_bytes(db.get('size_bytes'))}" if db else "n/a"),
             "rate-limit headroom: " + (", ".join(rl) if rl else "n/a")
             + "   telegram queue: " + (f"{tg.get('queued')} queued, {tg.get('failed')} failed, "
                                        f"{tg.get('dropped')} dropped" if tg and "queued" in tg else "n/a")]
    return "\n".join(lines)


def _since(ms: int | None, now_ms: int) -> str:
    if not ms:
        return "—"
    s = max(0, (now_ms - ms) // 1000)
    age = f"{s}s" if s < 120 else f"{s // 60}m" if s < 7200 else f"{s // 3600}h"
    return f"{dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc):%H:%M:%S} ({age})"


class HealthScreen(RadarScreen):
    """See the module docstring."""

    ACTIONS = (
        Action("health-refresh", "ctrl+r", "Repaint the health table now", "repaint", readonly_ok=True),
    )
    SCREEN_NUMBER = 6
    SCREEN_TITLE = "Health"

    DEFAULT_CSS = """
    HealthScreen #health-summary { height: auto; padding: 0 1; border-bottom: solid $primary; }
    HealthScreen DataTable { height: 1fr; }
    """

    def __init__(self, source: Callable[[], Mapping[str, Any]] | None = None, *,
                 clock: Callable[[], int] = lambda: int(time.time() * 1000), **kwargs) -> None:
        super().__init__(**kwargs)
        self.source = source
        self.clock = clock
        self._cache: dict[str, tuple[str, ...]] = {}
        self._api: Any = None

    def compose(self) -> ComposeResult:
        yield Static("no health data yet", id="health-summary")
        table = DataTable(id="health-table", cursor_type="row")
        for key, label in COLUMNS:
            table.add_column(label, key=key)
        yield table

    def on_mount(self) -> None:
        if self.source is not None:
            self.refresh_data(None)

    def _snapshot(self, api: Any) -> Mapping[str, Any] | None:
        if self.source is not None:
            return self.source()
        # RadarApp keeps the watchdog as `app.health` (run_console(health=...))
        wd = getattr(self.app, "health", None) or getattr(self.app, "watchdog", None)
        if wd is not None and hasattr(wd, "snapshot"):
            return wd.snapshot()
        fn = getattr(api, "health", None)
        snap = fn() if callable(fn) else None
        # only {subsystem: SubsystemHealth}; EngineAPI.health() answers a JSON-shaped dict instead
        if isinstance(snap, Mapping) and all(hasattr(h, "status") for h in snap.values()):
            return snap
        return None

    def refresh_data(self, api: Any) -> None:
        self._api = api
        snap = self._snapshot(api)
        if snap is None:
            return
        now = self.clock()
        self.query_one("#health-summary", Static).update(summary(snap))
        ordered = sorted(snap.values(), key=lambda h: (_ORDER.get(str(getattr(h.status, "value", h.status)), 3),
                                                        h.subsystem))
        rows = {h.subsystem: (h.subsystem, status_word(h.status), _since(h.since_ms, now), h.reason or "",
                              figures(h.subsystem, h.metrics)) for h in ordered}
        sync_table(self.query_one(DataTable), rows, [k for k, _ in COLUMNS], self._cache)

    def action_repaint(self) -> None:
        self.refresh_data(self._api)

