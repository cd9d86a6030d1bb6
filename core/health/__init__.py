"""Health: per-subsystem status (ok/degraded/down) with a reason, a watchdog, circuit breakers, a heartbeat.

* `status`     HealthStatus, Check (one result), SubsystemHealth (a result with since/checked times)
* `watchdog`   Watchdog: runs registered checks, publishes changes, raises/resolves "health:<subsystem>" alerts
* `checks`     exchange_check (executor, gateway), jobs_check, TelegramCheck
* `feeds`      FeedHealth: feed per symbol from DataEngine events ("feed:<symbol>")
* `loop_lag`   LoopLagSampler: event-loop scheduling delay, p50/p99/max over a window
* `db_probe`   DatabaseProbe: timed write+read probe in a worker thread, file size, free disk
* `breaker`    CircuitBreaker around exchange calls, CircuitOpenError
* `heartbeat`  HeartbeatWriter: heartbeat + latest health to SQLite for `radar health`
* `store`      the heartbeat/health rows (shared with `radar health`)

Wiring in the engine (all on its event loop; times ms UTC, durations seconds):

    alerts = await AlertEngine.open(db_path)
    watchdog = Watchdog(alerts=alerts, interval_s=5)
    gateway = CircuitBreaker("bitget", failure_threshold=5, cooldown_s=30)
    watchdog.register("gateway", exchange_check(gateway.stats, max_silence_s=120))  # down: critical alert
    watchdog.register("executor", exchange_check(executor_breaker.stats))           # down: critical alert
    feeds = FeedHealth(stale_after_s=30); data_engine.subscribe(feeds.on_event)
    feeds.register(watchdog, symbols)                      # "feed:BTC/USDT:USDT", ...
    lag = LoopLagSampler(); lag.start(); watchdog.register("loop", lag.check)
    probe = DatabaseProbe(db_path); watchdog.register("database", probe)
    watchdog.register("jobs", jobs_check(job_manager_stats))
    watchdog.register("telegram", TelegramCheck(outbox))
    watchdog.start()
    heartbeat = HeartbeatWriter(db_path, watchdog.snapshot, mode="headless"); await heartbeat.start()
    ...
    await heartbeat.close(); await watchdog.stop(); await lag.stop(); await probe.close()

Then every exchange call goes through the breaker: `await gateway.call(exchange.fetch_balance)`.
"""

from core.health.breaker import (
    BreakerStats,
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    is_exchange_answer,
    is_transport_error,
)
from core.health.checks import TelegramCheck, exchange_check, jobs_check
from core.health.db_probe import DatabaseProbe
from core.health.feeds import FeedHealth, feed_subsystem
from core.health.heartbeat import HeartbeatWriter
from core.health.loop_lag import LagStats, LoopLagSampler
from core.health.status import Check, HealthStatus, SubsystemHealth, worst
from core.health.store import STALE_FACTOR, Heartbeat
from core.health.watchdog import Watchdog, alert_key

__all__ = [
    "BreakerStats", "Check", "CircuitBreaker", "CircuitOpenError", "CircuitState", "DatabaseProbe",
    "FeedHealth", "HealthStatus", "Heartbeat", "HeartbeatWriter", "LagStats", "LoopLagSampler",
    "STALE_FACTOR", "SubsystemHealth", "TelegramCheck", "Watchdog", "alert_key", "exchange_check",
    "feed_subsystem", "is_exchange_answer", "is_transport_error", "jobs_check", "worst",
]
