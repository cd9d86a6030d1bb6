"""Building an Engine from the validated config: the one place that assembles a run.

    options = RunOptions(db=Path("radar.db"), replay=(Path("BTC_USDT-1h.json.gz"),))
    engine = build_engine(load_config(config_dir), options)      # -> core.engine.engine.Engine

`radar run` (`core.cli.run_cmd`), the tests and the benchmarks all build their engines here;
the CLI only parses arguments and prints. `plan_engine` does the work and returns an
`EnginePlan` (what will run: sources, runners, account, risk, live setup, database), which
`build_engine` turns into the Engine; the CLI keeps the plan to print the live banner and the
report. Nothing here imports the console (`tui/`).

* Strategies: the enabled, implemented strategies of strategies.yaml (`grid_only`: the grid
  ones) with their params (per-symbol overrides); live: the enabled grid strategies with
  `live_eligible: true`, on the USDT-M perpetuals of assets.yaml.
* Sources: each replayed freqtrade file (symbol and timeframe from its name, candles limited to
  [start_ms, end_ms) when given), or the first timeframe of every asset through the public
  ccxt.pro feed of the first exchange; funding rates beside a replayed futures file, or stored,
  for the strategies that need them (a strategy without them is skipped, logged); on the live
  feed the stored rates are refreshed after candle closes (`funding_recorder`).
* Capital (`account_from_config`): on the live feed (paper or live) one account trades every
  runner, so each runner gets an equal share of risk.yaml's initial_capital; a replay gives every
  runner the whole initial_capital, like `radar backtest`, so its report equals the backtest's.
  With a risk.yaml `allocation:` policy other than equal (`allocation_shared`) the runners share
  one account in every mode, a replay too (equal shares to start, then the policy's targets;
  `core.risk.allocation_runtime`); `equal` or no section keeps the split above.
* Risk: "on" checks entries and trips the kill switch on the loss limits; "auto" is on for the
  live feed and off for a replay (its report must equal the backtest); "off" never.
* Sizing: paper on the live feed keeps the live ledger's fee reserve out of each cycle's sizing
  (`fee_reserve`); a replay sizes as the backtest (0).
* Database: `options.db`; with `options.fresh` (replays only) a NEW database file beside it,
  named for the run (`fresh_db_path`), the old one left untouched.

Errors: `UsageError` (exit 2) for options that do not go together, nothing to run, bad dates
or an empty range; `ConfigError` / `DataError` from the config and the data files.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from core.errors import DataError, RadarError, UsageError

log = logging.getLogger("core.engine.assembly")

#: Environment variables holding the Bitget API keys of `--live`.
LIVE_KEYS = ("BITGET_API_KEY", "BITGET_API_SECRET", "BITGET_API_PASSPHRASE")
#: Risk modes of `RunOptions.risk`.
RISK_MODES = ("on", "off", "auto")

_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


# ------------------------------------------------------------------------------ options
@dataclass(frozen=True)
class RunOptions:
    """How to run the engine (what `radar run`'s flags say); validated when built.

    Attributes:
        db: the SQLite database of the trading state (and lock).
        replay: freqtrade-layout candle files to replay; empty: the live feed.
        speed: replay speed in market seconds per wall second (> 0), or "max".
        live: trade the exchange (Bitget) instead of paper; not with `replay`.
        adopt_history: with `live`, adopt this installation's orders the database does not know.
        risk: "on", "off" or "auto" (on for the live feed, off for a replay).
        status_interval: seconds between status lines (0: none).
        fresh: replay into a new database beside `db` (`fresh_db_path`), leaving `db` untouched.
        start_ms, end_ms: replay only the candles opening in [start_ms, end_ms) (ms UTC; None: unbounded).
        timeframe: with `replay`, resample every replayed file into this coarser timeframe
            (`core.data.aggregate.resample_candles`); None: the files' own.
        grid_only: run only the grid strategies among the enabled ones.
        secrets: a `core.config.secrets.Secrets` for `live` (None: loaded from the environment / .env).

    Raises:
        UsageError: options that do not go together or a bad value (the message names the flag).
    """

    db: Path
    replay: tuple[Path, ...] = ()
    speed: float | str = "max"
    live: bool = False
    adopt_history: bool = False
    risk: str = "auto"
    status_interval: float = 10.0
    fresh: bool = False
    start_ms: int | None = None
    end_ms: int | None = None
    timeframe: str | None = None
    grid_only: bool = False
    secrets: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "db", Path(self.db))
        object.__setattr__(self, "replay", tuple(Path(p) for p in self.replay))
        if self.risk not in RISK_MODES:
            raise UsageError(f"--risk {self.risk!r}: expected one of {', '.join(RISK_MODES)}")
        if self.speed != "max" and not (isinstance(self.speed, (int, float)) and not isinstance(self.speed, bool)
                                        and self.speed > 0):
            raise UsageError(f"--speed {self.speed!r}: expected a positive number or max")
        if not self.status_interval >= 0:
            raise UsageError(f"--status-interval {self.status_interval!r}: expected seconds >= 0")
        if self.adopt_history and not self.live:
            raise UsageError("--adopt-history adopts an exchange's orders and position: it goes with --live")
        if self.live and self.replay:
            raise UsageError("--live trades the exchange's live feed: it cannot be combined with --replay")
        if self.fresh and not self.replay:
            raise UsageError("--fresh starts a replay over in a new database: it goes with --replay")
        if self.timeframe is not None and not self.replay:
            raise UsageError("--timeframe resamples the replayed files: it goes with --replay")
        if (self.start_ms is not None or self.end_ms is not None) and not self.replay:
            raise UsageError("--from/--to limit the replayed candles: they go with --replay")
        if self.start_ms is not None and self.end_ms is not None and self.end_ms <= self.start_ms:
            raise UsageError(f"--to ({_day(self.end_ms)}) must be after --from ({_day(self.start_ms)}): "
                             "the range [from, to) is empty")


def parse_speed(text: str) -> float | str:
    """`--speed`: "max" or a positive number of market seconds per wall second.

    Raises:
        UsageError: anything else.
    """
    if text == "max":
        return "max"
    try:
        v = float(text)
    except ValueError:
        raise UsageError(f"--speed {text!r}: expected a positive number or max") from None
    if not 0 < v < float("inf"):
        raise UsageError(f"--speed {text!r}: expected a positive number or max")
    return v


def parse_utc_date(text: str, flag: str) -> int:
    """ms UTC of midnight UTC of the day `text` (YYYY-MM-DD).

    Args:
        text: the date, e.g. "2021-03-01". flag: the option it came from, for the message ("--from").

    Raises:
        UsageError: not a YYYY-MM-DD date, or no such day (e.g. 2021-02-30); names the flag.
    """
    s = str(text).strip()
    if not _DATE_RE.match(s):
        raise UsageError(f"{flag} {text!r}: expected a date YYYY-MM-DD (UTC), e.g. 2021-03-01")
    try:
        day = datetime.strptime(s, "%Y-%m-%d").replace(tzinfo=timezone.utc)
    except ValueError:
        raise UsageError(f"{flag} {text!r}: no such day (expected a date YYYY-MM-DD, UTC)") from None
    return int(day.timestamp() * 1000)


def _day(ts_ms: int | None) -> str:
    if ts_ms is None:
        return "-"
    return datetime.fromtimestamp(ts_ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d")


def _iso(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def fresh_db_path(db: Path, now_ms: int | None = None) -> Path:
    """A new database file beside `db` for a fresh replay: `<stem>-replay-<YYYYmmddTHHMMSSZ><suffix>`
    (e.g. radar.db -> radar-replay-20240501T120000Z.db, the UTC time of `now_ms`, default now),
    with "-2", "-3", ... added when that name is taken (by a file or its engine lock)."""
    db = Path(db)
    now_ms = int(time.time() * 1000) if now_ms is None else int(now_ms)
    stamp = datetime.fromtimestamp(now_ms / 1000, tz=timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    suffix = db.suffix or ".db"
    base = f"{db.stem}-replay-{stamp}"
    k = 1
    while True:
        cand = db.with_name(f"{base}{'' if k == 1 else f'-{k}'}{suffix}")
        if not any(Path(str(cand) + ext).exists() for ext in ("", "-wal", ".engine.lock")):
            return cand
        k += 1


# ------------------------------------------------------------------------------ account
def account_from_config(cfg: Any, *, share: int = 1):
    """The trading account of risk.yaml: initial capital (USDT) / `share`, leverage, maker and
    taker fees (fractions of the notional).

    Args:
        cfg: a `RadarConfig` (or anything with `.risk`, a `RiskConfig`).
        share: how many runners share the account (>= 1): each gets this fraction of the capital.

    Raises:
        ValueError: share < 1.
    """
    from core.model.account import Account

    if isinstance(share, bool) or not isinstance(share, int) or share < 1:
        raise ValueError(f"share must be an integer >= 1 (runners sharing the capital), got {share!r}")
    risk = cfg.risk
    return Account(initial_capital=float(risk.account.initial_capital) / share,
                   leverage=float(risk.account.leverage), maker_fee=float(risk.fees.maker),
                   taker_fee=float(risk.fees.taker))


def allocation_shared(cfg: Any) -> bool:
    """True when risk.yaml's `allocation:` policy moves capital between the runners (any policy
    but equal): the runners then share ONE account of initial_capital in every mode, a replay
    included. Absent or equal: today's split (a replay: the whole capital per runner)."""
    alloc = getattr(cfg.risk, "allocation", None)
    return alloc is not None and alloc.policy != "equal"


# ------------------------------------------------------------------------------ sources
def replay_source(path: Path, speed: float | str = "max", start_ms: int | None = None,
                  end_ms: int | None = None, timeframe: str | None = None):
    """(CandleSource, Candles) replaying a freqtrade file (every row validated when loaded),
    resampled into `timeframe` when given and coarser than the file's (`--timeframe`: whole
    UTC-aligned buckets only), limited to the candles opening in [start_ms, end_ms) (ms UTC).

    Raises:
        DataError: unreadable or invalid file.
        UsageError: no candle of the file opens in [start_ms, end_ms) (names --from/--to and the
            file's first and last open times).
    """
    import numpy as np

    from core.backtest.loading import load_from_file
    from core.data.replay import ReplayFeed
    from core.engine.engine import CandleSource

    candles = load_from_file(path, resample=timeframe)
    if start_ms is not None or end_ms is not None:
        full = candles
        candles = full.between(start_ms, end_ms)
        if len(candles) == 0:
            raise UsageError(f"--from {_day(start_ms)} --to {_day(end_ms)}: no candle of {path} opens in "
                             f"[{_day(start_ms)}, {_day(end_ms)}) UTC (the file covers {_iso(int(full.ts[0]))} "
                             f"to {_iso(int(full.ts[-1]))}); nothing to replay")
    ts_arr = candles.ts
    cols = None

    def history(up_to: int | None, n: int):
        nonlocal cols
        if cols is None:
            cols = [a.tolist() for a in (candles.ts, candles.open, candles.high, candles.low, candles.close)]
        hi = len(cols[0]) if up_to is None else int(np.searchsorted(ts_arr, up_to, "right"))
        lo = max(0, hi - n)
        return zip(*(c[lo:hi] for c in cols))

    def make_feed(after: int | None):
        return ReplayFeed.from_candles(candles, speed=speed, start_after_ts=after)

    return CandleSource(candles.symbol, candles.timeframe, make_feed, history, replay=True), candles


def live_sources(cfg: Any, db_path: Path) -> list:
    """CandleSources of every asset (first timeframe) on the first exchange of exchanges.yaml,
    public ccxt.pro feeds; history from the candle store of `db_path`.

    Raises:
        RadarError: ccxt.pro is not installed. UsageError: no exchange, or ccxt.pro does not know it.
    """
    from core.data.engine import market_of_symbol
    from core.engine.engine import CandleSource

    try:
        import ccxt.pro as ccxtpro
    except ImportError as exc:
        raise RadarError(f"the live feed needs ccxt.pro: {exc}") from exc
    from core.data.live_feed import LiveFeed, TickerFeed

    if not cfg.exchanges:
        raise UsageError("exchanges.yaml has no exchange: cannot run on the live feed (use --replay PATH)")
    acc = next(iter(cfg.exchanges.values()))
    cls = getattr(ccxtpro, acc.id, None)
    if cls is None:
        raise UsageError(f"ccxt.pro has no exchange {acc.id!r}")
    exchange = cls({"enableRateLimit": True, "timeout": acc.timeouts.request_ms})
    out = []
    for asset in cfg.assets:
        symbol, tf = asset.symbol, asset.timeframes[0]

        def history(up_to, n, symbol=symbol, tf=tf):
            from core.storage.candle_store import load_candles
            from core.storage.db import open_sync

            conn = open_sync(db_path)
            try:
                c = load_candles(conn, symbol, market_of_symbol(symbol), tf, None,
                                 None if up_to is None else up_to + 1)
            except DataError:
                return []
            finally:
                conn.close()
            rows = list(zip(c.ts.tolist(), c.open.tolist(), c.high.tolist(), c.low.tolist(), c.close.tolist()))
            return rows[-n:]

        out.append(CandleSource(symbol, tf, lambda after, s=symbol, t=tf: LiveFeed(exchange, s, t), history,
                                replay=False, store_db=db_path, aclose=exchange.close if not out else None,
                                make_ticker_feed=lambda s=symbol: TickerFeed(exchange, s)))
    return out


def enabled_strategies(cfg: Any, grid_only: bool = False) -> list[str]:
    """The enabled, implemented strategies of strategies.yaml (grid ones only with `grid_only`),
    in registry order; the others are skipped with a warning."""
    from core.strategies import registry
    from core.strategies.base import GridStrategy

    out = []
    for name in cfg.enabled_strategies():
        if name not in registry.STRATEGIES:
            log.warning("strategy %s is enabled but not implemented yet: skipped", name)
            continue
        if grid_only and not isinstance(registry.create(name, {}), GridStrategy):
            log.warning("strategy %s is a single-position strategy: it trades on paper only so far: skipped", name)
            continue
        out.append(name)
    return out


def needs_funding(name: str) -> bool:
    """True when strategy `name` trades on the perpetual's funding rates."""
    from core.strategies import registry

    return bool(getattr(registry.create(name, {}), "NEEDS_FUNDING", False))


def funding_beside(path: Path):
    """(ts ms UTC, rate) arrays of the funding-rate file beside a futures candle file (freqtrade
    layout: BTC_USDT_USDT-5m-futures.json.gz -> BTC_USDT_USDT-8h-funding_rate.json.gz), or None."""
    from core.data.freqtrade import read_data_file

    stem = path.name.split("-", 1)[0]
    for cand in sorted(path.parent.glob(f"{stem}-*-funding_rate.json*")):
        spec, series = read_data_file(cand)
        if spec.kind == "funding":
            return series.ts, series.rate
    return None


def stored_funding(db_path: Path, symbol: str):
    """(ts ms UTC, rate) arrays of the funding rates stored for `symbol` in `db_path`, or None."""
    from core.storage.candle_store import load_funding_rates

    return _stored_series(db_path, symbol, load_funding_rates)


def _stored_series(db_path: Path, symbol: str, load: Any):
    """`load(conn, symbol)` -> (ts, values) on a connection to `db_path` opened for the call; the
    pair, or None when the database does not exist or holds no row for `symbol`."""
    if not Path(db_path).exists():
        return None
    from core.storage.db import open_sync

    conn = open_sync(db_path)
    try:
        ts, values = load(conn, symbol)
    finally:
        conn.close()
    return (ts, values) if len(ts) else None


def needs_open_interest(name: str) -> bool:
    """True when strategy `name` trades on the perpetual's open interest (`liquidation`)."""
    from core.strategies import registry

    return bool(getattr(registry.STRATEGIES.get(name), "NEEDS_OPEN_INTEREST", False))


def stored_open_interest(db_path: Path, symbol: str):
    """(ts ms UTC, oi) arrays of the open interest stored for `symbol` in `db_path`, or None."""
    from core.storage.open_interest_store import load_open_interest

    return _stored_series(db_path, symbol, load_open_interest)


def open_interest_recorder(cfg: Any, db_path: Path, symbol: str, timeframe: str):
    """A `core.data.liquidation_stream.OpenInterestRecorder` of `symbol` on the first exchange of
    exchanges.yaml (public ccxt REST client, no keys), storing into `db_path`, warmed up with the
    open interest stored there; None when ccxt offers no open-interest snapshot for it."""
    import ccxt.async_support as ccxt_async

    from core.data.liquidation_stream import OpenInterestRecorder
    from core.storage.db import open_sync

    acc = next(iter(cfg.exchanges.values()))
    cls = getattr(ccxt_async, acc.id, None)
    if cls is None:
        return None
    options = {"fetchMarkets": {"types": ["swap"]}, "defaultType": "swap", "uta": False} if acc.id == "bitget" else {}
    exchange = cls({"enableRateLimit": True, "timeout": acc.timeouts.request_ms, "options": options})
    if not exchange.has.get("fetchOpenInterest"):
        return None
    return OpenInterestRecorder(exchange, symbol, timeframe, lambda: open_sync(db_path),
                                stored_open_interest(db_path, symbol))


def risk_groups(cfg: Any) -> dict[str, str]:
    """symbol -> correlation group of assets.yaml (`cfg.assets`: the list of assets)."""
    from types import SimpleNamespace

    from core.risk import groups_from_assets

    assets = cfg.assets
    return groups_from_assets(assets if hasattr(assets, "assets") else SimpleNamespace(assets=list(assets)))


# ------------------------------------------------------------------------------ live
def live_plan(cfg: Any, secrets: Any) -> dict:
    """What `--live` would trade: {exchange, strategies, symbols, missing_keys}. The strategies
    are the enabled grid strategies with live_eligible: true; the symbols the USDT-M
    perpetuals of assets.yaml (spot assets are not traded live); `secrets` a
    `core.config.secrets.Secrets` (environment and .env). Checks nothing: see `check_live_plan`."""
    have = (secrets.bitget_api_key, secrets.bitget_api_secret, secrets.bitget_api_passphrase)
    missing = [k for k, v in zip(LIVE_KEYS, have) if v is None or not v.get_secret_value()]
    grid = set(enabled_strategies(cfg, grid_only=True))
    strategies = [n for n, s in cfg.strategies.items() if n in grid and getattr(s, "live_eligible", False)]
    symbols = [a.symbol for a in cfg.assets if a.symbol.endswith(":USDT")]
    acc = next(iter(cfg.exchanges.values()), None)
    return {"exchange": acc, "strategies": strategies, "symbols": symbols, "missing_keys": missing}


def check_live_plan(plan: dict) -> dict:
    """`plan` (of `live_plan`) when it can trade; nothing is started otherwise.

    Raises:
        UsageError: missing API keys, no live_eligible grid strategy, no perpetual or no exchange.
    """
    if plan["missing_keys"]:
        raise UsageError(f"--live needs the API keys in the environment or .env: {', '.join(plan['missing_keys'])} "
                         "not set; nothing was started")
    if not plan["strategies"]:
        raise UsageError("--live: no enabled grid strategy has live_eligible: true in strategies.yaml; "
                         "nothing was started")
    if not plan["symbols"] or plan["exchange"] is None:
        raise UsageError("--live: assets.yaml has no USDT-M perpetual (symbol like BTC/USDT:USDT) or "
                         "exchanges.yaml no exchange; nothing was started")
    return plan


def live_banner_lines(plan: dict, capital: float) -> list[str]:
    """The lines of the live-trading banner: account, strategies, symbols, capital (USDT)."""
    acc = plan["exchange"]
    account = (f"  account: {acc.id} {'DEMO/SANDBOX' if acc.sandbox else 'MAINNET - REAL MONEY'}, uta {acc.uta}, "
               f"{acc.margin_mode} margin, one-way, client id prefix {acc.client_order_prefix}")
    return ["LIVE TRADING (--live): REAL ORDERS ON THE EXCHANGE", account,
            f"  strategies (live_eligible): {', '.join(plan['strategies'])}",
            f"  symbols: {', '.join(plan['symbols'])}",
            f"  capital: {capital:,.2f} USDT split over the runners (capped by the balance)"]


def live_setup(cfg: Any, secrets: Any, plan: dict, leverage: int, adopt_history: bool = False):
    """The LiveSetup of a live run: one ccxt bitget client (keys of `secrets`) shared by the
    gateways of every symbol, behind one circuit breaker; stop settings of risk.yaml."""
    from core.engine.engine import LiveSetup
    from core.health.breaker import CircuitBreaker
    from core.venues.bitget.gateway import CcxtGateway, exchange_from_secrets

    acc = plan["exchange"]
    exchange = exchange_from_secrets(acc, secrets)
    breaker = CircuitBreaker(f"{acc.id}-private", failure_threshold=5, cooldown_s=30.0, max_cooldown_s=300.0)
    stops = cfg.risk.stops

    def gateway(symbol: str):
        return CcxtGateway(acc, symbol, exchange, leverage=leverage, breaker=breaker)

    return LiveSetup(gateway, acc.client_order_prefix, stop_retries=int(stops.placement_retries),
                     recheck_interval_s=float(stops.recheck_interval_s),
                     unprotected_grace_s=float(stops.unprotected_grace_s), adopt_history=adopt_history)


# ------------------------------------------------------------------------------ the plan
@dataclass
class EnginePlan:
    """What a run will be, before the Engine exists (`plan_engine`).

    Attributes:
        db: the database the engine uses (a new file with `fresh`).
        previous_db: with `fresh`, the database left untouched (else None).
        sources: CandleSources. specs: RunnerSpecs (strategy, params, symbol, timeframe).
        account: the account of every runner (capital USDT: whole on a replay, a share live).
        risk_on: pre-trade checks and loss-limit trips on.
        live_plan: the `live_plan` dict of a live run, else None. live: its LiveSetup.
        sizing_reserve: fraction of the cash kept out of each cycle's sizing.
        replay: the run replays files (it ends at the end of the data).
        speed: the replay speed given to the sources.
        id_prefix: client order id prefix.
    """

    db: Path
    previous_db: Path | None
    sources: list
    specs: list
    account: Any
    risk_on: bool
    live_plan: dict | None
    live: Any
    sizing_reserve: float
    replay: bool
    speed: float | str
    id_prefix: str = "rd"
    status_interval: float = 10.0
    config: Any = field(default=None, repr=False)


def plan_engine(cfg: Any, options: RunOptions) -> EnginePlan:
    """Resolve `options` against the config: strategies, sources, runners, account, risk, live
    setup and database (see the module docstring). Reads the data files; writes nothing.

    Raises:
        UsageError: nothing to run (no enabled strategy, no strategy runs on the data), two
            replayed files of one series, an empty --from/--to range, or a live plan that cannot
            trade (`check_live_plan`). DataError: a bad data file. ConfigError: bad secrets.
    """
    from core.config import strategy_params
    from core.engine.engine import RunnerSpec
    from core.executor.grid_executor import fee_reserve

    replay = bool(options.replay)
    plan = secrets = None
    if options.live:
        secrets = options.secrets
        if secrets is None:
            from core.config import load_secrets

            secrets = load_secrets()
        plan = check_live_plan(live_plan(cfg, secrets))
    strategies = plan["strategies"] if plan else enabled_strategies(cfg, grid_only=options.grid_only)
    if not strategies:
        raise UsageError("no enabled strategy in strategies.yaml: nothing to run")
    db = Path(options.db)
    previous = None
    if options.fresh:
        previous, db = db, fresh_db_path(db)
    if plan:
        sources = [s for s in live_sources(cfg, db) if s.symbol in plan["symbols"]]
    elif replay:
        sources = []
        sources = [replay_source(p, options.speed, options.start_ms, options.end_ms, options.timeframe)[0]
                   for p in options.replay]
        if any(needs_funding(n) for n in strategies):
            for src, path in zip(sources, options.replay):
                src.funding = funding_beside(path) if src.symbol.endswith(":USDT") else None
        keys = [(s.symbol, s.timeframe) for s in sources]
        if len(set(keys)) != len(keys):
            raise UsageError("--replay: two files of the same symbol and timeframe")
    else:
        sources = live_sources(cfg, db)
    if not replay and any(needs_funding(n) for n in strategies):
        for src in sources:     # the stored rates, refreshed after candle closes (FundingRecorder)
            src.funding = stored_funding(db, src.symbol) if src.symbol.endswith(":USDT") else None
            if src.funding is not None:
                rec = funding_recorder(cfg, db, src.symbol, src.timeframe, src.funding)
                if rec is not None:
                    src.funding = rec
                    src.funding_recorder = rec
                else:
                    log.warning("%s: the exchange offers no funding-rate history through ccxt: the stored rates "
                                "are not refreshed (funding strategies stop 16 h after the last one)", src.symbol)
    if any(needs_open_interest(n) for n in strategies):
        for src in sources:     # replay: the stored series; live feed: recorded at every candle close
            src.open_interest = None
            if not src.symbol.endswith(":USDT"):
                continue
            if replay:
                src.open_interest = stored_open_interest(db, src.symbol)
            else:
                rec = open_interest_recorder(cfg, db, src.symbol, src.timeframe)
                if rec is not None:
                    src.open_interest = rec.value_at
                    src.oi_recorder = rec
    specs = []
    for src in sources:
        for name in strategies:
            if needs_open_interest(name) and getattr(src, "open_interest", None) is None:
                log.warning("%s on %s skipped: it needs the perpetual's open interest (%s)", name, src.symbol,
                            "none stored in the --db: radar data download --open-interest" if replay
                            else "the exchange offers no open-interest snapshot through ccxt")
                continue
            if needs_funding(name) and getattr(src, "funding", None) is None:
                log.warning("%s on %s skipped: it needs the perpetual's funding rates (none %s)", name, src.symbol,
                            "beside the replayed file" if replay else "stored: radar data download --funding")
                continue
            specs.append(RunnerSpec(name, strategy_params(cfg, name, src.symbol).model_dump(), src.symbol,
                                    src.timeframe))
    if not specs:
        raise UsageError("no strategy can run on the given data (see the warnings above)")
    alloc = getattr(cfg.risk, "allocation", None)
    if replay and not allocation_shared(cfg):
        account = account_from_config(cfg)
    else:
        # one account trades every runner: each gets an equal share of the capital (a shared
        # allocation policy then moves it to its targets, in a replay too)
        account = account_from_config(cfg, share=len(specs))
        log.info("capital %.2f USDT split over %d runner(s): %.2f each%s", cfg.risk.account.initial_capital,
                 len(specs), account.initial_capital,
                 f" to start; allocation policy {alloc.policy} sets the targets" if allocation_shared(cfg) else "")
    risk_on = options.risk == "on" or (options.risk == "auto" and not replay)
    if not risk_on:
        log.warning("risk checks are OFF for this run (%s): entries are not checked against risk.yaml limits "
                    "and the loss limits do not trip the kill switch", "--risk off" if options.risk == "off"
                    else "a replay; --risk on to apply them")
    live = None
    if plan:
        live = live_setup(cfg, secrets, plan, int(cfg.risk.account.leverage), adopt_history=options.adopt_history)
    return EnginePlan(db=db, previous_db=previous, sources=sources, specs=specs, account=account, risk_on=risk_on,
                      live_plan=plan, live=live, sizing_reserve=0.0 if replay else fee_reserve(account),
                      replay=replay, speed=options.speed,
                      id_prefix=plan["exchange"].client_order_prefix if plan else "rd",
                      status_interval=options.status_interval, config=cfg)


def build_engine(cfg: Any, options: RunOptions, *, plan: EnginePlan | None = None):
    """The Engine of `options` on the config `cfg` (a `RadarConfig`): `plan_engine`, then the
    Engine with its sources' replay speed set and the config's health thresholds attached.

    Args:
        cfg: the validated config (`core.config.load_config`).
        options: the run's options.
        plan: the plan already made by `plan_engine(cfg, options)` (the CLI keeps it), or None.

    Returns:
        a `core.engine.engine.Engine`, not started (database untouched until `start`/`acquire_lock`).

    Raises:
        see `plan_engine`.
    """
    from core.engine.engine import Engine

    plan = plan if plan is not None else plan_engine(cfg, options)
    engine = Engine(plan.db, plan.sources, plan.specs, plan.account, status_interval=plan.status_interval,
                    risk_config=cfg.risk if plan.risk_on else None,
                    risk_groups=risk_groups(cfg) if plan.risk_on else None,
                    mode="live" if plan.live_plan else "paper", live=plan.live, id_prefix=plan.id_prefix,
                    sizing_reserve=plan.sizing_reserve, health=getattr(cfg, "health", None),
                    allocation=getattr(cfg.risk, "allocation", None), allocation_shared=allocation_shared(cfg))
    for src in plan.sources:
        src.speed = plan.speed if plan.replay else None
        for attr in ("oi_recorder", "funding_recorder"):
            rec = getattr(src, attr, None)
            if rec is not None:
                _attach_recorder(engine, src, rec)
    return engine


def _attach_recorder(engine: Any, src: Any, rec: Any) -> None:
    """Poll `rec` (an OpenInterestRecorder or a FundingRecorder) after each candle of its symbol (a
    task: the poll never holds the candle loop; the next candle comes a timeframe later) and close
    its exchange at shutdown."""
    import asyncio

    tasks: set = set()

    def after_candle(r: Any, ts: int, *_: Any) -> None:
        if r.symbol == rec.symbol and getattr(r, "timeframe", None) == src.timeframe:
            task = asyncio.get_running_loop().create_task(rec.on_candle_closed(ts))
            tasks.add(task)
            task.add_done_callback(polled)

    def polled(task: Any) -> None:
        tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:     # e.g. storing the sample failed
            log.critical("%s: the %s poll failed: %r", rec.symbol, type(rec).__name__, task.exception())

    engine.candle_hooks.append(after_candle)
    previous = src.aclose

    async def aclose() -> None:
        for task in list(tasks):
            task.cancel()
        try:
            if previous is not None:
                await previous()
        finally:
            await rec.exchange.close()
            if isinstance(rec.conn, sqlite3.Connection):
                rec.conn.close()

    src.aclose = aclose


def funding_recorder(cfg: Any, db_path: Path, symbol: str, timeframe: str, initial: Any):
    """A `core.data.funding_stream.FundingRecorder` of `symbol` on the first exchange of
    exchanges.yaml (public ccxt REST client, no keys), storing into `db_path`, warmed up with
    `initial` ((ts, rate) stored there); None when ccxt offers no funding-rate history for it."""
    import ccxt.async_support as ccxt_async

    from core.data.funding_stream import FundingRecorder
    from core.storage.db import open_sync

    acc = next(iter(cfg.exchanges.values()))
    cls = getattr(ccxt_async, acc.id, None)
    if cls is None:
        return None
    options = {"fetchMarkets": {"types": ["swap"]}, "defaultType": "swap", "uta": False} if acc.id == "bitget" else {}
    exchange = cls({"enableRateLimit": True, "timeout": acc.timeouts.request_ms, "options": options})
    if not exchange.has.get("fetchFundingRateHistory"):
        return None
    return FundingRecorder(exchange, symbol, timeframe, lambda: open_sync(db_path), initial)


def replay_complete_at(engine: Any) -> int | None:
    """After a replay run: the open time (ms UTC) of the last candle, when the database had
    replayed everything already (the run processed no candle and resumed after a cursor); None
    otherwise (a new or partly replayed database, or not a finished replay)."""
    if not getattr(engine, "finished", False) or engine.stats.candles:
        return None
    resumed = getattr(engine, "resumed_after", None) or {}
    if not resumed:
        return None
    return max(resumed.values())
