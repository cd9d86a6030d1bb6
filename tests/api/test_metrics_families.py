"""Every family an operator expects on `/metrics` (over the engine's real Unix socket, parsed with
prometheus_client's parser) after a paper replay of real BTC candles, with forced errors: exchange
errors raised through the live gateway's one call path, an unprotected window, a running job, an
alert, a live candle's latency, the kill switch. And the optional TCP listener on 127.0.0.1."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from types import SimpleNamespace

import aiohttp
import ccxt
import pytest
from prometheus_client.parser import text_string_to_metric_families

from core.api.client import EngineClient
from core.api.metrics_tcp import MetricsTcpServer
from core.config import load_config
from core.config.health import HealthConfig, MetricsConfig
from core.data.feed import ClosedCandle
from core.engine.api import EngineAPI
from core.executor.grid_executor import UNPROTECTED
from core.health.breaker import CircuitBreaker
from core.jobs.model import JobEvent
from core.model.errors import GatewayUnavailable
from core.paths import DEFAULT_CONFIG_DIR
from core.venues.bitget.gateway import CcxtGateway
from core.venues.exchange_errors import EXCHANGE_ERRORS, KINDS, error_kind
from tests.api.conftest import Run, eventually

SYM, STRAT = "BTC/USDT", "envelope_dca"

#: name -> type of every family the metrics must hold (counters by their family name, no _total).
EXPECTED = {
    "radar_up": "gauge", "radar_engine_info": "gauge", "radar_candles": "counter",
    "radar_equity_usdt": "gauge", "radar_day_pnl_usdt": "gauge",
    "radar_kill_switch_active": "gauge", "radar_kill_switch_symbols": "gauge",
    "radar_kill_switch_symbol_active": "gauge",
    "radar_open_positions": "gauge", "radar_position_qty": "gauge", "radar_unrealized_pnl_usdt": "gauge",
    "radar_position_notional_usdt": "gauge", "radar_resting_orders": "gauge",
    "radar_runner_halted": "gauge", "radar_runner_paused": "gauge", "radar_runner_state": "gauge",
    "radar_unprotected_seconds": "gauge", "radar_unprotected_longest_seconds": "gauge",
    "radar_unprotected_duration_seconds": "counter", "radar_unprotected_windows": "counter",
    "radar_loop_lag_seconds": "gauge", "radar_exchange_errors": "counter",
    "radar_alerts": "gauge", "radar_jobs": "gauge", "radar_job_workers_alive": "gauge",
    "radar_job_progress_ratio": "gauge", "radar_jobs_finished": "counter",
    "radar_health_status": "gauge", "radar_feed_last_candle_age_seconds": "gauge",
    "radar_feed_candle_latency_seconds": "gauge", "radar_feed_candles": "counter",
    "radar_trade_log_lines": "counter", "radar_trade_log_errors": "counter",
    "radar_trade_log_dropped_events": "counter",
    "radar_api_event_clients": "gauge", "radar_api_slow_clients_dropped": "counter", "radar_api_commands": "counter",
}


def parse(text: str) -> tuple[dict, dict]:
    """({family name: type}, {sample name: {frozenset(labels): value}})."""
    types: dict = {}
    samples: dict = {}
    for fam in text_string_to_metric_families(text):
        types[fam.name] = fam.type
        for s in fam.samples:
            samples.setdefault(s.name, {})[frozenset(s.labels.items())] = s.value
    return types, samples


def one(samples: dict, name: str, **labels: str) -> float:
    return samples[name][frozenset(labels.items())]


def _gateway(breaker: CircuitBreaker | None = None) -> CcxtGateway:
    cfg = next(iter(load_config(DEFAULT_CONFIG_DIR).exchanges.values()))          # the packaged bitget account
    return CcxtGateway(cfg, "BTC/USDT:USDT", SimpleNamespace(options={}), breaker=breaker)


async def _force_exchange_errors() -> None:
    """Errors raised by 'exchange calls' through CcxtGateway._call, the path of every live call."""
    gw = _gateway()
    for exc in (ccxt.RateLimitExceeded("429"), ccxt.DDoSProtection("slow down"), ccxt.RequestTimeout("t/o"),
                ccxt.InsufficientFunds("no margin"), ccxt.InvalidOrder("bad px"), ccxt.ExchangeError("40001"),
                ValueError("not ccxt")):
        async def call(e=exc):
            raise e
        with pytest.raises(type(exc)):
            await gw._call(call)
    ok = await gw._call(lambda: asyncio.sleep(0, result="fine"))
    assert ok == "fine"
    breaker = CircuitBreaker("t", failure_threshold=1, cooldown_s=60.0)
    gw = _gateway(breaker)

    async def timeout():
        raise ccxt.NetworkError("reset")
    with pytest.raises(ccxt.NetworkError):
        await gw._call(timeout)                            # through the breaker: counted, opens it
    with pytest.raises(GatewayUnavailable):
        await gw._call(timeout)                            # refused by the open breaker: not counted


def test_error_kinds_follow_the_ccxt_classes() -> None:
    assert [error_kind(e) for e in (ccxt.RateLimitExceeded(), ccxt.DDoSProtection(), ccxt.RequestTimeout(),
                                    ccxt.ExchangeNotAvailable(), ccxt.InvalidOrder(), ccxt.OrderNotFound(),
                                    ccxt.InsufficientFunds(), ccxt.AuthenticationError(), OSError())] == [
        "RateLimitExceeded", "RateLimitExceeded", "NetworkError", "NetworkError", "InvalidOrder", "InvalidOrder",
        "InsufficientFunds", "ExchangeError", "other"]


async def test_every_family_after_a_paper_replay_with_forced_errors(tmp_path: Path, open_position_candles) -> None:
    EXCHANGE_ERRORS.reset()
    async with Run(tmp_path / "radar.db", open_position_candles, trade_log=tmp_path / "logs" / "trades.jsonl") as run:
        await eventually(lambda: run.services.lag.stats().samples >= 3, 10, "loop-lag samples")
        await eventually(lambda: run.services.trade_log.lines > 0, 10, "the trade log to catch up")
        await _force_exchange_errors()
        r = run.engine.runners[0]
        ex = r.executor
        ex.halted = UNPROTECTED                           # a position without a stop at the venue
        await asyncio.sleep(0.15)
        await run.services.alerts.raise_alert("test:metrics", "error", "test", "an alert to count")
        run.services.jobs._dispatch(JobEvent(7, "optimize", "running", 40.0, "window", 2, 5))
        run.services.jobs._dispatch(JobEvent(6, "optimize", "done", 100.0, "done"))
        tf_ms = 3_600_000
        closed_at = int(time.time() * 1000) - 1500        # a live candle that closed 1.5 s ago
        run.services.feeds.on_event(ClosedCandle(SYM, "1h", closed_at - tf_ms, 1.0, 1.0, 1.0, 1.0, 1.0, "live"))
        async with EngineClient(run.socket, readonly=True) as c:
            types, s = parse(await c.metrics())
        snap = EngineAPI(run.engine).snapshot()
        pos = r.position()

        missing = {n: t for n, t in EXPECTED.items() if types.get(n) != t}
        assert not missing, f"families missing or of another type: {missing}"
        assert one(s, "radar_up") == 1 and one(s, "radar_candles_total") == run.n_candles
        assert abs(one(s, "radar_equity_usdt") - snap["equity"]) < 1e-6
        assert abs(one(s, "radar_day_pnl_usdt") - snap["day_pnl"]) < 1e-6
        assert one(s, "radar_open_positions") == 1 and pos["qty"] > 0
        assert abs(one(s, "radar_position_notional_usdt", symbol=SYM) - pos["qty"] * r.last_close) < 1e-6
        entries = sum(1 for o in ex.orders.values() if o[0] == "entry")
        assert one(s, "radar_resting_orders", symbol=SYM, purpose="entry") == entries >= 1
        assert one(s, "radar_resting_orders", symbol=SYM, purpose="stop") == 1        # the position's stop
        assert one(s, "radar_resting_orders", symbol=SYM, purpose="take_profit") == 1  # rested by the sim venue
        # the unprotected window, current
        assert 0.15 <= one(s, "radar_unprotected_seconds", strategy=STRAT, symbol=SYM) < 30
        assert one(s, "radar_unprotected_windows_total", strategy=STRAT, symbol=SYM) == 1
        assert one(s, "radar_runner_halted", strategy=STRAT, symbol=SYM) == 1
        assert one(s, "radar_runner_state", strategy=STRAT, symbol=SYM, state="halted") == 1
        assert one(s, "radar_runner_state", strategy=STRAT, symbol=SYM, state="ready") == 0
        assert one(s, "radar_runner_paused", strategy=STRAT, symbol=SYM) == 0
        # loop lag: p50 <= p99 <= max
        lag = {dict(k)["quantile"]: v for k, v in s["radar_loop_lag_seconds"].items()}
        assert set(lag) == {"0.5", "0.99", "1"} and 0 <= lag["0.5"] <= lag["0.99"] <= lag["1"] < 5
        # exchange errors by kind (the refusal of the open breaker is not an exchange error)
        errs = {dict(k)["kind"]: v for k, v in s["radar_exchange_errors_total"].items()
                if dict(k)["venue"] == "bitget"}
        assert errs == {"RateLimitExceeded": 2, "NetworkError": 2, "InvalidOrder": 1, "InsufficientFunds": 1,
                        "ExchangeError": 1, "other": 1}
        assert set(errs) == set(KINDS)
        # alerts, jobs, feeds, health, trade log
        assert one(s, "radar_alerts", severity="error", state="active") >= 1
        assert one(s, "radar_job_progress_ratio", job_id="7", kind="optimize") == pytest.approx(0.4)
        assert one(s, "radar_jobs_finished_total", state="done") == 1
        assert one(s, "radar_jobs_finished_total", state="failed") == 0
        assert one(s, "radar_jobs", state="queued") == 0
        assert 0 <= one(s, "radar_feed_last_candle_age_seconds", symbol=SYM) < 60
        assert one(s, "radar_feed_candles_total", symbol=SYM) == run.n_candles + 1
        assert 1.4 <= one(s, "radar_feed_candle_latency_seconds", symbol=SYM) < 30
        assert one(s, "radar_health_status", subsystem="database") == 0
        assert one(s, "radar_trade_log_lines_total") == run.services.trade_log.lines > 0
        assert one(s, "radar_trade_log_errors_total") == 0

        # the window ends: longest and total keep it, the current is 0
        ex.halted = None
        async with EngineClient(run.socket, source="cli") as c:
            await c.pause(SYM, reason="metrics test")
            await c.kill(reason="metrics test")
            _, s = parse(await c.metrics())
        assert one(s, "radar_unprotected_seconds", strategy=STRAT, symbol=SYM) == 0
        longest = one(s, "radar_unprotected_longest_seconds", strategy=STRAT, symbol=SYM)
        assert 0.15 <= longest == one(s, "radar_unprotected_duration_seconds_total", strategy=STRAT, symbol=SYM)
        assert one(s, "radar_runner_state", strategy=STRAT, symbol=SYM, state="paused") == 1
        assert one(s, "radar_runner_state", strategy=STRAT, symbol=SYM, state="halted") == 0
        assert one(s, "radar_runner_paused", strategy=STRAT, symbol=SYM) == 1
        assert one(s, "radar_resting_orders", symbol=SYM, purpose="entry") == 0     # cancelled by the pause
        assert one(s, "radar_kill_switch_active") == 1
        assert one(s, "radar_api_commands_total", command="kill", outcome="ok") == 1
    EXCHANGE_ERRORS.reset()


async def test_a_replayed_candle_has_no_feed_latency(run: Run) -> None:
    async with EngineClient(run.socket, readonly=True) as c:
        _, s = parse(await c.metrics())
    assert one(s, "radar_feed_candles_total", symbol=SYM) == run.n_candles
    assert "radar_feed_candle_latency_seconds" not in s          # a replay's candles closed long ago by design
    assert "radar_trade_log_lines_total" not in s                  # no trade log asked for in this run


async def test_metrics_on_tcp_loopback_when_configured(tmp_path: Path, open_position_candles) -> None:
    run = Run(tmp_path / "radar.db", open_position_candles)
    run.engine.health = HealthConfig(metrics=MetricsConfig(tcp_port=0))      # 0: any free port
    async with run:
        tcp = run.services.metrics_tcp
        assert tcp is not None and (tcp.address, tcp.host) == ("127.0.0.1", "127.0.0.1") and tcp.port > 0
        async with aiohttp.ClientSession() as http:
            async with http.get(tcp.url) as resp:
                assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
                types, s = parse(await resp.text())
            for path in ("/v1/snapshot", "/v1/metrics", "/v1/commands/kill"):   # nothing but /metrics on TCP
                async with http.get(f"http://127.0.0.1:{tcp.port}{path}") as resp:
                    assert resp.status == 404
            async with http.post(tcp.url) as resp:
                assert resp.status == 405
        async with EngineClient(run.socket, readonly=True) as c:
            socket_types, _ = parse(await c.metrics())
        assert types == socket_types and one(s, "radar_candles_total") == run.n_candles
        port = tcp.port
    with pytest.raises(OSError):                      # closed with the run's services
        await asyncio.open_connection("127.0.0.1", port)


async def test_tcp_is_off_by_default_and_never_binds_a_public_address(run: Run) -> None:
    assert run.services.metrics_tcp is None
    assert HealthConfig().metrics.tcp_port is None
    for host in ("0.0.0.0", "192.168.1.10", "::", "localhost", "example.org"):
        with pytest.raises(ValueError, match="loopback"):
            MetricsTcpServer(run.services.api.registry, host, 0)
    six = await MetricsTcpServer(run.services.api.registry, "::1", 0).start()
    try:
        async with aiohttp.ClientSession() as http, http.get(six.url) as resp:
            assert resp.status == 200 and "radar_up 1.0" in await resp.text()
    finally:
        await six.stop()
