"""The "VaR over a limit" alert: a running engine's book is measured every `interval_s`
(`scenarios.yaml` `alert`), and while the one-day VaR of the configured method and level
exceeds `var_limit` (a fraction of the equity) an alert is raised (key "risk.var", source
"risk", severity error); it is resolved when the VaR falls back under the limit.

    monitor = VarAlert(engine, alerts, cfg)     # cfg: RadarConfig (scenarios.alert, ...)
    monitor.start()                             # supervised loop (core.engine.supervisor.spawn_service)
    await monitor.evaluate()                    # one evaluation now (tests)
    await monitor.close()

A VaR that cannot be computed (too few daily returns) neither raises nor resolves; a failed
evaluation is logged and counted (`failures`) and the loop goes on — the supervisor restarts
the loop if it dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

log = logging.getLogger(__name__)

KEY = "risk.var"
SOURCE = "risk"
ACTOR = "risk-var"


def var_breach(report: dict, method: str, level: float, limit: float) -> tuple[bool, str, str] | None:
    """(over the limit, title, detail) of a risk report (`core.risk.report.risk_report`) for the
    VaR of `method` at `level` against `limit` (fraction of equity); None when that VaR is not
    available."""
    var = report.get("var") or {}
    if not var.get("available"):
        return None
    fig = next((f for f in var.get("figures") or [] if f.get("method") == method
                and abs(float(f.get("level", 0)) - level) < 1e-9), None)
    if fig is None or fig.get("var_fraction") is None:
        return None
    frac = float(fig["var_fraction"])
    name = "historical" if method == "historical" else "Monte Carlo"
    title = (f"VaR {level * 100:.0f} % ({name}) {frac * 100:.1f} % of equity is over the limit "
             f"{limit * 100:.1f} %")
    wc = (report.get("worst_case") or {}).get("total")
    detail = (f"one-day VaR {fig['var']:,.2f} USDT, CVaR {fig['cvar']:,.2f} USDT on equity "
              f"{report.get('equity', 0.0):,.2f} USDT ({var.get('days')} daily returns); worst case "
              + ("UNBOUNDED (a position without a stop)" if wc is None else f"{wc:,.2f} USDT")
              + "; see `radar risk` or the Risk screen (7)")
    return frac > limit, title, detail


class VarAlert:
    """See the module docstring.

    Args:
        engine: the running Engine. alerts: its AlertEngine. cfg: the run's RadarConfig.
        interval_s: seconds between evaluations (default: `cfg.scenarios.alert.interval_s`).
        name: the supervised task's name (one per engine).
    """

    def __init__(self, engine: Any, alerts: Any, cfg: Any, *, interval_s: float | None = None,
                 name: str = "risk-var-alert") -> None:
        self.name = name
        self.engine = engine
        self.alerts = alerts
        self.cfg = cfg
        a = cfg.scenarios.alert
        self.method, self.level, self.limit = a.method, float(a.level), float(a.var_limit)
        self.interval_s = float(a.interval_s if interval_s is None else interval_s)
        self.task: asyncio.Task | None = None
        self.evaluations = 0
        self.failures = 0
        self.last: tuple[bool, str, str] | None = None

    def start(self) -> None:
        """Start the periodic loop under the engine's supervisor."""
        from core.engine.supervisor import spawn_service

        self.task = spawn_service(self.engine, self.name, self._loop, subsystem="risk")

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                await self.evaluate()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.failures += 1
                log.error("VaR alert: evaluation failed: %s", exc)

    async def evaluate(self) -> tuple[bool, str, str] | None:
        """Measure the book now and raise or resolve the alert; returns `var_breach`'s answer
        (None: the engine is not running yet or the VaR is not available)."""
        from core.errors import UsageError
        from core.risk.live import engine_risk

        try:
            report = await engine_risk(self.engine, self.cfg)
        except UsageError:
            return None                               # not started yet / no runner
        self.evaluations += 1
        got = var_breach(report, self.method, self.level, self.limit)
        self.last = got
        if got is None:
            return None
        over, title, detail = got
        if over:
            log.warning("%s", title)
            await self.alerts.raise_alert(KEY, "error", SOURCE, title, detail)
        else:
            await self.alerts.resolve(KEY, ACTOR)
        return got

    async def close(self) -> None:
        """Stop the loop (after the engine stopped)."""
        task, self.task = self.task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def start_var_alert(engine: Any, alerts: Any, config_dir: Any) -> VarAlert | None:
    """The run's VaR alert, started (None when `scenarios.yaml` disables it, or the config
    cannot be read — logged at ERROR, the run goes on without it).
    """
    from core.risk.live import load_risk_config

    try:
        cfg = load_risk_config(config_dir)
    except Exception as exc:
        log.error("VaR alert NOT running: the config of %s cannot be read: %s", config_dir, exc)
        return None
    if not cfg.scenarios.alert.enabled:
        log.info("VaR alert disabled (scenarios.yaml alert.enabled: false)")
        return None
    monitor = VarAlert(engine, alerts, cfg)
    monitor.start()
    return monitor
