"""EngineAPI: what the console, Telegram and scripts may ask of and tell a running Engine.

Queries are synchronous and cheap (in-memory state); commands are coroutines (a live
gateway will await exchange calls) and are persisted before they return.

    api = EngineAPI(engine)
    api.snapshot()            # mode, equity, day P&L, kill switch, per symbol: price, position, grid
    api.positions()
    api.grid_state("BTC/USDT")
    await api.kill("telegram:alice", flatten=False)
    await api.resume("console")
    await api.flatten("cli:alice", symbol="BTC/USDT")     # one symbol, or every position
    await api.cancel_entries("console")
    await api.pause("cli:alice", "BTC/USDT")              # one runner: no new entries, stops kept
    await api.resume_runner("cli:alice", "BTC/USDT")
    await api.apply_params("cli:alice", "BTC/USDT", {"ma_period": 10})   # now if flat, else pending
    await api.job_submit("cli:alice", "optimize", params) / await api.job_cancel("cli:alice", 3)
    api.balance(); await api.daily_pnl(7)
    await api.performance(window_days=30)                 # curves, monthly, rolling Sharpe, cycle stats
    await api.risk()                                      # VaR/CVaR, worst case, scenarios, group exposure
    async for ev in api.events(): ...

Runner commands take `symbol` and, when several strategies run on it, `strategy` (`runner`).

With the run's services (`EngineAPI(engine, alerts=..., jobs=..., watchdog=..., lag=...)`, as
the API server builds it) it also answers `alerts()`, `jobs()`, `health()` and acknowledges or
snoozes alerts. Money is USDT, times ms UTC. `core.api` serves this facade over a Unix socket.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any, Iterable

from core.engine.engine import Engine, maybe_await
from core.errors import UsageError
from core.events.bus import KillSwitchEvent, Subscription

log = logging.getLogger(__name__)


class EngineAPI:
    """Facade over one Engine (see the module docstring)."""

    def __init__(self, engine: Engine, *, alerts: Any = None, jobs: Any = None, watchdog: Any = None,
                 lag: Any = None, config_dir: Any = None) -> None:
        self.engine = engine
        self.config_dir = config_dir  # the run's config folder (strategies.yaml etc.), or None: the default
        self.alerts = alerts          # core.alerts.engine.AlertEngine, or None
        self.jobs = jobs              # core.jobs.manager.JobManager, or None
        self.watchdog = watchdog      # core.health.watchdog.Watchdog, or None
        self.lag = lag                # core.health.loop_lag.LoopLagSampler, or None

    # ---------------------------------------------------------------- queries
    def snapshot(self) -> dict:
        """{mode, equity, day_pnl, kill_switch{...}, candles, candles_per_s, symbols: {symbol:
        [{strategy, timeframe, last_price, last_ts, state, position{...}, grid{...}, params{...},
        pending_params{...} | None, paused {by, reason, since_ms} | None}]}, allocation, finished, error}
        (equity and day P&L in USDT, last_ts and since_ms ms UTC; state: see `runner_state`;
        params: what the runner trades with; pending_params: full params applied at its next
        flat moment; allocation: the capital-allocation policy's state, `core.risk.allocation_runtime.
        Allocator.snapshot` — policy, pool USDT, weights, halts — or None without an allocator; its
        unallocated pool counts in equity)."""
        eng = self.engine
        symbols: dict[str, list] = {}
        equity = day_pnl = 0.0
        for r in eng.runners:
            equity += r.equity_last
            if r.day_start_equity is not None:
                day_pnl += r.equity_last - r.day_start_equity
            pending = getattr(r, "pending_params", None)
            symbols.setdefault(r.symbol, []).append({
                "strategy": r.name, "timeframe": r.timeframe, "last_price": r.last_close,
                "last_ts": r.cursor, "state": runner_state(r), "position": r.position(),
                "grid": r.grid_state(), "params": dict(getattr(r.strategy, "params", {}) or {}),
                "pending_params": dict(pending) if pending is not None else None,
                "paused": dict(r.pause_info) if getattr(r, "pause_info", None) else None})
        ks = eng.kill_switch.as_dict() if eng.kill_switch else {"active": False}
        error = getattr(eng, "error", None)
        allocator = getattr(eng, "allocator", None)
        allocation = allocator.snapshot() if allocator is not None else None
        if allocation is not None:
            equity += float(allocation.get("pool") or 0.0)    # the shared account's unallocated cash
        return {"mode": eng.mode, "equity": equity, "day_pnl": day_pnl, "kill_switch": ks, "allocation": allocation,
                "candles": eng.stats.candles, "candles_per_s": eng.stats.rate(), "symbols": symbols,
                "finished": bool(getattr(eng, "finished", False)),
                "error": (f"{type(error).__name__}: {error}" if str(error) else type(error).__name__) if error else ""}

    def positions(self) -> list[dict]:
        """Open positions (qty > 0) of every runner."""
        return [p for p in (r.position() for r in self.engine.runners) if p["qty"]]

    def symbols(self) -> list[str]:
        """The symbols the runners trade, sorted."""
        return sorted({r.symbol for r in self.engine.runners})

    def grid_state(self, symbol: str, strategy: str | None = None, detail: bool = False) -> dict:
        """The grid of `symbol` (and `strategy` when several run on it); with `detail` also the
        open cycle's fills, the last cycles, leverage, per-level notional and the chart series
        (`core.engine.grid_detail`).

        Raises:
            UsageError: no runner trades it.
        """
        for r in self.engine.runners:
            if r.symbol == symbol and (strategy is None or r.name == strategy):
                gs = r.grid_state()
                if detail:
                    from core.engine.grid_detail import grid_detail

                    gs.update(grid_detail(r, gs.get("levels_filled") or 0))
                return gs
        raise UsageError(f"no strategy runs on {symbol!r}; running: "
                         f"{', '.join(sorted({r.symbol for r in self.engine.runners})) or 'none'}")

    # ---------------------------------------------------------------- commands
    async def kill(self, actor: str, flatten: bool = False, reason: str = "command") -> dict:
        """Trip the kill switch (persisted first): cancel pending entries, keep the stops, block
        new entries until `resume`; with `flatten`, close every position at market."""
        eng = self.engine
        if eng.kill_switch is None:
            raise UsageError("the engine is not started")
        eng.kill_switch.trip(actor, flatten, reason)
        cancelled = flattened = 0
        for r in eng.runners:
            cancelled += await maybe_await(r.cancel_entries())
            if flatten and r.position()["qty"]:
                await maybe_await(r.flatten("kill"))
                flattened += 1
        eng.bus.publish(KillSwitchEvent(True, flatten, actor, reason))
        return {"active": True, "cancelled_entries": cancelled, "flattened": flattened}

    async def resume(self, actor: str, reason: str = "resume") -> dict:
        """Clear the kill switch (persisted); entries are placed again from the next candle."""
        eng = self.engine
        if eng.kill_switch is None:
            raise UsageError("the engine is not started")
        eng.kill_switch.clear(actor, reason)
        eng.bus.publish(KillSwitchEvent(False, False, actor, reason))
        return {"active": False}

    def events(self, kinds: Iterable[type] | None = None, maxsize: int | None = None) -> Subscription:
        """A bounded subscription to the engine's event bus (see `core.events.bus`)."""
        return self.engine.bus.subscribe(kinds, maxsize)

    # ---------------------------------------------------------------- services (alerts, jobs, health)
    def alerts_list(self, state: str | None = None, severity: str | None = None) -> list[dict]:
        """Alerts in display order (`AlertEngine.list`; default: every unresolved one) as dicts
        (`Alert.to_dict`, times ms UTC).

        Raises:
            UsageError: no alert engine in this run. AlertInputError: unknown state or severity.
        """
        if self.alerts is None:
            raise UsageError("no alert engine in this run")
        return [a.to_dict() for a in self.alerts.list(state=state, severity=severity)]

    async def jobs_list(self, limit: int = 50) -> list[dict]:
        """The newest research jobs first (`JobRecord` fields; progress 0-100, times ms UTC),
        read from the database in a thread.

        Raises:
            UsageError: no job manager in this run.
        """
        if self.jobs is None:
            raise UsageError("no job manager in this run")
        from dataclasses import asdict

        rows = await asyncio.to_thread(self.jobs.jobs, limit)
        return [asdict(j) for j in rows]

    async def job_results(self, job_id: int) -> list[dict]:
        """The stored optimisation results of job `job_id`: [{"result": OptimizeResult JSON,
        "combos": [per-combination rows]}], read from the database in a thread.

        Raises:
            UsageError: no job manager in this run, or no such job.
        """
        if self.jobs is None:
            raise UsageError("no job manager in this run")
        return await asyncio.to_thread(read_job_results, self.jobs, int(job_id))

    def health(self) -> dict:
        """{overall: ok | degraded | down | unknown, subsystems: [SubsystemHealth.to_dict()],
        loop_lag: {samples, p50_s, p99_s, max_s, window_s} or None}."""
        subs = [] if self.watchdog is None else [h.to_dict() for h in self.watchdog.snapshot().values()]
        overall = "unknown" if self.watchdog is None else self.watchdog.overall().value
        lag = None
        if self.lag is not None:
            from dataclasses import asdict

            lag = asdict(self.lag.stats())
        return {"overall": overall, "subsystems": subs, "loop_lag": lag}

    # ---------------------------------------------------------------- more commands
    def _require_running(self) -> None:
        if self.engine.kill_switch is None or self.engine.store is None:
            raise UsageError("the engine is not running (not started yet, or stopped)")

    def _runners_of(self, symbol: str | None) -> list:
        if symbol is None:
            return list(self.engine.runners)
        runners = [r for r in self.engine.runners if r.symbol == symbol]
        if not runners:
            raise UsageError(f"no strategy runs on {symbol!r}; running: {', '.join(self.symbols()) or 'none'}")
        return runners

    def runner(self, symbol: str, strategy: str | None = None) -> Any:
        """The one runner trading `symbol` (of `strategy` when given).

        Raises:
            UsageError: no runner trades `symbol`, `strategy` does not run on it, or several
                strategies run on it and `strategy` is not given.
        """
        on = self._runners_of(symbol)
        if strategy is not None:
            on_strategy = [r for r in on if r.name == strategy]
            if not on_strategy:
                raise UsageError(f"{strategy!r} does not run on {symbol}; strategies on it: "
                                 f"{', '.join(sorted({r.name for r in on}))}")
            on = on_strategy
        if len(on) > 1:
            raise UsageError(f"several runners trade {symbol} ({', '.join(f'{r.name} {r.timeframe}' for r in on)}): "
                             "give strategy")
        return on[0]

    async def flatten(self, actor: str, symbol: str | None = None, strategy: str | None = None) -> dict:
        """Force-exit: cancel the resting entries and close at market the position of `symbol`
        (None: every symbol; with `strategy`: only that runner of `symbol`), recorded like any exit
        with reason "forceexit" (the simulated venue fills at the last close). The kill switch is
        not touched: entries are placed again from the next candle unless it is active or the
        runner is paused. Returns {flattened: positions closed, cancelled_entries: n, symbols: [the
        symbols concerned]}.

        Raises:
            UsageError: no runner trades `symbol` (or `strategy` does not run on it), or the
                engine is not running.
        """
        self._require_running()
        if strategy is not None:
            if symbol is None:
                raise UsageError("flatten: strategy needs a symbol")
            runners = [self.runner(symbol, strategy)]
        else:
            runners = self._runners_of(symbol)
        log.warning("force-exit %s%s by %s", symbol or "every position", f" ({strategy})" if strategy else "", actor)
        flattened = cancelled = 0
        for r in runners:
            if r.position()["qty"]:
                before = _entry_orders(r)
                await maybe_await(r.flatten("forceexit"))
                cancelled += max(0, before - _entry_orders(r))
                flattened += 1
        return {"flattened": flattened, "cancelled_entries": cancelled, "symbols": sorted({r.symbol for r in runners})}

    async def pause(self, actor: str, symbol: str, strategy: str | None = None, reason: str = "") -> dict:
        """Pause one runner (`core.engine.runner_base.RunnerBase.pause`): persisted, then no new
        entry, resting entries cancelled; an open position keeps its stop and take-profit and is
        managed as usual. Returns {symbol, strategy, timeframe, paused: True, cancelled_entries}.

        Raises:
            UsageError: no such runner (see `runner`), paused already, or the engine is not running.
        """
        self._require_running()
        r = self.runner(symbol, strategy)
        n = await r.pause(actor, reason)
        return {"symbol": r.symbol, "strategy": r.name, "timeframe": r.timeframe, "paused": True,
                "cancelled_entries": n}

    async def resume_runner(self, actor: str, symbol: str, strategy: str | None = None, reason: str = "") -> dict:
        """Lift an operator's pause of one runner (persisted): entries from the next candle. The
        kill switch is separate (`resume`). Returns {symbol, strategy, timeframe, paused: False}.

        Raises:
            UsageError: no such runner, not paused, or the engine is not running.
        """
        self._require_running()
        r = self.runner(symbol, strategy)
        await r.unpause(actor, reason)
        return {"symbol": r.symbol, "strategy": r.name, "timeframe": r.timeframe, "paused": False}

    def check_params(self, r: Any, params: dict) -> dict:
        """The full params runner `r` would trade with `params` ({name: value}) merged over the
        ones it trades now, validated as strategies.yaml is (`core.strategies.params` models,
        strict, the same messages as `radar config check`) and as the strategy builds them.

        Raises:
            UsageError: not a grid runner (its params change only at a start), an empty mapping,
                an unknown name, or a bad value (one line naming it).
        """
        from pydantic import ValidationError

        from core.config.translate import describe
        from core.strategies import registry
        from core.strategies.base import GridStrategy
        from core.strategies.params import STRATEGY_PARAMS

        name = r.name
        if not isinstance(r.strategy, GridStrategy):
            raise UsageError(f"{name} on {r.symbol} is a single-position strategy: its params change only at a "
                             "start (strategies.yaml); runtime parameters are for grid strategies")
        if not params:
            raise UsageError("give at least one parameter, e.g. ma_period=10")
        model = STRATEGY_PARAMS[name]
        unknown = sorted(set(params) - set(model.model_fields))
        if unknown:
            raise UsageError(f"unknown parameter(s) {', '.join(map(repr, unknown))} for {name}; "
                             f"expected: {', '.join(model.model_fields)}")
        merged = {**dict(r.strategy.params), **params}
        try:
            model.model_validate(merged, strict=True)
        except ValidationError as err:
            errors = err.errors(include_url=False)
            loc, message = describe(errors[0], model)
            where = ".".join(str(x) for x in loc) or ", ".join(sorted(params))
            raise UsageError(f"{name} {where}: {message}") from None
        try:
            return dict(registry.create(name, merged).params)
        except Exception as exc:            # ParamError: the strategy's own rules
            raise UsageError(f"{name}: {exc}") from None

    async def apply_params(self, actor: str, symbol: str, params: dict, strategy: str | None = None) -> dict:
        """Apply `params` ({name: value}, merged over the runner's current params; earlier pending
        params are replaced) to one grid runner: at once when it is flat (resting orders
        cancelled, the grid rebuilt with them), else at its next flat moment (stored, survives a
        restart). Returns {symbol, strategy, timeframe, state: "applied" | "pending" | "unchanged",
        params (traded now), pending_params (or None)}.

        Raises:
            UsageError: no such runner, bad params (`check_params`), or the engine is not running.
        """
        self._require_running()
        r = self.runner(symbol, strategy)
        full = self.check_params(r, params)
        state = await r.apply_params(full, actor)
        return {"symbol": r.symbol, "strategy": r.name, "timeframe": r.timeframe, "state": state,
                "params": dict(r.strategy.params),
                "pending_params": None if r.pending_params is None else dict(r.pending_params)}

    # ---------------------------------------------------------------- jobs
    def check_job(self, kind: str, params: dict) -> dict:
        """The params of a research job as the console's job form builds them
        (`core.jobs.optimize_job.optimize_params`: strategy, timeframe, series [{symbol, market,
        file}], start_ms/end_ms (ms UTC), is_days, oos_days, step_days, max_points, seed, n_boot,
        config_dir), checked in full.

        Raises:
            UsageError: no job manager in this run, a kind other than "optimize" (or "campaign":
                `core.jobs.campaign_job.check_campaign_params`), an unknown or
                missing argument, a strategy the walk-forward does not support, a bad timeframe,
                a missing data file or config folder, or a value `optimize_params` refuses.
        """
        import inspect

        from core.config import load_config, param_grid
        from core.data.timeframes import timeframe_ms
        from core.errors import RadarError
        from core.jobs.optimize_job import KIND, optimize_params
        from core.optimize.walk_forward import STRATEGIES
        from core.paths import DEFAULT_CONFIG_DIR

        if self.jobs is None:
            raise UsageError("no job manager in this run")
        if kind == "campaign":                  # strategies × symbols × timeframes (core.jobs.campaign_job)
            from core.jobs.campaign_job import check_campaign_params

            return check_campaign_params(params)
        if kind != KIND:
            raise UsageError(f"job kind {kind!r}: only {KIND!r} jobs and 'campaign' jobs can be submitted")
        sig = inspect.signature(optimize_params)
        known = list(sig.parameters)
        unknown = sorted(set(params) - set(known))
        if unknown:
            raise UsageError(f"unknown job argument(s) {', '.join(map(repr, unknown))}; expected: {', '.join(known)}")
        missing = [k for k in ("strategy", "timeframe", "series") if params.get(k) is None]
        if missing:
            raise UsageError(f"missing job argument(s): {', '.join(missing)}")
        strategy, timeframe, series = params["strategy"], params["timeframe"], params["series"]
        if strategy not in STRATEGIES:
            raise UsageError(f"strategy {strategy!r}: the walk-forward supports {', '.join(STRATEGIES)}")
        if not isinstance(timeframe, str):
            raise UsageError(f"timeframe must be a string such as 1h, got {timeframe!r}")
        try:
            timeframe_ms(timeframe)
        except RadarError as exc:
            raise UsageError(str(exc)) from None
        if not isinstance(series, list) or not all(isinstance(x, dict) for x in series):
            raise UsageError("series must be a list of {symbol, market, file} objects")
        for x in series:
            extra = sorted(set(x) - {"symbol", "market", "file"})
            if extra:
                raise UsageError(f"series: unknown key(s) {', '.join(map(repr, extra))}; expected symbol, market, file")
            f = x.get("file")
            if f is not None and not (isinstance(f, str) and Path(f).is_file()):
                raise UsageError(f"series {x.get('symbol')}: data file {f!r} does not exist")
        config_dir = params.get("config_dir") or str(DEFAULT_CONFIG_DIR)
        if not isinstance(config_dir, str) or not Path(config_dir).is_dir():
            raise UsageError(f"config_dir {config_dir!r} is not a folder")
        rest = {k: v for k, v in params.items() if k not in ("strategy", "timeframe", "series", "config_dir")}
        for k in ("start_ms", "end_ms"):
            v = rest.get(k)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int)):
                raise UsageError(f"{k} must be a whole number of ms UTC or null, got {v!r}")
        try:
            checked = optimize_params(strategy, timeframe, series, config_dir=config_dir, **rest)
            param_grid(load_config(config_dir), strategy)
        except TypeError as exc:
            raise UsageError(f"bad job arguments: {exc}") from None
        except RadarError as exc:
            raise UsageError(str(exc)) from None
        return checked

    def check_job_id(self, job_id: int) -> Any:
        """The JobRecord of `job_id` if it can be cancelled, else raises.

        Raises:
            UsageError: no job manager in this run. LookupError: no such job. ValueError: it
                has finished already (its state in the message).
        """
        from core.jobs.model import TERMINAL

        if self.jobs is None:
            raise UsageError("no job manager in this run")
        rec = self.jobs.get(int(job_id))
        if rec is None:
            raise LookupError(f"no job with id {job_id}")
        if rec.state in TERMINAL:
            raise ValueError(f"job {job_id} has finished already ({rec.state})")
        return rec

    async def job_submit(self, actor: str, kind: str, params: dict) -> dict:
        """Queue a research job (`check_job`): {id, kind, state: "queued", params (as stored)}.

        Raises:
            UsageError: see `check_job`. JobQueueFull: the queue is full.
        """
        checked = self.check_job(kind, params)
        job_id = self.jobs.submit(kind, checked)
        log.warning("job %d (%s) submitted by %s", job_id, kind, actor)
        return {"id": job_id, "kind": kind, "state": "queued", "params": checked}

    async def job_cancel(self, actor: str, job_id: int) -> dict:
        """Cancel a queued job now, or ask a running one to stop at its next check (the optimize
        job: between windows, keeping the completed windows as a partial result). Returns {id,
        state: "cancelled" (was queued) | "cancelling" (was running)}.

        Raises:
            UsageError / LookupError / ValueError: see `check_job_id`; ValueError also when it
                ended meanwhile.
        """
        rec = self.check_job_id(job_id)
        if not self.jobs.cancel(int(job_id)):
            raise ValueError(f"job {job_id} has finished already")
        log.warning("job %d cancelled by %s (was %s)", job_id, actor, rec.state)
        return {"id": int(job_id), "state": "cancelled" if rec.state == "queued" else "cancelling"}

    # ---------------------------------------------------------------- money
    def balance(self) -> dict:
        """{"runners": [{strategy, symbol, timeframe, equity, cash, unrealized, day_pnl}], "total":
        {equity, cash, unrealized, day_pnl}}: USDT. equity = cash + unrealised P&L at the last
        close; day_pnl = equity now less the equity at the first candle of the UTC day."""
        rows = []
        for r in self.engine.runners:
            eq = float(r.equity_last)
            cash = float(r.book.cash)
            day = eq - r.day_start_equity if r.day_start_equity is not None else 0.0
            rows.append({"strategy": r.name, "symbol": r.symbol, "timeframe": r.timeframe, "equity": eq,
                         "cash": cash, "unrealized": eq - cash, "day_pnl": day})
        total = {k: sum(x[k] for x in rows) for k in ("equity", "cash", "unrealized", "day_pnl")}
        return {"runners": rows, "total": total}

    async def daily_pnl(self, days: int = 7) -> dict:
        """P&L per UTC day (USDT) over the last `days` days of engine time (ending with the day of
        the newest equity point; a replay's days are its candles' days), read from the equity
        points the runners record at every candle close (trading_equity), in a thread: a day's
        P&L is its last equity less the last equity before it (a runner's first point, its
        starting cash, before its first day). Returns {"days": [{"day": "YYYY-MM-DD", "day_ms"
        (ms UTC), "pnl", "equity" (at the day's last point), "runners": {"strategy symbol
        timeframe": pnl}}], oldest first, "total": the sum}.

        Raises:
            UsageError: days outside 1 .. 366, or the engine is not running.
        """
        if not 1 <= int(days) <= 366:
            raise UsageError(f"days must be 1 .. 366, got {days}")
        self._require_running()
        ids = [(r.runner_id, f"{r.name} {r.symbol} {r.timeframe}") for r in self.engine.runners]
        return await asyncio.to_thread(_daily_pnl, self.engine.db_path, ids, int(days))

    async def performance(self, window_days: int = 30, max_points: int = 2000) -> dict:
        """The book's performance (`core.performance.summary.performance`): equity and drawdown
        curves (thinned to `max_points`), monthly returns, rolling Sharpe over `window_days`,
        cycle statistics per asset, win/loss; from the equity points (trading_equity) and cycles
        (trading_cycles) every runner records, read in a thread. Money USDT, times ms UTC.

        Raises:
            UsageError: window_days < 2, max_points < 3, no runner, or no equity recorded yet.
        """
        if int(window_days) < 2 or int(max_points) < 3:
            raise UsageError(f"performance: window_days must be >= 2 and max_points >= 3, "
                             f"got {window_days} and {max_points}")
        rows = [{"id": r.runner_id, "strategy": r.name, "symbol": r.symbol, "timeframe": r.timeframe}
                for r in self.engine.runners]
        if not rows:
            raise UsageError("performance: no runner in this engine")
        return await asyncio.to_thread(_performance, self.engine.db_path, rows, f"{self.engine.mode} book",
                                       int(window_days), int(max_points))

    async def risk(self) -> dict:
        """The risk of the book (`core.risk.report.risk_report`): VaR/CVaR at 95 % and 99 %
        (historical and Monte Carlo), the worst case per runner and in total, the stress scenarios
        of scenarios.yaml and the exposure per correlation group; the book read in memory, the
        rest computed in a thread (`core.risk.live.engine_risk`). Money USDT, times ms UTC.

        Raises:
            UsageError: the engine is not running or has no runner. ConfigError: a bad config.
        """
        from core.risk.live import engine_risk, load_risk_config

        cfg = getattr(self, "_risk_cfg", None)
        if cfg is None:
            cfg = self._risk_cfg = await asyncio.to_thread(load_risk_config, self.config_dir)
        return await engine_risk(self.engine, cfg)

    async def cancel_entries(self, actor: str, symbol: str | None = None) -> dict:
        """Cancel the resting entry orders of `symbol` (None: every symbol); stops and take-profits
        stay, and entries are placed again from the next candle unless the kill switch is active.
        Returns {cancelled_entries: n, symbols: [...]}.

        Raises:
            UsageError: no runner trades `symbol`, or the engine is not running.
        """
        self._require_running()
        runners = self._runners_of(symbol)
        log.warning("cancel entries of %s by %s", symbol or "every symbol", actor)
        n = 0
        for r in runners:
            n += await maybe_await(r.cancel_entries()) or 0
        return {"cancelled_entries": n, "symbols": sorted({r.symbol for r in runners})}

    async def ack_alert(self, alert_id: int, actor: str) -> Any:
        """Acknowledge alert `alert_id`: the `core.alerts.model.CommandResult` (never raises on a
        bad or unknown id: `ok` False, `error` says which).

        Raises:
            UsageError: no alert engine in this run.
        """
        if self.alerts is None:
            raise UsageError("no alert engine in this run")
        return await self.alerts.ack(alert_id, actor)

    async def snooze_alert(self, alert_id: int, actor: str, minutes: int) -> Any:
        """Snooze alert `alert_id` for `minutes`: the `CommandResult` (see `ack_alert`).

        Raises:
            UsageError: no alert engine in this run.
        """
        if self.alerts is None:
            raise UsageError("no alert engine in this run")
        return await self.alerts.snooze(alert_id, actor, duration=f"{int(minutes)}m")


def _entry_orders(r: Any) -> int:
    return sum(1 for rec in r.executor.orders.values() if rec[0] == "entry")


def _daily_pnl(db_path: Any, runners: list[tuple[int, str]], days: int) -> dict:
    """`EngineAPI.daily_pnl` on its own connection (see there)."""
    from datetime import datetime, timezone

    from core.engine.runner_base import DAY_MS
    from core.storage.db import open_sync

    conn = open_sync(db_path)
    try:
        last = conn.execute(f"SELECT MAX(ts) FROM trading_equity WHERE runner_id IN "
                            f"({', '.join('?' * len(runners))})", [i for i, _ in runners]).fetchone()[0] \
            if runners else None
        if last is None:
            return {"days": [], "total": 0.0}
        last_day = last // DAY_MS
        first_day = last_day - days + 1
        start = first_day * DAY_MS
        per_day: dict[int, dict] = {d: {"pnl": 0.0, "equity": 0.0, "runners": {}} for d in range(first_day, last_day + 1)}
        for rid, label in runners:
            base = conn.execute("SELECT equity FROM trading_equity WHERE runner_id=? AND ts < ? ORDER BY ts DESC "
                                "LIMIT 1", (rid, start)).fetchone()
            if base is None:
                base = conn.execute("SELECT equity FROM trading_equity WHERE runner_id=? ORDER BY ts LIMIT 1",
                                    (rid,)).fetchone()
            if base is None:
                continue
            prev = float(base[0])
            rows = conn.execute("SELECT ts / ? AS d, equity, MAX(ts) FROM trading_equity WHERE runner_id=? AND ts >= ? "
                                "GROUP BY d ORDER BY d", (DAY_MS, rid, start)).fetchall()
            closing = {int(d): float(eq) for d, eq, _ in rows}
            for d in range(first_day, last_day + 1):
                eq = closing.get(d, prev)
                per_day[d]["runners"][label] = eq - prev
                per_day[d]["pnl"] += eq - prev
                per_day[d]["equity"] += eq
                prev = eq
    finally:
        conn.close()
    out = [{"day": datetime.fromtimestamp(d * DAY_MS / 1000, tz=timezone.utc).strftime("%Y-%m-%d"),
            "day_ms": d * DAY_MS, **v} for d, v in sorted(per_day.items())]
    return {"days": out, "total": sum(x["pnl"] for x in out)}


def _performance(db_path: Any, runners: list[dict], title: str, window_days: int, max_points: int) -> dict:
    """`EngineAPI.performance` on its own connection (see there)."""
    from core.performance.sources import from_conn
    from core.performance.summary import performance
    from core.storage.db import open_sync

    conn = open_sync(db_path)
    try:
        inp = from_conn(conn, runners, title)
    finally:
        conn.close()
    return performance(inp, window_days=window_days, max_points=max_points)


def read_job_results(manager: Any, job_id: int) -> list[dict]:
    """The stored results of job `job_id` of `manager` (a JobManager): see `EngineAPI.job_results`.

    Raises:
        UsageError: no such job.
    """
    from core.optimize.results_store import combo_rows, get_result
    from core.storage.db import open_sync

    rec = manager.get(job_id)
    if rec is None:
        raise UsageError(f"no job {job_id}")
    res = rec.result if isinstance(rec.result, dict) else {}
    # an optimize job lists its results per symbol; a campaign job ranks its runs (best first)
    ids = [r["result_id"] for r in (res.get("results") or res.get("ranking") or []) if r.get("result_id") is not None]
    conn = open_sync(manager.db_path)
    try:
        return [{"result": get_result(conn, rid).to_json(), "combos": combo_rows(conn, rid)} for rid in ids]
    finally:
        conn.close()


def runner_state(r: Any) -> str:
    """A runner's state: "halted: <why>" while its executor refuses entries (a halt wins), else
    "paused" while an operator paused it, else the live runner's state (connecting | reconciling
    | ready | blocked | halted), "ready" on paper."""
    halted = getattr(getattr(r, "executor", None), "halted", None)
    if halted:
        return f"halted: {halted}"
    if getattr(r, "pause_info", None):
        return "paused"
    return str(getattr(r, "state", "ready"))
