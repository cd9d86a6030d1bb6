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
