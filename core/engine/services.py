"""The services a `radar run` needs around its Engine, built and closed in one place.

    services = await RunServices.open(engine, db_path, secrets=secrets, mode="headless")
    ...                       # start the engine (headless, or through the console)
    await services.close()    # after the engine stopped: alerts drained, heartbeat marked stopped

Built (all on the engine's event loop, BEFORE the engine's first candle):

* `alerts`: the AlertEngine on the run's database (polling: `radar alerts ack` in another
  process is seen within a second), redacting secrets;
* `bridge`: `core.engine.alerting.EngineAlerts`, engine events -> alerts (subscribed to the
  bus before the engine starts, so nothing is missed);
* `rules`: `core.alerts.rules.service.AlertRules`, the alert rules (price near a level / the
  stop, drawdown warning, underperformance vs the backtest, live vs paper shadow) evaluated
  after every runner's candle (`Engine.candle_hooks`), thresholds from `alert_rules` (else
  `alert_rules.yaml` of `config_dir`, else the defaults); closed after the engine stopped;
* `var_alert`: `core.risk.var_alert.VarAlert`, the book's one-day VaR measured every
  `scenarios.yaml` alert.interval_s (supervised loop) and alerted over alert.var_limit;
* `jobs`: the JobManager (research jobs of the console); a failed job raises an alert;
* `watchdog` + `heartbeat`: health checks for the feeds (one per symbol), the executor,
  the database, the event-loop lag, the jobs and Telegram; the heartbeat is written so
  `radar health` in another process shows them;
* `bot`: the Telegram bot when the secrets hold a token (EngineControl: `core.engine.control`;
  its commands run through the API server's audited path, source "telegram", so without
  the API server they are refused);
  its settings are `telegram_settings`, else the defaults with the Bot API URL of the
  environment variable RADAR_TELEGRAM_BASE_URL when set (e.g. a local stand-in in tests);
* `api`: the engine's API server (`core.api.server`) on `<db>.sock` (with `api=True`, the
  default): consoles and `radar status` / `radar ctl` attach to it; a live engine already
  listening there refuses this start (`ApiSocketBusy`); the socket is removed on close. Its
  metrics registry also holds a `core.api.metrics.RunCollector` of these services (feed
  latency, job progress, trade log);
* `metrics_tcp`: `GET /metrics` on TCP 127.0.0.1 (`core.api.metrics_tcp`) when the engine's
  `health.metrics.tcp_port` (health.yaml) is set; off by default;
* `trade_log`: the JSON-lines trade-action log (`core.engine.trade_log`) at `trade_log` (a
  path; `radar run` gives `<log dir>/trades.jsonl`, next to its log), subscribed before the
  engine starts, its task under the engine's supervisor, drained and closed on close;
  secrets masked with the run's secrets;
* `job_progress`: the running jobs' progress for the metrics (`core.api.metrics.JobProgress`).

An alert acknowledged, snoozed or resolved by someone other than the engine (the console,
Telegram, `radar alerts ack` in another process: seen by the AlertEngine's poll) is logged
("alert #N acknowledged by cli: ..."), so the run's log shows when the engine saw the change.

Risk is not built here: the RiskManager lives on the state store's connection, which only
exists once the engine started; the engine builds it from `Engine(risk_config=..., risk_groups=...)`.
`close()` never raises (errors are logged): every service is closed in reverse order.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.health.status import Check

log = logging.getLogger(__name__)

#: Environment variable overriding the Telegram Bot API URL (before the token), e.g.
#: "http://127.0.0.1:8081/bot" for a local stand-in; unset: api.telegram.org.
TELEGRAM_BASE_URL_VAR = "RADAR_TELEGRAM_BASE_URL"

#: Actor of the changes the engine makes itself (`core.engine.alerting.ACTOR`).
_ENGINE_ACTOR = "engine"


def telegram_settings_from_env(environ: Any = None) -> Any:
    """Default `TelegramSettings`, with `base_url` from RADAR_TELEGRAM_BASE_URL when set.

    Raises:
        ConfigError: the variable is not an http(s) URL.
    """
    from core.telegram.settings import TelegramSettings

    env = os.environ if environ is None else environ
    url = (env.get(TELEGRAM_BASE_URL_VAR) or "").strip()
    return TelegramSettings(base_url=url) if url else TelegramSettings()


def log_operator_change(alert: Any) -> None:
    """AlertEngine listener: log an alert acknowledged, snoozed or resolved by someone else than
    the engine (an operator; from another process it arrives through the AlertEngine's poll)."""
    state = getattr(alert.state, "value", alert.state)
    if state not in ("acknowledged", "snoozed", "resolved") or alert.changed_by in (_ENGINE_ACTOR, alert.source):
        return
    log.info("alert #%d %s by %s: %s", alert.id, state, alert.changed_by, alert.title)


@dataclass
class _JobStats:
    workers: int
    alive: int
    queued: int
    max_queued: int
    running: int


def job_stats(jobs: Any) -> _JobStats:
    """The JobManager's worker snapshot for `core.health.jobs_check` (reads its counters)."""
    threads = getattr(jobs, "_threads", [])
    q = getattr(jobs, "_queue", None)
    return _JobStats(workers=getattr(jobs, "_n_workers", len(threads)),
                     alive=sum(1 for t in threads if t.is_alive()),
                     queued=q.qsize() if q is not None else 0,
                     max_queued=q.maxsize if q is not None else 0,
                     running=len(getattr(jobs, "_running", {})))


def executor_check(engine: Any):
    """The executor: down when the engine stopped on an error, or a runner holds a position
    without a stop ("halted: unprotected"); degraded while a runner is halted for another
    reason (its stop not re-sized yet, its protection loop not running), while a symbol is
    blocked, or while the kill switch is active; ok otherwise."""

    def check() -> Check:
        metrics = {"candles": engine.stats.candles, "runners": len(engine.runners)}
        risk = getattr(engine, "risk", None)
        if risk is not None:
            metrics["risk_rejections"] = sum(risk.rejections.values())
        if engine.error is not None:
            return Check.down(f"engine stopped on error: {engine.error}", **metrics)
        if engine.store is None:
            if not getattr(engine, "_started", False):
                return Check.ok("starting", **metrics)
            if engine.finished:
                return Check.ok("replay finished", **metrics)
            return Check.ok("stopped", **metrics)
        halted = [(r, r.executor.halted) for r in engine.runners if getattr(r.executor, "halted", None)]
        metrics["halted"] = len(halted)
        bad = [f"{r.name} {r.symbol} halted: {why}" for r, why in halted if why.startswith("unprotected")]
        if bad:
            return Check.down("; ".join(bad), **metrics)
        ks = engine.kill_switch
        if halted:
            return Check.degraded("; ".join(f"{r.name} {r.symbol} halted: {why}" for r, why in halted), **metrics)
        if ks is not None and getattr(ks, "symbols", None):
            return Check.degraded("kill switch for " + ", ".join(
                f"{s} (by {v['actor']}: {v['reason']})" for s, v in ks.symbols.items()), **metrics)
        if ks is not None and ks.active:
            return Check.degraded(f"kill switch active (by {ks.actor}: {ks.reason})", **metrics)
        return Check.ok(**metrics)

    return check


def alert_rules_check(services: Any) -> Any:
    """Health of the alert rules and the VaR alert: degraded once an evaluation failed (a rule that
    cannot be evaluated cannot warn: the operator must hear of it), with the failure counts."""

    def check() -> Check:
        rules = getattr(getattr(services, "rules", None), "failures", 0) or 0
        var = getattr(getattr(services, "var_alert", None), "failures", 0) or 0
        if rules or var:
            return Check.degraded(f"{rules} alert-rule and {var} VaR-alert evaluation(s) failed (see the log)",
                                  rule_failures=rules, var_failures=var)
        return Check.ok(rule_failures=0, var_failures=0)

    return check


def _supervised(engine: Any, subsystem: str, critical: bool = False):
    """A `spawn(name, factory) -> Task` for a service's background loop: run under the engine's
    supervisor (a loop that dies is logged, alerted under `subsystem`, counted in health and
    restarted; `critical` alerts at critical), or a plain task whose death is logged at CRITICAL
    when the engine has no running supervisor (`core.engine.supervisor.spawn_service`)."""
    from core.engine.supervisor import spawn_service

    return lambda name, factory: spawn_service(engine, name, factory, subsystem=subsystem, critical=critical)


@dataclass
class RunServices:
    """See the module docstring. Attributes are None when a service is not used."""

    engine: Any
    alerts: Any = None
    bridge: Any = None
    rules: Any = None
    var_alert: Any = None
    jobs: Any = None
    watchdog: Any = None
    heartbeat: Any = None
    lag: Any = None
    probe: Any = None
    feeds: Any = None
    bot: Any = None
    notices: Any = None
    control: Any = None
    api: Any = None
    metrics_tcp: Any = None
    trade_log: Any = None
    job_progress: Any = None
    _closed: bool = field(default=False, repr=False)

    @classmethod
    async def open(cls, engine: Any, db_path: str | Path, *, secrets: Any = None, mode: str = "headless",
                   health_interval_s: float = 5.0, heartbeat_interval_s: float = 2.0, jobs: bool = True,
                   telegram: bool = True, alert_config: Any = None,
                   telegram_settings: Any = None, api: bool = True,
                   trade_log: str | Path | None = None, trade_log_tighten: bool = True,
                   config_dir: str | Path | None = None, alert_rules: Any = None) -> "RunServices":
        """Build and start every service (see the module docstring); on an error, what was
        started is closed again and the error raised.

        `trade_log`: the trades.jsonl path (None: no trade log); `trade_log_tighten`: chmod an
        existing folder of it to 0700 (False for a folder the operator chose for other files)."""
        from core.alerts.engine import AlertEngine
        from core.engine.alerting import EngineAlerts
        from core.health import (
            DatabaseProbe,
            FeedHealth,
            HeartbeatWriter,
            LoopLagSampler,
            TelegramCheck,
            Watchdog,
            jobs_check,
        )

        s = cls(engine)
        try:
            redact = None
            if secrets is not None:
                try:
                    from core.config.redact import SecretRedactor

                    redact = SecretRedactor(secrets).redact
                except Exception:  # pragma: no cover - redaction is best effort here
                    redact = None
            if trade_log is not None:
                from core.engine.trade_log import TradeLog

                s.trade_log = TradeLog(engine, trade_log, redact=redact, tighten_folder=trade_log_tighten)
                s.trade_log.start()
            s.alerts = await AlertEngine.open(db_path, config=alert_config, redact=redact)
            s.alerts.listeners.add(log_operator_change)
            s.alerts.start()
            s.bridge = EngineAlerts(engine.bus, s.alerts, engine=engine)
            s.bridge.start()
            s.rules = _alert_rules(engine, s.alerts, alert_rules, config_dir)
            s.rules.start()
            from core.risk.var_alert import start_var_alert

            s.var_alert = start_var_alert(engine, s.alerts, config_dir)   # scenarios.yaml alert (VaR limit)
            if jobs:
                from core.jobs.manager import JobManager

                s.jobs = JobManager(db_path)
                await s.jobs.start()
                s.jobs.subscribe(s.bridge.on_job_event)
                from core.api.metrics import JobProgress

                s.job_progress = JobProgress()
                s.jobs.subscribe(s.job_progress.on_event)
            s.watchdog = Watchdog(alerts=s.alerts, interval_s=health_interval_s)
            s.watchdog.spawn = _supervised(engine, "health", critical=True)
            stale = 30.0
            for src in engine.sources:              # a paced replay delivers a candle every tf/speed seconds
                if src.replay:
                    stale = max(stale, 3.0 * _candle_period_s(src))
            s.feeds = FeedHealth(stale_after_s=stale)
            engine.feed_listeners.append(s.feeds.on_event)
            s.feeds.register(s.watchdog, sorted({src.symbol for src in engine.sources}))
            s.watchdog.register("executor", executor_check(engine))
            s.watchdog.register("tasks", engine.supervisor.check)
            s.watchdog.register("alert_rules", alert_rules_check(s))
            s.probe = DatabaseProbe(db_path)
            s.watchdog.register("database", s.probe)
            s.lag = LoopLagSampler.from_settings(getattr(getattr(engine, "health", None), "loop_lag", None))
            s.lag.spawn = _supervised(engine, "loop")
            s.lag.start()
            s.watchdog.register("loop", s.lag.check)
            if s.jobs is not None:
                s.watchdog.register("jobs", jobs_check(lambda: job_stats(s.jobs)))
            if telegram and secrets is not None and getattr(secrets, "telegram_bot_token", None):
                from core.engine.api import EngineAPI
                from core.engine.control import EngineTelegramControl
                from core.telegram.bot import TelegramBot

                s.control = EngineTelegramControl(EngineAPI(engine, alerts=s.alerts, jobs=s.jobs, watchdog=s.watchdog),
                                                  jobs=s.jobs, watchdog=s.watchdog)
                s.bot = TelegramBot.from_secrets(secrets, s.control, alerts=s.alerts,
                                                 settings=telegram_settings or telegram_settings_from_env())
                s.bot.outbox.spawn = _supervised(engine, "telegram")
                s.bot.start()
                from core.engine.trade_notices import TradeNotices

                s.notices = TradeNotices(engine.bus, s.bot, engine=engine)
                s.notices.start()
                s.watchdog.register("telegram", TelegramCheck(s.bot.outbox))
            s.watchdog.start()
            s.heartbeat = HeartbeatWriter(
                db_path, s.watchdog.snapshot, mode=mode, interval_s=heartbeat_interval_s,
                spawn=lambda name, factory: engine.supervisor.spawn(name, factory, subsystem="heartbeat",
                                                                    critical=False))
            await s.heartbeat.start()
            if api:
                from core.api.server import start_api_server

                s.api = await start_api_server(engine, db_path, s, ui=mode, config_dir=config_dir, redact=redact)
                if s.control is not None:            # Telegram's commands: audited like the CLI's
                    s.control.commands = s.api.run_command
            await s._start_metrics()
        except BaseException:
            await s.close()
            raise
        return s

    async def _start_metrics(self) -> None:
        """The RunCollector on the API's registry, and the TCP listener when configured."""
        from core.api.metrics import RunCollector, build_registry

        registry = getattr(self.api, "registry", None)
        if registry is not None:
            registry.register(RunCollector(self))
        cfg = getattr(getattr(self.engine, "health", None), "metrics", None)
        port = getattr(cfg, "tcp_port", None)
        if port is None:
            return
        if registry is None:                           # no API server: a registry of its own
            from core.engine.api import EngineAPI

            registry = build_registry(EngineAPI(self.engine, alerts=self.alerts, jobs=self.jobs,
                                                watchdog=self.watchdog, lag=self.lag))
            registry.register(RunCollector(self))
        from core.api.metrics_tcp import MetricsTcpServer

        self.metrics_tcp = await MetricsTcpServer(registry, cfg.host, port).start()

    async def close(self) -> None:
        """Close every service, newest first; never raises. Call after the engine stopped."""
        if self._closed:
            return
        self._closed = True
        for what, fn in (("metrics TCP listener", lambda: self.metrics_tcp and self.metrics_tcp.stop()),
                         ("engine API", lambda: self.api and self.api.stop()),
                         ("trade log", lambda: self.trade_log and self.trade_log.close()),
                         ("heartbeat", lambda: self.heartbeat and self.heartbeat.close()),
                         ("trade notices", lambda: self.notices and self.notices.close()),
                         ("telegram", lambda: self.bot and self.bot.stop()),
                         ("watchdog", lambda: self.watchdog and self.watchdog.stop()),
                         ("loop lag", lambda: self.lag and self.lag.stop()),
                         ("database probe", lambda: self.probe and self.probe.close()),
                         ("jobs", lambda: self.jobs and self.jobs.close()),
                         ("alert rules", lambda: self.rules and self.rules.close()),
                         ("VaR alert", lambda: self.var_alert and self.var_alert.close()),
                         ("engine alerts", lambda: self.bridge and self.bridge.close()),
                         ("alerts", lambda: self.alerts and self.alerts.close())):
            try:
                aw = fn()
                if aw:
                    await aw
            except Exception as exc:
                log.warning("closing %s failed: %s", what, exc)


def _alert_rules(engine: Any, alerts: Any, config: Any, config_dir: str | Path | None) -> Any:
    """The run's `AlertRules`: `config` (an `AlertRulesConfig`), else `alert_rules.yaml` of
    `config_dir` (validated against the engine's risk.yaml max_drawdown), else the defaults."""
    from core.alerts.rules.service import AlertRules
    from core.config.alert_rules import AlertRulesConfig, load_alert_rules

    limits = getattr(getattr(engine, "risk_config", None), "limits", None)
    max_dd = getattr(limits, "max_drawdown", None)
    if config is None:
        config = load_alert_rules(config_dir, max_dd) if config_dir is not None else AlertRulesConfig()
    return AlertRules(engine, alerts, config, max_drawdown=max_dd)


def _candle_period_s(src: Any) -> float:
    from core.data.timeframes import timeframe_ms

    speed = getattr(src, "speed", None)
    try:
        period = timeframe_ms(src.timeframe) / 1000.0
    except Exception:
        return 30.0
    if isinstance(speed, (int, float)) and speed > 0:
        return period / speed
    return 10.0
