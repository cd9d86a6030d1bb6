"""The Engine: DataEngine -> Anys -> executor/gateway -> SQLite + event bus.

One asyncio loop hosts it (and, later, the console and Telegram); it runs headless too.

    engine = Engine(db_path, sources, runner_specs, account)
    await engine.run()          # start, process until the data ends (replay) or stop()

* `sources`: one `CandleSource` per (symbol, timeframe): a feed factory plus the stored
  history used to warm the strategies up / rebuild their history on resume.
* start: takes the database's engine lock (a second engine is refused), opens the state
  store, loads the kill switch, builds and restores every runner, and starts the
  DataEngine after the oldest runner cursor (replay resumes after the last processed candle).
* each ClosedCandle goes to the runners of its (symbol, timeframe) in order; each candle
  is one SQLite transaction per runner on the simulated venue (see `core.engine.grid_runner`).
* data quality: a candle whose open time skips periods after the previous one of its series
  (also across a restart: the runner cursor) is a gap; it is published on the bus as a
  `DataGap` (from/to open times of the missing candles, inclusive, as `core.data.quality`).
  Feed staleness, freshness and reconnects are published on the bus as they come
  (`FeedStale`, `FeedFresh`, `FeedReconnect` of `core.data.feed`, plus a `HealthEvent`);
  `feed_listeners` (plain callables) see every data event, candles included, in order.
  `candle_hooks` (`(runner, ts, o, h, lo, c)`, sync or async) run after each runner processed a
  candle, its state final for that candle (the alert rules of `core.alerts.rules`); a hook that
  raises is logged, never breaks the engine.
* risk (`risk_config`): a `RiskManager` on the state store's connection checks every entry
  order before it is placed (see `core.executor.grid_executor`) and, after every candle's equity
  point (the account equity: the sum of the runners'), `on_equity`; a `TripDecision` trips the
  persisted kill switch (actor "risk") in the candle's transaction, then pending entries are
  cancelled and, with `flatten`, positions closed, and a `KillSwitchEvent` is published.
* capital allocation (`allocation`, risk.yaml `allocation:`): an `Allocator`
  (`core.risk.allocation_runtime`) runs after each runner's candle: rebalances at its interval,
  moves cash to a flat runner's target (`allocation_shared`), halts new cycles on the drawdown
  limits; its unallocated cash counts in the account equity the risk limits see. With it, a
  replay's candles reach the runners in open-time order across the series (one clock).
* operator control per runner (`core.engine.runner_base`): a runner paused by an operator stays
  paused across a restart, pending params stay pending (runner_control). A runner whose params
  were changed at runtime (`apply_params`) restarts with them: with the configured params when
  strategies.yaml now gives those (e.g. written by `radar optimize --apply`), with the applied
  ones (logged) while strategies.yaml still gives what it gave when they were applied, and with
  its stored params, keeping the new ones pending, when strategies.yaml gives its pending params
  (`_controlled_spec`); any other difference refuses the start (state built with other params).
* a replay that reaches the end of its data closes the open cycles ("end"), publishes
  `ReplayFinished` (the replayed series; `core.engine.alerting` resolves their gap alerts), then stops;
  `stop()` (SIGINT/SIGTERM) stops after the candle in progress, state persisted, without
  any end-of-data exit, so the next start resumes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from core.data.candle_guard import CandleQualityGuard
from core.data.engine import DataEngine
from core.data.feed import ClosedCandle, FeedFresh, FeedReconnect, FeedStale, TickerUpdate
from core.data.timeframes import timeframe_ms
from core.engine.candle_quality import CandleQualityListener
from core.engine.supervisor import Supervisor
from core.errors import RadarError
from core.events.bus import EngineStatus, EventBus, HealthEvent, KillSwitchEvent
from core.executor.kill_switch import KillSwitch
from core.executor.state_store import EngineLock, StateStore
from core.model.account import Account
from core.storage.integrity import check_database

log = logging.getLogger(__name__)

#: why a live runner is halted when its protection loop has not run for a re-check interval
LOOP_STALE = "protection loop not running"

#: Most seconds `_consume` works through a burst of queued candles before yielding to the loop.
CONSUME_SLICE_S = 0.005

HistoryRows = Iterable[tuple[int, float, float, float, float]]


@dataclass
class CandleSource:
    """Candles of one (symbol, timeframe).

    Attributes:
        make_feed: `make_feed(start_after_ts) -> CandleFeed` (replay or live).
        history: `history(up_to_ts, n) -> rows (ts, o, h, l, c)` oldest first with ts <= up_to_ts
            (None = the newest), at most n; used to warm up and to rebuild history on resume.
        replay: True when the feed ends (end of data => end-of-data exits).
        store_db: candle store the DataEngine upserts closed candles into (live), or None.
    """

    symbol: str
    timeframe: str
    make_feed: Callable[[int | None], Any]
    history: Callable[[int | None, int], HistoryRows]
    replay: bool = True
    store_db: Path | None = None
    funding: Any = None        # (ts, rate) arrays of the perpetual's funding rates, for the `funding` strategy
    make_ticker_feed: Callable[[], Any] | None = None    # live: ticker pushes (client-side take-profit)
    aclose: Callable[[], Any] | None = None      # awaited at shutdown (e.g. the ccxt exchange's close)


@dataclass(frozen=True, slots=True)
class DataGap:
    """Missing candles in a series, seen by the engine: open times `from_ms`..`to_ms` (ms UTC,
    inclusive; `missing` candles), detected when the candle at `next_ts` arrived."""

    symbol: str
    timeframe: str
    from_ms: int
    to_ms: int
    missing: int
    next_ts: int


@dataclass(frozen=True, slots=True)
class ReplayFinished:
    """A replay reached the end of its data (published once, after the open cycles were closed).

    Attributes:
        series: the replayed (symbol, timeframe) pairs.
        candles: candles processed by this run (0 when the database had replayed them already).
        last_ts: open time (ms UTC) of the newest candle each series reached, by (symbol, timeframe);
            a series that delivered nothing keeps the cursor it resumed from (absent without one).
    """

    series: tuple[tuple[str, str], ...]
    candles: int
    last_ts: dict


class EngineParamsConflict(RadarError):
    """strategies.yaml changed a runner's params since an operator changed them at runtime: the
    stored state is not restarted with params it was not built with (exit code 2)."""

    exit_code = 2


@dataclass(frozen=True)
class RunnerSpec:
    """One strategy on one series: registry name, params, symbol, timeframe."""

    strategy: str
    params: dict
    symbol: str
    timeframe: str


@dataclass
class LiveSetup:
    """What a live engine needs beyond paper (see `core.engine.grid_runner`).

    Attributes:
        gateway_factory: `(symbol) -> CcxtGateway` (not started) for one runner.
        id_prefix: the installation's client order id prefix (exchanges.yaml).
        stop_retries: stop placement attempts before a market close (risk.yaml stops).
        recheck_interval_s: seconds between checks that every position has its stop.
        poll_interval_s: seconds between fill / take-profit polls between candles.
        reconnect_backoff_s: first delay before a failed reconciliation is retried (doubles, <= 300 s).
        alert: `(level, message)` callback for critical findings, or None.
        unprotected_grace_s: seconds a position may stay without a stop (runner halted, alert
            repeated every re-check) before the kill switch is tripped for its symbol.
        adopt_history: adopt, on purpose, orders of this installation the database does not
            know and the venue's position (`radar run --live --adopt-history`).
    """

    gateway_factory: Callable[[str], Any]
    id_prefix: str
    stop_retries: int = 3
    recheck_interval_s: float = 30.0
    poll_interval_s: float = 5.0
    reconnect_backoff_s: float = 5.0
    alert: Callable[[str, str], Any] | None = None
    unprotected_grace_s: float = 120.0
    adopt_history: bool = False


@dataclass
class EngineStats:
    candles: int = 0
    gaps: int = 0
    started_at: float = field(default_factory=time.monotonic)
    first_candle_at: float | None = None
    last_candle_at: float | None = None

    def rate(self) -> float:
        if self.first_candle_at is None or self.last_candle_at is None or self.candles < 2:
            return 0.0
        dt = self.last_candle_at - self.first_candle_at
        return self.candles / dt if dt > 0 else 0.0


class Engine:
    """See the module docstring.

    Args:
        db_path: SQLite database of the trading state (and lock).
        sources: candle sources. specs: runners (each must have a source).
        account: paper account of every runner.
        mode: "paper" or "live" (live needs `live`, a LiveSetup).
        bus: event bus (a new one by default).
        status_interval: seconds between status lines (0 = none).
        history_candles: candles of history loaded to warm up / resume each runner.
        reconnect_limit: live only: fail after this many feed reconnects before any candle.
        live: the LiveSetup of mode "live".
        sizing_reserve: paper runners keep this fraction of the cash out of each cycle's sizing
            (0: the spec's sizing, as the backtest; the CLI uses the live ledger's
            `fee_reserve` on the live feed so paper sizes as live does).
        health: the health thresholds of the run (`core.config.health.HealthConfig`), read by the
            run's services (`core.engine.services`: loop lag); None: their defaults.

    Attributes (besides the arguments):
        resumed_after: once started, (symbol, timeframe) -> the open time (ms UTC) of the last
            candle the database had processed, for the series that resumed (empty on a new database).
    """

    def __init__(self, db_path: str | Path, sources: list[CandleSource], specs: list[RunnerSpec],
                 account: Account = Account(), *, mode: str = "paper", bus: EventBus | None = None,
                 status_interval: float = 10.0, history_candles: int = 5000, id_prefix: str = "rd",
                 reconnect_limit: int = 3, risk_config: Any = None, risk_groups: dict[str, str] | None = None,
                 clock: Callable[[], int] | None = None, live: LiveSetup | None = None,
                 sizing_reserve: float = 0.0, health: Any = None, allocation: Any = None,
                 allocation_shared: bool = False) -> None:
        if mode not in ("paper", "live"):
            raise RadarError(f"engine mode {mode!r}: expected paper or live")
        if mode == "live" and live is None:
            raise RadarError("a live engine needs its LiveSetup (gateways, client id prefix)")
        self.live = live
        self.sizing_reserve = sizing_reserve
        self.health = health
        self.resumed_after: dict[tuple[str, str], int] = {}
        keys = {(s.symbol, s.timeframe) for s in sources}
        for spec in specs:
            if (spec.symbol, spec.timeframe) not in keys:
                raise RadarError(f"{spec.strategy} {spec.symbol} {spec.timeframe}: no candle source for it")
        self.db_path = Path(db_path)
        self.sources = sources
        self.specs = specs
        self.account = account
        self.mode = mode
        self.bus = bus or EventBus()
        self.status_interval = status_interval
        self.history_candles = history_candles
        self.id_prefix = id_prefix
        self.reconnect_limit = reconnect_limit
        self.risk_config = risk_config          # core.config.risk.RiskConfig, or None: no risk checks
        self.risk_groups = dict(risk_groups or {})
        self.clock = clock
        self.risk = None                        # core.risk.RiskManager once started (with risk_config)
        self.allocation = allocation            # core.config.allocation.AllocationConfig, or None: no allocator
        self.allocation_shared = bool(allocation_shared)
        self.allocator = None                   # core.risk.allocation_runtime.Allocator once started
        self.feed_listeners: list[Callable[[Any], None]] = []
        self.candle_hooks: list[Callable[..., Any]] = []
        self.runners: list[Any] = []
        self.stats = EngineStats()
        self._last_ts: dict[tuple[str, str], int] = {}
        self._risk_trip = None
        self.store: StateStore | None = None
        self.kill_switch: KillSwitch | None = None
        self.data: DataEngine | None = None
        self.error: BaseException | None = None
        self.finished = False
        self._lock = EngineLock(self.db_path)
        self._by_key: dict[tuple[str, str], list[Any]] = {}
        self._with_volume: set[int] = set()      # ids of the runners whose on_candle takes the volume
        self._stream = None
        self._stopping = False
        self.supervisor = Supervisor(self.bus)
        self._done = asyncio.Event()
        self._started = False
        self._join_task: asyncio.Task | None = None

    # ---------------------------------------------------------------- lifecycle
    def acquire_lock(self) -> None:
        """Take the database's engine lock now (before the services of a run are built), so a
        second engine is refused before it touches anything. `start()` keeps it."""
        if self._lock._fd is None:
            self._lock.acquire()
            try:
                check_database(self.db_path, missing_ok=True)   # DatabaseCorrupt (exit 2) before trading
            except BaseException:
                self._lock.release()
                raise

    async def start(self) -> None:
        if self._started:
            raise RuntimeError("engine already started")
        self._started = True
        self.feed_listeners.append(CandleQualityListener(
            self.bus, guard_factory=lambda s, tf: CandleQualityGuard(s, tf, spike_k=None)))
        self.acquire_lock()
        try:
            self.store = StateStore(self.db_path)
            self.kill_switch = KillSwitch(self.store)
            if self.kill_switch.active:
                log.warning("kill switch is ACTIVE (set by %s: %s): no new entries until `resume`",
                            self.kill_switch.actor, self.kill_switch.reason)
            if self.risk_config is not None:
                from core.model.clock import system_clock
                from core.risk import RiskManager, RiskStore

                self.risk = RiskManager(self.risk_config, self.risk_groups, RiskStore(self.store.conn),
                                        self.clock or system_clock, self.bus)
            start_after: dict[tuple[str, str], int] = {}
            src_by_key = {(s.symbol, s.timeframe): s for s in self.sources}
            for spec in self.specs:
                spec, configured = self._controlled_spec(spec)
                r = self._make_runner(spec)
                r.config_params = configured
                src = src_by_key[(spec.symbol, spec.timeframe)]
                st = self.store.load_state(r.runner_id)
                cursor = st["cursor_ts"] if st else None
                if st is None and src.replay:
                    rows = None                   # a replay warms up on its own first candles
                else:
                    rows = await asyncio.to_thread(lambda: list(src.history(cursor, self.history_candles)))
                r.restore(rows)
                r.restore_control()
                self.runners.append(r)
                self._by_key.setdefault(r.key, []).append(r)
            for key, runners in self._by_key.items():
                cursors = [r.cursor for r in runners]
                if all(c is not None for c in cursors):
                    start_after[key] = min(cursors)
                    self._last_ts[key] = min(cursors)
            self.resumed_after = dict(start_after)
            if self.allocation is not None:
                from core.risk.allocation_runtime import Allocator

                self.allocator = Allocator(self.allocation, self.runners, self.store, self.kill_switch, self.bus,
                                           shared=self.allocation_shared)
                self.allocator.start()
            await self._connect()
            feeds = [src.make_feed(start_after.get((src.symbol, src.timeframe))) for src in self.sources
                     if (src.symbol, src.timeframe) in self._by_key]
            if self.mode == "live":
                feeds += [src.make_ticker_feed() for src in self.sources
                          if src.make_ticker_feed is not None and (src.symbol, src.timeframe) in self._by_key]
            store_db = next((s.store_db for s in self.sources if s.store_db is not None), None)
            self.data = DataEngine(feeds, db_path=store_db, start_after=start_after, resume_from_store=False,
                                   spawn=self._spawn_feed)
            self._stream = self.data.events((ClosedCandle, FeedReconnect, FeedStale, FeedFresh)
                                            + ((TickerUpdate,) if self.mode == "live" else ()))
            if self.allocator is not None and all(s.replay for s in self.sources):
                self._stream = self._time_ordered(self._stream, start_after)
            await self.data.start()
        except BaseException:
            await self._close()
            raise
        sup = self.supervisor
        self._join_task = sup.spawn("engine-data-join", self.data.join, subsystem="feed", restart=False,
                                    on_give_up=self._feed_failed)
        sup.spawn("engine-consume", self._consume, subsystem="engine", restart=False)
        if self.status_interval > 0:
            sup.spawn("engine-status", self._status_loop, subsystem="engine", critical=False)
        if self.mode == "live":
            for r in self.runners:
                sup.spawn(self._protect_task(r), lambda r=r: self._protect_loop(r), subsystem="executor",
                          on_failure=lambda name, exc, r=r: self._protect_failed(r, exc))
            sup.spawn("protect-watch", self._protect_watch, subsystem="executor", restart="always")
        self.bus.publish(HealthEvent("engine", "ok", f"started ({self.mode}, {len(self.runners)} runners)"))
        log.info("engine started: %s mode, %d runner(s) on %s, db %s", self.mode, len(self.runners),
                 ", ".join(f"{s} {t}" for s, t in self._by_key), self.db_path)

    def _controlled_spec(self, spec: RunnerSpec) -> tuple[RunnerSpec, dict]:
        """(the spec to build, the configured params normalised): the params a runner restarts
        with when an operator changed them at runtime (module docstring). A spec whose params
        differ from the stored ones in any other way is returned as it is (`StateStore.runner_id`
        refuses it)."""
        from dataclasses import replace

        from core.strategies import registry

        configured = dict(registry.create(spec.strategy, spec.params).params)
        key = (spec.strategy, spec.symbol, spec.timeframe, self.mode)
        stored = self.store.runner_params(*key)
        if stored is None or stored == configured:
            return spec, configured
        ctl = self.store.runner_control(*key)
        if ctl is not None and ctl["pending_params"] == configured:
            log.warning("%s %s %s: strategies.yaml gives the params pending since %s (%s); the runner trades %s "
                        "until it is flat", *key[:3], ctl["pending_by"], configured, stored)
            return replace(spec, params=stored), configured
        if ctl is not None and ctl["params"] == stored and ctl["config_params"] == configured:
            log.warning("%s %s %s: trading the params applied at runtime by %s (%s), not those of strategies.yaml "
                        "(%s)", *key[:3], ctl["applied_by"], stored, configured)
            return replace(spec, params=stored), configured
        if ctl is not None and ctl["params"] == stored:
            raise EngineParamsConflict(
                f"{spec.strategy} {spec.symbol} {spec.timeframe} ({self.mode}) trades {stored}, applied at runtime by "
                f"{ctl['applied_by']}; strategies.yaml gave {ctl['config_params']} then and gives {configured} now: "
                f"set strategies.yaml to the params traded to continue this state in {self.db_path} (then change "
                "them with `radar ctl apply-params`), or use another --db")
        return spec, configured

    def _make_runner(self, spec: RunnerSpec):
        """The runner of `spec`: a `GridRunner` on the simulated venue (paper) or on the exchange
        (live), or a `SingleStrategyRunner` (single-position: paper only; its executor speaks the
        venue protocol, but live single-position trading is not enabled yet)."""
        from core.strategies import registry
        from core.strategies.base import SinglePositionStrategy

        on_eq = self._risk_on_equity if self.risk else None
        busy = self._symbol_busy_fn(spec)
        if isinstance(registry.create(spec.strategy, spec.params), SinglePositionStrategy):
            if self.mode == "live":
                raise RadarError(f"{spec.strategy}: live trading of single-position strategies is not enabled "
                                 "yet (paper only); leave live_eligible false for it")
            from core.engine.single_runner import SingleStrategyRunner

            src = next(s for s in self.sources if (s.symbol, s.timeframe) == (spec.symbol, spec.timeframe))
            r = SingleStrategyRunner(spec.strategy, spec.params, spec.symbol, spec.timeframe, self.account,
                                     self.store, self.kill_switch, self.bus, mode=self.mode,
                                     id_prefix=self.id_prefix, risk=self.risk, on_equity=on_eq,
                                     sizing_reserve=self.sizing_reserve,
                                     funding=getattr(src, "open_interest" if getattr(registry.STRATEGIES.get(
                                         spec.strategy), "NEEDS_OPEN_INTEREST", False) else "funding", None),
                                     symbol_busy=busy)
            if self.risk is not None:
                r.executor.portfolio = (lambda r=r: self._portfolio(r))
            self._with_volume.add(id(r))
            return r
        from core.engine.grid_runner import GridRunner
        from core.executor.risk_gate import RiskGate
        from core.model.sides import LONG

        clock = self.clock or (lambda: int(time.time() * 1000))
        src = next((s for s in self.sources if (s.symbol, s.timeframe) == (spec.symbol, spec.timeframe)), None)
        if self.mode == "live":
            lv = self.live
            venue = lv.gateway_factory(spec.symbol)
            r = GridRunner(spec.strategy, spec.params, spec.symbol, spec.timeframe, self.account, self.store,
                           self.kill_switch, self.bus, venue=venue, mode="live", alert=lv.alert,
                           id_prefix=lv.id_prefix, stop_retries=lv.stop_retries, on_equity=on_eq, clock_ms=clock,
                           sizing_reserve=self.sizing_reserve, adopt_history=lv.adopt_history,
                           funding=getattr(src, "funding", None))
        else:
            from core.venues.sim.grid_venue import SimGridVenue

            strat = registry.create(spec.strategy, spec.params)
            r = GridRunner(spec.strategy, spec.params, spec.symbol, spec.timeframe, self.account, self.store,
                           self.kill_switch, self.bus, mode=self.mode, id_prefix=self.id_prefix, on_equity=on_eq,
                           clock_ms=clock, sizing_reserve=self.sizing_reserve, funding=getattr(src, "funding", None),
                           venue=lambda ids: SimGridVenue(strat, spec.symbol, self.account, ids, self.sizing_reserve))
        r.executor.symbol_busy = busy
        if self.risk is not None:
            side = "long" if r.strategy.side == LONG else "short"
            r.executor.risk_gate = RiskGate(self.risk, lambda r=r: self._portfolio(r), r.name, r.symbol, side,
                                            r.strategy)
        return r

    def _symbol_busy_fn(self, spec: RunnerSpec):
        """`() -> bool`: another runner on `spec.symbol` holds a position (grid and single-position
        trades are mutually exclusive per symbol); None when no other spec trades the symbol."""
        if sum(1 for s in self.specs if s.symbol == spec.symbol) < 2:
            return None

        def busy() -> bool:
            return any(r.symbol == spec.symbol and r.name != spec.strategy and r.book.qty > 0
                       for r in self.runners)
        return busy

    async def _connect(self) -> None:
        """Connect and reconcile every grid runner with its venue (AccountInUse / AccountModeError
        refuse the start; a live runner whose exchange cannot be read now stays "reconciling" and
        is retried by `_live_loop`, trading nothing meanwhile)."""
        if self.mode == "live":
            symbols: dict[str, str] = {}
            for r in self.runners:
                other = symbols.get(r.symbol)
                if other is not None:
                    raise RadarError(f"{r.symbol}: {other} and {r.name} would share one exchange position; "
                                     "one grid strategy per symbol when trading live")
                symbols[r.symbol] = r.name
        for r in self.runners:
            connect = getattr(r, "connect", None)
            if connect is not None:
                await connect()

    @staticmethod
    def _protect_task(r: Any) -> str:
        return f"protect:{r.name}:{r.symbol}"

    def _stale_after_s(self) -> float:
        """A runner's protection loop not seen for this long (s) halts the runner."""
        lv = self.live
        return max(lv.recheck_interval_s, 2.0 * lv.poll_interval_s)

    async def _protect_loop(self, r: Any) -> None:
        """One live runner between candles (supervised; a failure halts the runner and restarts
        the loop): reconciliation retries with backoff, fills / stop-outs / the take-profit
        every `poll_interval_s`, the stop check every `recheck_interval_s` (and on every pass
        while the runner is halted for want of a stop)."""
        lv = self.live
        name = self._protect_task(r)
        sup = self.supervisor
        loop = asyncio.get_running_loop()
        next_verify = loop.time() + lv.recheck_interval_s
        backoff = lv.reconnect_backoff_s
        retry_at = loop.time() + backoff
        while True:
            sup.beat(name)
            await asyncio.sleep(lv.poll_interval_s)
            now = loop.time()
            if r.state == "reconciling" and now >= retry_at:
                try:
                    ok = await r.connect()
                except RadarError as exc:
                    log.critical("%s %s: %s", r.name, r.symbol, exc)
                    ok = False
                if not ok:
                    backoff = min(300.0, backoff * 2)
                    retry_at = now + backoff
            await r.tick()
            if now >= next_verify or r.halted is not None:
                next_verify = now + lv.recheck_interval_s
                await r.verify_stops()
            sup.beat(name)

    async def _protect_failed(self, r: Any, exc: BaseException) -> None:
        """The protection loop of `r` failed: halt the runner (entries cancelled, stop kept)."""
        await r.halt(f"protection loop failed: {type(exc).__name__}: {exc}"[:200])

    async def _protect_watch(self) -> None:
        """Fail closed between candles (supervised, restarted always): a runner whose protection
        loop has not run for `_stale_after_s()` is halted (and released when it runs again); a
        position without a stop is alerted again every re-check until it is protected, and past
        `unprotected_grace_s` the kill switch is tripped for its symbol."""
        from core.events.bus import AlertEvent
        from core.executor.grid_executor import UNPROTECTED

        lv = self.live
        sup = self.supervisor
        loop = asyncio.get_running_loop()
        period = max(0.02, min(lv.poll_interval_s, lv.recheck_interval_s) / 2)
        last_alert: dict[int, float] = {}
        while True:
            await asyncio.sleep(period)
            now = loop.time()
            for r in self.runners:
                ex = r.executor
                name = self._protect_task(r)
                limit = self._stale_after_s()
                busy = r.busy_since is not None and time.monotonic() - r.busy_since < 10 * limit
                stale = sup.stale(name, limit) and not busy        # waiting on the venue is slow, not dead
                if stale and ex.halted is None:
                    await r.halt(LOOP_STALE)
                elif not stale and ex.halted is not None and ex.halted.startswith("protection loop"):
                    r.unhalt((ex.halted,))
                if ex.halted == UNPROTECTED:
                    if r.unprotected_since is None:
                        r.unprotected_since = now
                    if now - last_alert.get(id(r), -1e18) >= lv.recheck_interval_s:
                        last_alert[id(r)] = now
                        self.bus.publish(AlertEvent(
                            "critical", f"{r.symbol}: UNPROTECTED POSITION for {now - r.unprotected_since:.0f} s",
                            f"{r.name} {r.symbol}: no stop at the exchange and the market close failed; entries "
                            f"are cancelled and refused, protection is retried. Act now (close the position on "
                            f"the exchange). The kill switch of {r.symbol} trips after {lv.unprotected_grace_s:g} s.",
                            "executor"))
                    if now - r.unprotected_since >= lv.unprotected_grace_s and r.symbol not in self.kill_switch.symbols:
                        self.kill_switch.trip_symbol(r.symbol, "protection",
                                                     f"unprotected for more than {lv.unprotected_grace_s:g} s")
                        self.bus.publish(KillSwitchEvent(True, False, "protection",
                                                         f"{r.symbol}: unprotected past the grace period"))
                        log.critical("%s %s: unprotected past %g s: kill switch tripped for %s", r.name, r.symbol,
                                     lv.unprotected_grace_s, r.symbol)
                else:
                    r.unprotected_since = None
                    last_alert.pop(id(r), None)

    def _spawn_feed(self, name: str, factory: Callable[[], Any], live: bool) -> asyncio.Task:
        """The data engine's feed tasks, under the supervisor: a live feed (or the staleness
        watch) that fails is logged, alerted and restarted with backoff after its last candle;
        a replay that fails is final (the engine stops with its error)."""
        return self.supervisor.spawn(name, factory, subsystem="feed", restart=live)

    def _feed_failed(self, name: str, exc: BaseException) -> None:
        """The data engine failed: the engine stops with that error (no trading blind)."""
        if self.error is None:
            self.error = exc
        self._done.set()

    async def run(self) -> None:
        """Start (unless started), process until the data ends or `stop()`, then shut down."""
        if not self._started:
            await self.start()
        try:
            await self._done.wait()
        finally:
            await self._shutdown()
        if self.error is not None:
            raise self.error

    def request_stop(self) -> None:
        """Ask the engine to stop after the candle in progress (signal-handler safe on the loop)."""
        if not self._stopping:
            self._stopping = True
            log.warning("stopping: finishing the candle in progress, state is persisted")
            if self.data is not None:
                try:
                    self.supervisor.spawn("engine-data-stop", self.data.stop, subsystem="feed", restart=False,
                                          critical=False)
                except RuntimeError:                  # the supervisor is stopping: _shutdown stops the feeds
                    pass
            self._done.set()

    async def stop(self) -> None:
        self.request_stop()
        await self._shutdown()

    # ---------------------------------------------------------------- internals
    async def _consume(self) -> None:
        stats = self.stats
        by_key = self._by_key
        last_ts = self._last_ts
        listeners = self.feed_listeners
        with_volume = self._with_volume
        reconnects = 0
        # The stream hands over queued events without suspending (a replay catching up after a
        # slow paint delivers a burst): yield to the loop every CONSUME_SLICE_S of work so one
        # burst never blocks the console and the other tasks (events are processed in the same
        # order, each candle fully; only the interleaving with other tasks changes).
        slice_s = CONSUME_SLICE_S
        slice_t0 = last_at = time.monotonic()
        try:
            async for ev in self._stream:
                if self._stopping:
                    break
                got = time.monotonic()
                if got - last_at >= slice_s:          # the stream had made us wait: a new slice
                    slice_t0 = got
                if listeners:
                    for fn in listeners:
                        try:
                            fn(ev)
                        except Exception:  # a listener never breaks the engine
                            log.exception("feed listener %r failed", fn)
                if type(ev) is ClosedCandle:
                    key = (ev.symbol, ev.timeframe)
                    ts = ev.ts
                    prev = last_ts.get(key)
                    if prev is not None and ts > prev:
                        tf = timeframe_ms(ev.timeframe)
                        if ts > prev + tf:
                            self._gap(ev.symbol, ev.timeframe, prev, ts, tf)
                    last_ts[key] = ts
                    runners = by_key.get(key)
                    if runners:
                        o, h, lo, c = ev.open, ev.high, ev.low, ev.close
                        for r in runners:
                            if id(r) in with_volume:
                                await r.on_candle(ts, o, h, lo, c, ev.volume)
                            else:
                                await r.on_candle(ts, o, h, lo, c)
                            if self.allocator is not None:
                                await self.allocator.after_candle(r, ts)
                            if self.candle_hooks:
                                await self._run_candle_hooks(r, ts, o, h, lo, c)
                            if self._risk_trip is not None:
                                await self._apply_risk_trip()
                    stats.candles += 1
                    now = time.monotonic()
                    if stats.first_candle_at is None:
                        stats.first_candle_at = now
                    stats.last_candle_at = now
                    reconnects = 0
                    if now - slice_t0 >= slice_s:     # a slice of work done (a slow candle included): yield
                        await asyncio.sleep(0)
                        now = slice_t0 = time.monotonic()
                    last_at = now
                elif type(ev) is TickerUpdate:
                    for r in self.runners:
                        if r.symbol == ev.symbol and r.live:
                            await r.on_ticker(ev.last)
                elif isinstance(ev, (FeedStale, FeedFresh)):
                    self.bus.publish(ev)
                    self.bus.publish(HealthEvent("feed", "ok" if isinstance(ev, FeedFresh) else "degraded",
                                                 str(ev)))
                elif isinstance(ev, FeedReconnect):
                    reconnects += 1
                    self.bus.publish(ev)
                    self.bus.publish(HealthEvent("feed", "degraded", f"{ev.symbol}: {ev.error}"))
                    if stats.candles == 0 and reconnects >= self.reconnect_limit:
                        raise RadarError(f"the live feed of {ev.symbol} cannot connect ({reconnects} attempts, "
                                         f"last error: {ev.error}); is the network (exchange public API) "
                                         "reachable? Use --replay PATH to run offline")
            if not self._stopping:
                await self._join_task
                if self.error is not None:       # the feed failed (`_feed_failed`)
                    raise self.error
                if all(s.replay for s in self.sources):
                    for r in self.runners:
                        await maybe_await(r.finish())
                    self.finished = True
                    log.info("end of the replayed data: %d candles, open cycles closed (end)", stats.candles)
                    self.bus.publish(ReplayFinished(tuple(self._by_key), stats.candles, dict(last_ts)))
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self.error = exc
            log.error("engine stopped on error: %s", exc)
        finally:
            self._done.set()

    async def _run_candle_hooks(self, r: Any, ts: int, o: float, h: float, lo: float, c: float) -> None:
        """`candle_hooks` after runner `r` processed the candle at `ts` (each isolated: logged, never raised)."""
        for fn in self.candle_hooks:
            try:
                await maybe_await(fn(r, ts, o, h, lo, c))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("candle hook %r failed", fn)

    def _time_ordered(self, stream: Any, start_after: dict) -> Any:
        """A replay's candles in open-time order across its series (`core.engine.replay_order`):
        the allocation's shared account sees one clock, as on the live feed."""
        from core.engine.replay_order import ReplayTimeOrder

        last: dict = {}
        for src in self.sources:
            key = (src.symbol, src.timeframe)
            if key in self._by_key:
                rows = list(src.history(None, 1))
                last[key] = int(rows[-1][0]) if rows else None
        return ReplayTimeOrder(last, start_after).wrap(stream)

    def _gap(self, symbol: str, timeframe: str, prev: int, ts: int, tf: int) -> None:
        d = ts - prev
        missing = max(d // tf - (d % tf == 0), 1)
        gap = DataGap(symbol, timeframe, prev + tf, ts - tf, int(missing), ts)
        self.stats.gaps += 1
        self.bus.publish(gap)

    # ---------------------------------------------------------------- risk
    def _portfolio(self, me: Any):
        """The account as the risk rules see it before an entry of runner `me`: every runner's
        position and resting entries; the free margin of `me`'s paper account (its equity less
        the margin its position and resting entries hold)."""
        from core.executor.risk_gate import entry_notional
        from core.model.sides import LONG
        from core.risk import Exposure, PortfolioView

        positions, pending = [], []
        free = None
        for r in self.runners:
            eng = r.book
            side = "long" if eng.side == LONG else "short"
            k = eng.levels_filled
            price = r.last_close if r.last_close is not None else eng.avg_entry
            used = 0.0
            if k:
                notional = abs(eng.qty * price)
                positions.append(Exposure(r.symbol, side, notional))
                used += abs(eng.cost) / eng.leverage
            ex = r.executor
            unit = ex.entry_notional() if hasattr(ex, "entry_notional") else entry_notional(eng, r.strategy)
            for rec in r.executor.orders.values():
                if rec[0] == "entry":
                    pending.append(Exposure(r.symbol, side, unit, opens_position=k == 0 and rec[1] == 0))
                    used += unit / eng.leverage
            if r is me:
                free = r.equity_last - used
        return PortfolioView(positions, float(free if free is not None else 0.0), pending)

    def _risk_on_equity(self, ts: int) -> None:
        """After a runner's equity point, inside its candle transaction (see the module docstring)."""
        d = self.risk.on_equity(self._account_equity(), ts)
        if d is not None and not self.kill_switch.active:
            self.kill_switch.trip("risk", flatten=d.flatten, reason=d.reason)
            self._risk_trip = d

    async def _apply_risk_trip(self) -> None:
        d, self._risk_trip = self._risk_trip, None
        log.error("RISK: kill switch tripped (%s): %s", d.code, d.reason)
        cancelled = flattened = 0
        for r in self.runners:
            cancelled += await maybe_await(r.cancel_entries())
            if d.flatten and r.position()["qty"]:
                await maybe_await(r.flatten("kill"))
                flattened += 1
        self.bus.publish(KillSwitchEvent(True, d.flatten, "risk", d.reason))
        log.warning("risk trip: %d entries cancelled, %d positions flattened", cancelled, flattened)

    async def _status_loop(self) -> None:
        while True:
            await asyncio.sleep(self.status_interval)
            log.info("status: %s", self.status_line())
            s = self.snapshot_status()
            self.bus.publish(s)

    def _account_equity(self) -> float:
        """The runners' equity plus the allocation's unallocated cash (USDT)."""
        eq = sum(r.equity_last for r in self.runners)
        return eq + self.allocator.pool if self.allocator is not None else eq

    def snapshot_status(self) -> EngineStatus:
        eq = self._account_equity()
        return EngineStatus(self.mode, self.stats.candles, self.stats.rate(), eq,
                            bool(self.kill_switch and self.kill_switch.active))

    def status_line(self) -> str:
        s = self.snapshot_status()
        parts = [f"{s.mode}", f"{s.candles} candles ({s.candles_per_s:,.0f}/s)", f"equity {s.equity:,.2f}"]
        for r in self.runners:
            p = r.position()
            pos = f"{p['qty']:.6g}@{p['avg_entry']:.6g} stop {p['stop']:.6g}" if p["qty"] else "flat"
            parts.append(f"{r.name} {r.symbol}: {pos}, {len(r.cycles)} cycles"
                         + ("" if not r.live or r.state == "ready" else f" [{r.state}: {r.state_reason}]"))
        parts.append("KILL SWITCH ON" if s.kill_switch else "kill switch off")
        return " | ".join(parts)

    async def _shutdown(self) -> None:
        left = await self.supervisor.stop()
        if left:
            log.warning("tasks still running at shutdown: %s", ", ".join(left))
        if self.data is not None:
            await self.data.stop()
        for r in self.runners:
            if r.live:
                await r.close()
        for src in self.sources:
            if src.aclose is not None:
                try:
                    await src.aclose()
                except Exception as exc:  # pragma: no cover - best effort
                    log.warning("closing the %s source failed: %s", src.symbol, exc)
        await self._close()

    async def _close(self) -> None:
        if self.store is not None:
            self.store.close()
            self.store = None
        self._lock.release()
        self.bus.publish(HealthEvent("engine", "down", "stopped"))


async def maybe_await(x: Any) -> Any:
    """`x`, awaited when it is awaitable (every runner command is a coroutine; a plain value passes)."""
    if asyncio.iscoroutine(x) or isinstance(x, asyncio.Future):
        return await x
    return x
