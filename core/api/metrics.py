"""Prometheus metrics of a running engine (`GET /metrics`, `GET /v1/metrics` on the engine's
socket; optionally `GET /metrics` on TCP 127.0.0.1, `core.api.metrics_tcp`).

A dedicated `CollectorRegistry` (never the process-global one) holds collectors that read the
engine's in-memory state at scrape time (cheap, on the loop; no background task): the
`EngineCollector` of `build_registry` (the engine and the services its `EngineAPI` holds) and,
registered by `core.engine.services.RunServices`, a `RunCollector` (the run's feed health, job
progress and trade log). Families (money USDT, durations seconds; "so far" = since this engine
process started):

* radar_up, radar_engine_info{mode,protocol,pid}; radar_candles_total;
* radar_equity_usdt, radar_day_pnl_usdt; radar_kill_switch_active, radar_kill_switch_symbols,
  radar_kill_switch_symbol_active{symbol};
* radar_open_positions; per runner radar_position_qty{strategy,symbol,side},
  radar_unrealized_pnl_usdt{strategy,symbol}, radar_runner_halted{strategy,symbol},
  radar_runner_paused{strategy,symbol}, radar_runner_state{strategy,symbol,state} (1 for the
  runner's state: ready | paused | halted | connecting | reconciling | blocked);
* unprotected windows (the runner halted because its position has no stop at the venue):
  radar_unprotected_seconds{strategy,symbol} (the current window, 0 when protected),
  radar_unprotected_longest_seconds{strategy,symbol}, radar_unprotected_duration_seconds_total
  {strategy,symbol} (every window so far, the current one included),
  radar_unprotected_windows_total{strategy,symbol};
* per symbol radar_position_notional_usdt{symbol} (|qty| x last price) and
  radar_resting_orders{symbol,purpose} (purpose entry | stop | take_profit, each always present);
* radar_loop_lag_seconds{quantile="0.5"|"0.99"|"1"} (window of the loop-lag sampler; "1" = max);
* radar_exchange_errors_total{venue,kind} (errors of exchange calls by ccxt class:
  `core.venues.exchange_errors.KINDS`; no sample before the first error of a venue);
* radar_alerts{severity,state} (unresolved alerts); radar_jobs{state="queued"|"running"},
  radar_job_workers_alive; radar_health_status{subsystem} (0 ok, 1 degraded, 2 down);
* radar_api_event_clients, radar_api_slow_clients_dropped_total,
  radar_api_commands_total{command,outcome};
* `RunCollector`: radar_feed_last_candle_age_seconds{symbol}, radar_feed_candle_latency_seconds
  {symbol} (the last live/backfill candle: its close -> the engine took it; no sample on a
  replay), radar_feed_candles_total{symbol}; radar_job_progress_ratio{job_id,kind} (running
  jobs, 0-1), radar_jobs_finished_total{state="done"|"failed"|"cancelled"};
  radar_trade_log_lines_total, radar_trade_log_errors_total, radar_trade_log_dropped_events_total.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, exposition
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest

from core.api.protocol import PROTOCOL_VERSION
from core.venues.exchange_errors import EXCHANGE_ERRORS
from core.venues.exchange_errors import KINDS as ERROR_KINDS

#: The Content-Type of the text exposition format: 0.0.4, what every Prometheus version scrapes
#: (our names are plain ASCII, so the 0.0.4 and 1.0.0 texts are the same).
CONTENT_TYPE = getattr(exposition, "CONTENT_TYPE_PLAIN_0_0_4", exposition.CONTENT_TYPE_LATEST)

_SEVERITIES = ("info", "warning", "error", "critical")
_HEALTH = {"ok": 0, "degraded": 1, "down": 2}
#: Resting-order purposes always exported per symbol (0 when none).
_PURPOSES = ("entry", "stop", "take_profit")
#: Runner states of radar_runner_state (a state outside these is exported too).
RUNNER_STATES = ("ready", "paused", "halted", "connecting", "reconciling", "blocked")


def runner_state_label(r: Any) -> str:
    """The runner's state as one word: halted (its executor refuses entries until protection is
    back), paused (by an operator), else the runner's own state (live: connecting | reconciling
    | ready | blocked | halted; "ready" on paper)."""
    ex = getattr(r, "executor", None)
    if getattr(ex, "halted", None):
        return "halted"
    if getattr(ex, "paused", None) or getattr(r, "paused", None) is True:
        return "paused"
    return str(getattr(r, "state", "ready") or "ready").split(":", 1)[0]


class EngineCollector:
    """The collector of `build_registry` (see the module docstring).

    Args:
        api: the engine's `EngineAPI` (with alerts, jobs, watchdog, lag when the run has them).
        stats: the API server's counters (`ServerStats`), or None.
    """

    def __init__(self, api: Any, stats: Any = None) -> None:
        self.api = api
        self.stats = stats

    def collect(self) -> Iterator[Metric]:
        """Every family, read now."""
        yield from self._engine()
        yield from self._runners()
        yield from self._exchange()
        yield from self._services()
        if self.stats is not None:
            yield from self._server()

    def _engine(self) -> Iterator[Metric]:
        eng = self.api.engine
        yield GaugeMetricFamily("radar_up", "1 while the engine serves its API", value=1)
        info = GaugeMetricFamily("radar_engine_info", "The engine's mode and protocol",
                                 labels=["mode", "protocol", "pid"])
        info.add_metric([eng.mode, PROTOCOL_VERSION, str(os.getpid())], 1)
        yield info
        yield CounterMetricFamily("radar_candles", "Closed candles processed", value=eng.stats.candles)
        equity = sum(r.equity_last for r in eng.runners)
        day = sum(r.equity_last - r.day_start_equity for r in eng.runners if r.day_start_equity is not None)
        yield GaugeMetricFamily("radar_equity_usdt", "Account equity, USDT (sum of the runners)", value=equity)
        yield GaugeMetricFamily("radar_day_pnl_usdt", "P&L since the first candle of the UTC day, USDT", value=day)
        ks = eng.kill_switch
        yield GaugeMetricFamily("radar_kill_switch_active", "1 while the account-wide kill switch is on",
                                value=int(bool(ks and ks.active)))
        blocked = getattr(ks, "symbols", {}) or {}
        yield GaugeMetricFamily("radar_kill_switch_symbols", "Symbols whose entries are blocked on their own",
                                value=len(blocked))
        fam = GaugeMetricFamily("radar_kill_switch_symbol_active",
                                "1 for a symbol whose entries are blocked on its own (e.g. unprotected too long)",
                                labels=["symbol"])
        for sym in sorted(blocked):
            fam.add_metric([sym], 1)
        yield fam

    def _runners(self) -> Iterator[Metric]:
        eng = self.api.engine
        qty = GaugeMetricFamily("radar_position_qty", "Position size, base units (0 flat)",
                                labels=["strategy", "symbol", "side"])
        unreal = GaugeMetricFamily("radar_unrealized_pnl_usdt", "Unrealised P&L of the open position, USDT",
                                   labels=["strategy", "symbol"])
        halted = GaugeMetricFamily("radar_runner_halted", "1 while the runner refuses entries (halted)",
                                   labels=["strategy", "symbol"])
        paused = GaugeMetricFamily("radar_runner_paused", "1 while an operator has paused the runner's entries",
                                   labels=["strategy", "symbol"])
        state = GaugeMetricFamily("radar_runner_state", "1 for the runner's current state (ready, paused, "
                                  "halted, connecting, reconciling, blocked), 0 for the others",
                                  labels=["strategy", "symbol", "state"])
        labels = ["strategy", "symbol"]
        unprot = GaugeMetricFamily("radar_unprotected_seconds",
                                   "Seconds the position has been without a stop at the venue (0 when protected)",
                                   labels=labels)
        longest = GaugeMetricFamily("radar_unprotected_longest_seconds",
                                    "Longest time a position was without a stop at the venue so far, seconds",
                                    labels=labels)
        total = CounterMetricFamily("radar_unprotected_duration_seconds",
                                    "Time positions were without a stop at the venue so far, seconds", labels=labels)
        windows = CounterMetricFamily("radar_unprotected_windows",
                                      "Times a position lost its stop at the venue (runner halted unprotected)",
                                      labels=labels)
        notional: Counter[str] = Counter()
        orders: Counter[tuple[str, str]] = Counter()
        open_positions = 0
        now = _loop_time()
        for r in eng.runners:
            p = r.position()
            q = float(p["qty"] or 0.0)
            open_positions += q > 0
            key = [r.name, r.symbol]
            qty.add_metric([r.name, r.symbol, str(p.get("side"))], q)
            unreal.add_metric(key, float(p.get("unrealized") or 0.0))
            price = r.last_close if r.last_close is not None else (p.get("avg_entry") or 0.0)
            notional[r.symbol] += abs(q * float(price))
            ex = getattr(r, "executor", None)
            halted.add_metric(key, int(bool(getattr(ex, "halted", None))))
            paused.add_metric(key, int(bool(getattr(ex, "paused", None))))
            current = runner_state_label(r)
            for st in RUNNER_STATES if current in RUNNER_STATES else (*RUNNER_STATES, current):
                state.add_metric([r.name, r.symbol, st], int(st == current))
            if hasattr(ex, "unprotected_s"):
                cur = ex.unprotected_s()
                unprot.add_metric(key, cur)
                longest.add_metric(key, ex.unprotected_longest_s())
                total.add_metric(key, ex.unprotected_total_s + cur)
                windows.add_metric(key, ex.unprotected_windows)
            else:                                   # a runner without the executor's tracking
                since = getattr(r, "unprotected_since", None)
                unprot.add_metric(key, max(0.0, now - since) if since is not None and now else 0.0)
            for rec in getattr(ex, "orders", {}).values():
                orders[(r.symbol, str(rec[0]))] += 1
            if q > 0 and getattr(ex, "stop_cid", None):         # the grid's stop is not in `orders`
                orders[(r.symbol, "stop")] += 1
        yield GaugeMetricFamily("radar_open_positions", "Runners holding a position", value=open_positions)
        yield from (qty, unreal, halted, paused, state, unprot, longest, total, windows)
        symbols = sorted({r.symbol for r in eng.runners})
        fam = GaugeMetricFamily("radar_position_notional_usdt", "|qty| x last price, USDT", labels=["symbol"])
        for sym in symbols:
            fam.add_metric([sym], notional[sym])
        yield fam
        fam = GaugeMetricFamily("radar_resting_orders", "Orders resting at the venue, by purpose",
                                labels=["symbol", "purpose"])
        for sym in symbols:
            for purpose in _PURPOSES:
                fam.add_metric([sym, purpose], orders.pop((sym, purpose), 0))
        for (sym, purpose), n in sorted(orders.items()):
            fam.add_metric([sym, purpose], n)
        yield fam

    def _exchange(self) -> Iterator[Metric]:
        fam = CounterMetricFamily("radar_exchange_errors", "Errors raised by exchange calls, by ccxt class "
                                  "(RateLimitExceeded, NetworkError, InvalidOrder, InsufficientFunds, "
                                  "ExchangeError, other)", labels=["venue", "kind"])
        counts = EXCHANGE_ERRORS.counts()
        for venue in sorted({v for v, _ in counts}):
            for kind in ERROR_KINDS:
                fam.add_metric([venue, kind], counts.get((venue, kind), 0))
        yield fam

    def _services(self) -> Iterator[Metric]:
        api = self.api
        if api.lag is not None:
            s = api.lag.stats()
            fam = GaugeMetricFamily("radar_loop_lag_seconds", "Event-loop lag over the sampler's window",
                                    labels=["quantile"])
            for q, v in (("0.5", s.p50_s), ("0.99", s.p99_s), ("1", s.max_s)):
                if v is not None:
                    fam.add_metric([q], v)
            yield fam
        if api.alerts is not None:
            counts = Counter((a.severity.value, a.state.value) for a in api.alerts.list())
            fam = GaugeMetricFamily("radar_alerts", "Unresolved alerts", labels=["severity", "state"])
            for sev in _SEVERITIES:
                fam.add_metric([sev, "active"], counts.pop((sev, "active"), 0))
            for (sev, state), n in sorted(counts.items()):
                fam.add_metric([sev, state], n)
            yield fam
        if api.jobs is not None:
            st = api.jobs.stats()
            fam = GaugeMetricFamily("radar_jobs", "Research jobs", labels=["state"])
            fam.add_metric(["queued"], st.get("queued", 0))
            fam.add_metric(["running"], st.get("running", 0))
            yield fam
            yield GaugeMetricFamily("radar_job_workers_alive", "Job dispatcher threads alive", value=st.get("alive", 0))
        if api.watchdog is not None:
            fam = GaugeMetricFamily("radar_health_status", "0 ok, 1 degraded, 2 down", labels=["subsystem"])
            for name, h in sorted(api.watchdog.snapshot().items()):
                fam.add_metric([name], _HEALTH.get(h.status.value, 2))
            yield fam

    def _server(self) -> Iterator[Metric]:
        st = self.stats
        yield GaugeMetricFamily("radar_api_event_clients", "Websocket event streams open", value=st.event_clients)
        yield CounterMetricFamily("radar_api_slow_clients_dropped", "Event streams dropped for being too slow",
                                  value=st.slow_dropped)
        fam = CounterMetricFamily("radar_api_commands", "API commands by outcome", labels=["command", "outcome"])
        for (cmd, outcome), n in sorted(st.commands.items()):
            fam.add_metric([cmd, outcome], n)
        yield fam


class JobProgress:
    """Follows a JobManager's events (`jobs.subscribe(progress.on_event)`, on the loop): the
    progress of the running jobs and how many ended by state, for `RunCollector`."""

    def __init__(self) -> None:
        self.running: dict[int, tuple[str, float]] = {}       # job id -> (kind, fraction 0-1)
        self.finished: Counter[str] = Counter()

    def on_event(self, ev: Any) -> None:
        state = getattr(ev, "state", None)
        if state == "running":
            self.running[int(ev.job_id)] = (str(ev.kind), min(1.0, max(0.0, float(ev.percent or 0.0) / 100.0)))
        elif state in ("done", "failed", "cancelled"):
            self.running.pop(int(ev.job_id), None)
            self.finished[state] += 1


class RunCollector:
    """The run's own families (see the module docstring), read from `RunServices` at scrape time:
    its `feeds` (FeedHealth), `job_progress` (JobProgress) and `trade_log` (TradeLog)."""

    def __init__(self, services: Any) -> None:
        self.services = services

    def collect(self) -> Iterator[Metric]:
        s = self.services
        feeds = getattr(s, "feeds", None)
        if feeds is not None and hasattr(feeds, "candle_stats"):
            age = GaugeMetricFamily("radar_feed_last_candle_age_seconds",
                                    "Seconds since the engine took the symbol's last closed candle", labels=["symbol"])
            lat = GaugeMetricFamily("radar_feed_candle_latency_seconds",
                                    "Feed latency of the last live candle: its close time to the engine taking it, "
                                    "seconds (none on a replay)", labels=["symbol"])
            n = CounterMetricFamily("radar_feed_candles", "Closed candles taken from the feed", labels=["symbol"])
            for st in feeds.candle_stats():
                if st.age_s is not None:
                    age.add_metric([st.symbol], st.age_s)
                if st.latency_s is not None:
                    lat.add_metric([st.symbol], st.latency_s)
                n.add_metric([st.symbol], st.candles)
            yield from (age, lat, n)
        jp = getattr(s, "job_progress", None)
        if jp is not None:
            fam = GaugeMetricFamily("radar_job_progress_ratio", "Progress of a running research job, 0-1",
                                    labels=["job_id", "kind"])
            for job_id, (kind, frac) in sorted(jp.running.items()):
                fam.add_metric([str(job_id), kind], frac)
            yield fam
            fam = CounterMetricFamily("radar_jobs_finished", "Research jobs ended, by state", labels=["state"])
            for state in ("done", "failed", "cancelled"):
                fam.add_metric([state], jp.finished.get(state, 0))
            yield fam
        tl = getattr(s, "trade_log", None)
        if tl is not None:
            yield CounterMetricFamily("radar_trade_log_lines", "Lines written to trades.jsonl", value=tl.lines)
            yield CounterMetricFamily("radar_trade_log_errors", "trades.jsonl lines that could not be written",
                                      value=tl.errors)
            yield CounterMetricFamily("radar_trade_log_dropped_events",
                                      "Bus events the trade log fell too far behind to take", value=tl.dropped)


def _loop_time() -> float:
    try:
        return asyncio.get_running_loop().time()
    except RuntimeError:
        return 0.0


def build_registry(api: Any, stats: Any = None) -> CollectorRegistry:
    """A new registry holding one `EngineCollector(api, stats)`."""
    reg = CollectorRegistry(auto_describe=False)
    reg.register(EngineCollector(api, stats))
    return reg


def render(registry: CollectorRegistry) -> bytes:
    """The registry in the Prometheus text format (`CONTENT_TYPE`)."""
    return generate_latest(registry)
