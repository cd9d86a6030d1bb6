"""A run service's bridge task is never left to die silently: under the engine's supervisor a
failure is restarted (and counted); without one, its death is logged at CRITICAL."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace

import pytest

from core.engine.supervisor import Supervisor, spawn_service
from core.events.bus import EventBus


async def test_a_plain_service_task_that_dies_says_so_at_critical(caplog: pytest.LogCaptureFixture) -> None:
    async def bridge() -> None:
        raise RuntimeError("subscription broke")

    with caplog.at_level(logging.CRITICAL, logger="core.engine.supervisor"):
        task = spawn_service(None, "engine-alerts", bridge, subsystem="alerts")
        await asyncio.gather(task, return_exceptions=True)
        await asyncio.sleep(0)
    assert any("engine-alerts died" in r.getMessage() and "subscription broke" in r.getMessage()
               for r in caplog.records if r.levelno == logging.CRITICAL), caplog.text


async def test_a_supervised_service_task_is_restarted_after_a_failure() -> None:
    sup = Supervisor(EventBus(), sleep=lambda s: asyncio.sleep(0))
    runs: list[int] = []
    done = asyncio.Event()

    async def bridge() -> None:
        runs.append(1)
        if len(runs) == 1:
            raise RuntimeError("first run fails")
        done.set()
        await asyncio.Event().wait()

    task = spawn_service(SimpleNamespace(supervisor=sup), "trade-notices", bridge, subsystem="telegram")
    await asyncio.wait_for(done.wait(), 5)
    assert len(runs) == 2 and not task.done()
    await sup.stop()


async def test_the_watchdog_loop_lag_and_outbox_loops_run_under_the_supervisor() -> None:
    """The health watchdog, the loop-lag sampler and the Telegram outbox start their loops through
    `spawn` (the run services pass the supervisor's): a loop that dies is restarted, and stop()
    still ends it."""
    from core.engine.services import _supervised
    from core.health.loop_lag import LoopLagSampler
    from core.health.watchdog import Watchdog
    from core.telegram.outbox import Outbox

    sup = Supervisor(EventBus(), sleep=lambda s: asyncio.sleep(0))
    engine = SimpleNamespace(supervisor=sup)

    async def send(msg) -> None:
        return None

    services = [Watchdog(interval_s=0.01), LoopLagSampler(interval_s=0.01), Outbox(send, max_size=4)]
    for svc, name in zip(services, ("health", "loop", "telegram")):
        runs: list[int] = []
        restarted = asyncio.Event()
        real = svc._run if hasattr(svc, "_run") else svc._drain

        async def flaky(real=real, runs=runs, restarted=restarted) -> None:
            runs.append(1)
            if len(runs) == 1:
                raise RuntimeError("loop bug")
            restarted.set()
            await real()

        if hasattr(svc, "_run"):
            svc._run = flaky
        else:
            svc._drain = flaky
        svc.spawn = _supervised(engine, name)
        svc.start()
        await asyncio.wait_for(restarted.wait(), 5)
        assert svc.running and len(runs) == 2, name
        await svc.stop()
        assert not svc.running, name
    assert set(sup.tasks) >= {"health-watchdog", "loop-lag-sampler", "telegram-outbox"}
    await sup.stop()


def test_failed_alert_rule_evaluations_degrade_health() -> None:
    """A rule (or the VaR alert) that cannot be evaluated cannot warn: health says so."""
    from core.engine.services import alert_rules_check

    svc = SimpleNamespace(rules=SimpleNamespace(failures=0), var_alert=SimpleNamespace(failures=0))
    check = alert_rules_check(svc)
    from core.health.status import HealthStatus

    assert check().status == HealthStatus("ok")
    svc.rules.failures = 2
    c = check()
    assert c.status == HealthStatus("degraded") and "2 alert-rule" in c.reason
