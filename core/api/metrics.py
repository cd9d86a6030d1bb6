"""Prometheus metrics of a running engine (`GET /metrics`, `GET /v1/metrics`).

A dedicated `CollectorRegistry` (never the process-global one) holds one collector that
reads the engine's in-memory state at scrape time (cheap, on the loop). Families (money
USDT, durations seconds):

* radar_up, radar_engine_info{mode,protocol,pid}; radar_candles_total;
* radar_equity_usdt, radar_day_pnl_usdt; radar_kill_switch_active, radar_kill_switch_symbols;
* radar_open_positions; per runner radar_position_qty{strategy,symbol,side},
  radar_unrealized_pnl_usdt{strategy,symbol}, radar_runner_halted{strategy,symbol},
  radar_unprotected_seconds{strategy,symbol} (seconds a live position has had no stop; 0
  when protected); per symbol radar_position_notional_usdt{symbol} (|qty| x last price);
  radar_resting_orders{symbol,purpose};
* radar_loop_lag_seconds{quantile="0.5"|"0.99"|"1"} (window of the loop-lag sampler);
* radar_alerts{severity,state} (unresolved alerts); radar_jobs{state="queued"|"running"},
  radar_job_workers_alive; radar_health_status{subsystem} (0 ok, 1 degraded, 2 down);
* radar_api_event_clients, radar_api_slow_clients_dropped_total,
  radar_api_commands_total{command,outcome}.
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

#: The Content-Type of the text exposition format: 0.0.4, what every Prometheus version scrapes
#: (our names are plain ASCII, so the 0.0.4 and 1.0.0 texts are the same).
CONTENT_TYPE = getattr(exposition, "CONTENT_TYPE_PLAIN_0_0_4", exposition.CONTENT_TYPE_LATEST)

_SEVERITIES = ("info", "warning", "error", "critical")
_HEALTH = {"ok": 0, "degraded": 1, "down": 2}


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
        yield GaugeMetricFamily("radar_kill_switch_symbols", "Symbols whose entries are blocked on their own",
                                value=len(getattr(ks, "symbols", {}) or {}))

    def _runners(self) -> Iterator[Metric]:
        eng = self.api.engine
        qty = GaugeMetricFamily("radar_position_qty", "Position size, base units (0 flat)",
                                labels=["strategy", "symbol", "side"])
        unreal = GaugeMetricFamily("radar_unrealized_pnl_usdt", "Unrealised P&L of the open position, USDT",
                                   labels=["strategy", "symbol"])
        halted = GaugeMetricFamily("radar_runner_halted", "1 while the runner refuses entries (halted)",
                                   labels=["strategy", "symbol"])
        unprot = GaugeMetricFamily("radar_unprotected_seconds", "Seconds the position has been without a stop",
                                   labels=["strategy", "symbol"])
        notional: Counter[str] = Counter()
        orders: Counter[tuple[str, str]] = Counter()
        open_positions = 0
        now = _loop_time()
        for r in eng.runners:
            p = r.position()
            q = float(p["qty"] or 0.0)
            open_positions += q > 0
            qty.add_metric([r.name, r.symbol, str(p.get("side"))], q)
            unreal.add_metric([r.name, r.symbol], float(p.get("unrealized") or 0.0))
            price = r.last_close if r.last_close is not None else (p.get("avg_entry") or 0.0)
            notional[r.symbol] += abs(q * float(price))
            halted.add_metric([r.name, r.symbol], int(bool(getattr(r.executor, "halted", None))))
            since = getattr(r, "unprotected_since", None)
            unprot.add_metric([r.name, r.symbol], max(0.0, now - since) if since is not None and now else 0.0)
            for rec in getattr(r.executor, "orders", {}).values():
                orders[(r.symbol, str(rec[0]))] += 1
        yield GaugeMetricFamily("radar_open_positions", "Runners holding a position", value=open_positions)
        yield from (qty, unreal, halted, unprot)
        fam = GaugeMetricFamily("radar_position_notional_usdt", "|qty| x last price, USDT", labels=["symbol"])
        for sym in sorted({r.symbol for r in eng.runners}):
            fam.add_metric([sym], notional[sym])
        yield fam
        fam = GaugeMetricFamily("radar_resting_orders", "Orders resting at the venue", labels=["symbol", "purpose"])
        for (sym, purpose), n in sorted(orders.items()):
            fam.add_metric([sym, purpose], n)
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
