"""The Supervisor: failing tasks are logged with their traceback, alerted, reported down/degraded/ok
on a real EventBus and restarted with a growing backoff; cancelled and finished tasks are not
restarted; max_restarts gives up; beats tell a stalled loop."""

from __future__ import annotations

import asyncio
import logging

import pytest

from core.engine.supervisor import Backoff, Supervisor
from core.events.bus import AlertEvent, EventBus, HealthEvent
from core.health.status import HealthStatus

NAME = "engine-live"
FAST = Backoff(first_s=0.01, max_s=1.0, factor=2)


class Recorder:
    """An injected sleep that records the delays it is asked for (then really sleeps them)."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, d: float) -> None:
        self.delays.append(d)
        await asyncio.sleep(d)


async def next_event(sub, timeout: float = 2.0):
    return await asyncio.wait_for(sub.get(), timeout)


def drain(sub) -> list:
    out = []
    while True:
        try:
            out.append(sub.get_nowait())
        except asyncio.QueueEmpty:
            return out


async def until(cond, timeout: float = 2.0) -> None:
    async def wait() -> None:
        while not cond():
            await asyncio.sleep(0.002)
    await asyncio.wait_for(wait(), timeout)


async def ended_by_cancel(task: asyncio.Task, sup: Supervisor) -> None:
    """Assert `task` ends cancelled within 2 s (without hanging the test when it does not)."""
    done, _ = await asyncio.wait({task}, timeout=2)
    if task not in done:
        await sup.stop(timeout_s=1)
    assert task in done and task.cancelled()


def boom_twice_then_run():
    """A factory whose first two runs raise, the third runs until cancelled."""
    calls: list[int] = []

    async def run() -> None:
        calls.append(len(calls) + 1)
        await asyncio.sleep(0)
        if len(calls) <= 2:
            raise RuntimeError(f"exchange unreachable #{len(calls)}")
        await asyncio.Event().wait()

    return run, calls


# ---------------------------------------------------------------------------- backoff


def test_backoff_doubles_up_to_max() -> None:
    b = Backoff(first_s=1, max_s=60, factor=2)
    assert [b.delay(i) for i in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert Backoff(first_s=0.5, max_s=0.5, factor=3).delay(4) == 0.5
    with pytest.raises(ValueError):
        Backoff(first_s=2, max_s=1)
    with pytest.raises(ValueError):
        Backoff(factor=0.5)
    with pytest.raises(ValueError):
        b.delay(-1)


# ---------------------------------------------------------------------------- failures


async def test_failing_twice_then_running_is_restarted_with_growing_delays(caplog) -> None:
    bus = EventBus()
    sub = bus.subscribe((AlertEvent, HealthEvent))
    sleep = Recorder()
    sup = Supervisor(bus, sleep=sleep, healthy_after_s=0.05)
    failures: list[tuple[str, BaseException]] = []
    factory, calls = boom_twice_then_run()
    caplog.set_level(logging.INFO, logger="core.engine.supervisor")

    sup.spawn(NAME, factory, subsystem="executor", backoff=FAST,
              on_failure=lambda name, exc: failures.append((name, exc)))
    events = []
    while not (events and isinstance(events[-1], HealthEvent) and events[-1].state == "ok"):
        events.append(await next_event(sub))

    assert calls == [1, 2, 3]
    assert [d for d in sleep.delays if d != 0.05] == [0.01, 0.02]           # backoff: first_s, then doubled
    alerts = [e for e in events if isinstance(e, AlertEvent)]
    assert len(alerts) == 2
    for i, a in enumerate(alerts, 1):
        assert a.severity == "critical" and a.source == "supervisor"
        assert NAME in a.title and "RuntimeError" in a.title
        assert f"exchange unreachable #{i}" in a.detail
    health = [(e.component, e.state) for e in events if isinstance(e, HealthEvent)]
    assert health == [("executor", "down"), ("executor", "degraded"), ("executor", "down"),
                      ("executor", "degraded"), ("executor", "ok")]
    assert "restarted" not in events[-1].detail and "running again" in events[-1].detail

    assert [n for n, _ in failures] == [NAME, NAME]
    assert [str(e) for _, e in failures] == ["exchange unreachable #1", "exchange unreachable #2"]
    assert all(isinstance(e, RuntimeError) for _, e in failures)

    logged = [r for r in caplog.records if r.levelno == logging.ERROR and r.exc_info]
    assert len(logged) == 2
    for r in logged:
        assert NAME in r.getMessage()
        assert r.exc_info[0] is RuntimeError
    assert "in run" in caplog.text and "raise RuntimeError" in caplog.text   # the traceback is in the log

    st = sup.tasks[NAME]
    assert (st.state, st.restarts, st.failures, st.subsystem) == ("running", 2, 2, "executor")
    assert st.last_error == "RuntimeError: exchange unreachable #2"
    assert st.last_failure_at is not None and st.last_failure_ms is not None
    assert sup.healthy(NAME) and not sup.failed(NAME)
    assert sup.check().status is HealthStatus.OK
    assert await sup.stop() == []
    assert sup.tasks[NAME].state == "cancelled"


async def test_async_on_failure_is_awaited_and_its_errors_are_logged(caplog) -> None:
    bus = EventBus()
    seen: list[str] = []

    async def on_failure(name: str, exc: BaseException) -> None:
        await asyncio.sleep(0)
        seen.append(f"{name}:{exc}")
        raise ValueError("hook broken")

    sup = Supervisor(bus, healthy_after_s=10)
    factory, calls = boom_twice_then_run()
    sup.spawn(NAME, factory, subsystem="executor", backoff=FAST, on_failure=on_failure)
    await until(lambda: len(calls) == 3)
    assert seen == [f"{NAME}:exchange unreachable #1", f"{NAME}:exchange unreachable #2"]
    hook_logs = [r for r in caplog.records if "on_failure hook" in r.getMessage()]
    assert len(hook_logs) == 2 and hook_logs[0].exc_info[0] is ValueError
    assert not sup.healthy(NAME)                              # restarted, not yet up healthy_after_s
    assert sup.check().status is HealthStatus.DEGRADED
    await sup.stop()


async def test_backoff_and_streak_reset_after_a_healthy_run() -> None:
    sleep = Recorder()
    sup = Supervisor(EventBus(), sleep=sleep, healthy_after_s=0.03)
    calls: list[int] = []

    async def run() -> None:
        calls.append(1)
        n = len(calls)
        if n == 2:
            await asyncio.sleep(0.05)          # ran longer than healthy_after_s, then failed
        if n <= 3:
            raise OSError(f"run {n}")
        await asyncio.Event().wait()

    sup.spawn(NAME, run, subsystem="executor", backoff=FAST, max_restarts=2)
    await until(lambda: len(calls) == 4)
    # run 1 fails: 0.01; run 2 was healthy, fails: streak reset, 0.01 again; run 3 fails at once: 0.02
    assert [d for d in sleep.delays if d != 0.03] == [0.01, 0.01, 0.02]
    st = sup.tasks[NAME]
    assert (st.restarts, st.streak, st.state) == (3, 2, "running")    # 3 restarts yet never 2 in a row given up
    await sup.stop()


async def test_stray_cancelled_error_from_inside_is_a_failure_and_restarted() -> None:
    bus = EventBus()
    sub = bus.subscribe((AlertEvent,))
    sup = Supervisor(bus)
    calls: list[int] = []

    async def run() -> None:
        calls.append(1)
        if len(calls) == 1:
            fut = asyncio.get_running_loop().create_future()
            fut.cancel()
            await fut                          # raises CancelledError: nobody cancelled the task
        await asyncio.Event().wait()

    sup.spawn(NAME, run, subsystem="executor", backoff=FAST)
    await until(lambda: len(calls) == 2)
    assert "CancelledError" in (await next_event(sub)).title
    assert sup.tasks[NAME].state == "running" and sup.tasks[NAME].restarts == 1
    await sup.stop()


async def test_a_factory_not_returning_a_coroutine_is_a_failure() -> None:
    sup = Supervisor(EventBus())
    sup.spawn(NAME, lambda: None, subsystem="executor", restart=False)
    await until(lambda: sup.failed(NAME))
    assert "TypeError" in sup.tasks[NAME].last_error and "not a coroutine" in sup.tasks[NAME].last_error


# ---------------------------------------------------------------------------- cancellation, normal return


async def test_cancelled_task_is_not_restarted() -> None:
    bus = EventBus()
    sub = bus.subscribe((AlertEvent, HealthEvent))
    sup = Supervisor(bus)
    started: list[int] = []

    async def run() -> None:
        started.append(1)
        await asyncio.Event().wait()

    task = sup.spawn(NAME, run, subsystem="executor", backoff=FAST)
    await until(lambda: started)
    task.cancel()
    await ended_by_cancel(task, sup)
    await asyncio.sleep(0.05)                   # longer than any backoff: a restart would have happened
    assert started == [1]
    assert sup.tasks[NAME].state == "cancelled" and sup.tasks[NAME].failures == 0
    assert drain(sub) == []


async def test_a_task_swallowing_its_cancellation_is_not_restarted() -> None:
    sup = Supervisor(EventBus())
    started: list[int] = []

    async def run() -> None:
        started.append(1)
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            return                               # swallows it

    task = sup.spawn(NAME, run, subsystem="executor", restart="always", backoff=FAST)
    await until(lambda: started)
    task.cancel()
    await ended_by_cancel(task, sup)
    assert started == [1] and sup.tasks[NAME].state == "cancelled"


async def test_stop_cancels_running_and_restarting_tasks_and_waits() -> None:
    sup = Supervisor(EventBus())
    ended: list[str] = []

    async def forever() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            ended.append("forever")

    async def failing() -> None:
        raise RuntimeError("x")

    sup.spawn("a", forever, subsystem="engine")
    sup.spawn("b", failing, subsystem="feed", backoff=Backoff(first_s=30, max_s=30))
    await until(lambda: sup.tasks["b"].state == "restarting")
    assert sup.tasks["b"].next_restart_in_s == 30
    assert await sup.stop() == []
    assert ended == ["forever"]
    assert {n: s.state for n, s in sup.tasks.items()} == {"a": "cancelled", "b": "cancelled"}
    with pytest.raises(RuntimeError):
        sup.spawn("c", forever, subsystem="engine")


async def test_stop_reports_a_task_that_ignores_cancellation() -> None:
    sup = Supervisor(EventBus())
    release = asyncio.Event()

    async def stubborn() -> None:
        while not release.is_set():
            try:
                await asyncio.sleep(1)
            except asyncio.CancelledError:
                pass

    task = sup.spawn("stubborn", stubborn, subsystem="engine")
    await asyncio.sleep(0)
    assert await sup.stop(timeout_s=0.05) == ["stubborn"]
    release.set()
    task.cancel()
    await ended_by_cancel(task, sup)


async def test_normal_return_is_done_not_restarted(caplog) -> None:
    caplog.set_level(logging.INFO, logger="core.engine.supervisor")
    bus = EventBus()
    sub = bus.subscribe((AlertEvent, HealthEvent))
    sup = Supervisor(bus)
    calls: list[int] = []

    async def run() -> str:
        calls.append(1)
        return "finished"

    task = sup.spawn("once", run, subsystem="engine", backoff=FAST)
    await asyncio.wait_for(task, 2)
    await asyncio.sleep(0.05)
    assert calls == [1] and sup.tasks["once"].state == "done"
    assert not sup.healthy("once")
    assert any(r.levelno == logging.INFO and "once" in r.getMessage() and "finished" in r.getMessage()
               for r in caplog.records)
    assert drain(sub) == []


async def test_restart_always_restarts_after_a_normal_return() -> None:
    sup = Supervisor(EventBus())
    calls: list[int] = []

    async def run() -> None:
        calls.append(1)
        if len(calls) >= 3:
            await asyncio.Event().wait()

    sup.spawn("poller", run, subsystem="engine", restart="always", backoff=FAST)
    await until(lambda: len(calls) == 3)
    assert sup.tasks["poller"].restarts == 2 and sup.tasks["poller"].failures == 0
    await sup.stop()


# ---------------------------------------------------------------------------- giving up


async def test_max_restarts_gives_up_and_calls_on_give_up() -> None:
    bus = EventBus()
    sub = bus.subscribe((AlertEvent, HealthEvent))
    sup = Supervisor(bus)
    calls: list[int] = []
    gave_up: list[tuple[str, BaseException]] = []

    async def run() -> None:
        calls.append(1)
        raise ConnectionError(f"down {len(calls)}")

    async def on_give_up(name: str, exc: BaseException) -> None:
        gave_up.append((name, exc))

    task = sup.spawn(NAME, run, subsystem="executor", backoff=FAST, max_restarts=2, on_give_up=on_give_up)
    await task                                  # the supervising task ends when given up
    assert calls == [1, 1, 1]                   # first run + 2 restarts
    assert [(n, str(e)) for n, e in gave_up] == [(NAME, "down 3")]
    assert sup.failed(NAME) and not sup.healthy(NAME)
    st = sup.tasks[NAME]
    assert (st.state, st.restarts, st.failures) == ("failed-final", 2, 3)
    events = drain(sub)
    alerts = [e for e in events if isinstance(e, AlertEvent)]
    assert len(alerts) == 4 and all(a.severity == "critical" for a in alerts)
    assert "gave up" in alerts[-1].title
    last = [e for e in events if isinstance(e, HealthEvent)][-1]
    assert (last.component, last.state) == ("executor", "down") and "gave up" in last.detail
    chk = sup.check()
    assert chk.status is HealthStatus.DOWN and NAME in chk.reason
    assert sup.check("feed").status is HealthStatus.OK
    await asyncio.sleep(0.05)
    assert calls == [1, 1, 1]


async def test_restart_false_gives_up_at_the_first_failure_non_critical() -> None:
    bus = EventBus()
    sub = bus.subscribe((AlertEvent,))
    sup = Supervisor(bus)
    gave_up: list[str] = []

    async def run() -> None:
        raise KeyError("k")

    await sup.spawn("status", run, subsystem="engine", restart=False, critical=False,
                    on_give_up=lambda n, e: gave_up.append(n))
    assert gave_up == ["status"] and sup.failed("status")
    assert {a.severity for a in drain(sub)} == {"error"}
    assert sup.check().status is HealthStatus.DEGRADED   # a non-critical task given up


async def test_on_give_up_may_stop_the_supervisor() -> None:
    sup = Supervisor(EventBus())
    stopped: list[list[str]] = []

    async def forever() -> None:
        await asyncio.Event().wait()

    async def failing() -> None:
        raise RuntimeError("fatal")

    async def on_give_up(name: str, exc: BaseException) -> None:
        stopped.append(await sup.stop())

    sup.spawn("other", forever, subsystem="engine")
    await asyncio.wait_for(sup.spawn("fatal", failing, subsystem="executor", restart=False, on_give_up=on_give_up),
                           2)
    assert stopped == [[]]
    assert sup.tasks["other"].state == "cancelled" and sup.tasks["fatal"].state == "failed-final"


# ---------------------------------------------------------------------------- beats


async def test_stale_without_beats_and_fresh_with_them() -> None:
    now = [100.0]
    sup = Supervisor(EventBus(), clock=lambda: now[0])
    tick = asyncio.Event()

    async def silent() -> None:
        await asyncio.Event().wait()

    async def beating() -> None:
        while True:
            sup.beat()                          # the calling task's own beat
            await tick.wait()
            tick.clear()

    sup.spawn("silent", silent, subsystem="executor")
    sup.spawn("beating", beating, subsystem="executor")
    await asyncio.sleep(0)
    assert not sup.stale("silent", 30) and not sup.stale("beating", 30)
    now[0] += 31
    assert sup.stale("silent", 30) and sup.stale("beating", 30)
    tick.set()
    await until(lambda: not tick.is_set())
    assert not sup.stale("beating", 30) and sup.stale("silent", 30)
    assert sup.beat_age("beating") == 0 and sup.beat_age("silent") == 31
    sup.beat("silent")
    assert not sup.stale("silent", 30)
    with pytest.raises(KeyError):
        sup.beat("nope")
    with pytest.raises(KeyError):
        sup.stale("nope", 1)
    with pytest.raises(RuntimeError):
        sup.beat()                              # not inside a supervised task
    with pytest.raises(ValueError):
        sup.stale("silent", 0)
    await sup.stop()


# ---------------------------------------------------------------------------- spawn checks, status


async def test_spawn_checks_and_status_dicts() -> None:
    sup = Supervisor(EventBus())

    async def forever() -> None:
        await asyncio.Event().wait()

    sup.spawn("a", forever, subsystem="engine")
    with pytest.raises(ValueError):
        sup.spawn("a", forever, subsystem="engine")
    with pytest.raises(ValueError):
        sup.spawn("b", forever, subsystem="engine", restart="sometimes")
    with pytest.raises(ValueError):
        sup.spawn("b", forever, subsystem="engine", max_restarts=-1)
    with pytest.raises(TypeError):
        sup.spawn("b", "not callable", subsystem="engine")
    with pytest.raises(KeyError):
        sup.failed("b")
    with pytest.raises(KeyError):
        sup.healthy("b")
    [d] = sup.status()
    assert d["name"] == "a" and d["subsystem"] == "engine" and d["state"] == "running"
    assert d["restarts"] == 0 and d["last_error"] is None and d["last_failure_at"] is None
    await sup.stop()


async def test_a_hanging_async_hook_is_abandoned_after_hook_timeout_s(caplog) -> None:
    sup = Supervisor(EventBus(), hook_timeout_s=0.05)
    factory, calls = boom_twice_then_run()

    async def hangs(name: str, exc: BaseException) -> None:
        await asyncio.Event().wait()

    sup.spawn(NAME, factory, subsystem="executor", backoff=FAST, on_failure=hangs)
    await until(lambda: len(calls) == 3)
    assert sum("did not finish within 0.05s" in r.getMessage() for r in caplog.records) == 2
    await sup.stop()
