"""Paper on the live feed sizes like live (`fee_reserve`, the grid executor's sizing), so every grid level passes
the RiskManager's margin check at 1x; the spec's sizing (replays, backtests) would have its
last level refused once the earlier levels' fees were paid."""

from __future__ import annotations

import math

from core.backtest.loading import load_from_file
from core.config import load_config
from core.data.replay import ReplayFeed
from core.engine.engine import CandleSource, Engine, RunnerSpec
from core.events.bus import RiskRejection
from core.executor.grid_executor import cycle_unit, fee_reserve
from core.model.account import Account
from core.paths import DEFAULT_CONFIG_DIR
from core.risk.limits import margin_required
from core.strategies import registry
from tests.support.shared_data import shared_file


def test_fee_reserve_leaves_margin_for_every_level_and_leverage() -> None:
    fees = load_config(DEFAULT_CONFIG_DIR).risk.fees
    for lev in (1, 2, 3):
        for levels in (1, 2, 3, 5, 8):
            acc = Account(2000.0, lev, fees.maker, fees.taker)
            strat = registry.create("envelope_dca", {"num_levels": levels, "envelope_step": 0.02})
            unit = cycle_unit(strat, acc.initial_capital, acc.leverage, fee_reserve(acc))
            n = strat.num_levels
            # the last level: the cash less the earlier levels' margin and maker fees
            free = acc.initial_capital - (n - 1) * (unit / lev + unit * acc.maker_fee)
            assert margin_required(unit, lev, fees) <= free + 1e-9, (lev, n)
            # and not much is left idle: the reserve is a fee-sized fraction
            assert unit * n / lev >= acc.initial_capital * (1 - 3 * fee_reserve(acc))


def _run(tmp_path, reserve: float) -> tuple[list, list]:
    c = load_from_file(shared_file("binance-spot/BTC_USDT-1h.json.gz"))
    c = c.between(None, int(c.ts[4000]))
    cols = [a.tolist() for a in (c.ts, c.open, c.high, c.low, c.close)]
    src = CandleSource(c.symbol, c.timeframe, lambda after: ReplayFeed.from_candles(c, speed="max",
                                                                                    start_after_ts=after),
                       lambda up_to, n: list(zip(*cols))[-n:], replay=True)
    cfg = load_config(DEFAULT_CONFIG_DIR)
    acc = Account(2000.0, 1.0, cfg.risk.fees.maker, cfg.risk.fees.taker)
    eng = Engine(tmp_path / f"r{reserve}.db", [src], [RunnerSpec("envelope_dca", {}, c.symbol, c.timeframe)], acc,
                 status_interval=0, risk_config=cfg.risk, sizing_reserve=reserve)
    sub = eng.bus.subscribe([RiskRejection])
    import asyncio
    asyncio.run(eng.run())
    rej = []
    while len(sub):
        rej.append(sub.get_nowait())
    return rej, eng.runners[0].cycles


def test_paper_with_the_reserve_passes_the_margin_check(tmp_path) -> None:
    cfg = load_config(DEFAULT_CONFIG_DIR)
    acc = Account(2000.0, 1.0, cfg.risk.fees.maker, cfg.risk.fees.taker)
    with_reserve, cycles = _run(tmp_path, fee_reserve(acc))
    assert not [r for r in with_reserve if "margin" in r.reason]
    assert any(cyc.levels_filled == 3 for cyc in cycles)
    without, _ = _run(tmp_path, 0.0)
    assert [r for r in without if "margin" in r.reason], "the spec's sizing should hit the margin check"
    assert math.isfinite(cycles[-1].pnl)
