"""Grid screen: the rendered ladder shows the engine's level prices, ordered by price with the
current-price marker between the right rows, long and short; narrow and wide layouts."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.app import App

from core.backtest.event_engine import run_event_backtest
from core.backtest.loading import load_from_file
from core.api.local_port import LocalPort
from core.engine.api import EngineAPI
from core.engine.engine import CandleSource, Engine, RunnerSpec
from core.model.account import Account
from core.model.candles import Candles
from tests.support.shared_data import shared_file
from tui.screens.grid import GridScreen
from tui.widgets.ladder import (
    FILLED,
    K_PRICE,
    PLACED,
    GridView,
    Ladder,
    LevelView,
    fmt_price,
    ladder_rows,
    place_rows,
    render_ladder,
)

BTC_1H = "binance-spot/BTC_USDT-1h.json.gz"


class Host(App):
    """A minimal host: pushes one screen, forwards refresh_data like the real app."""

    def __init__(self, screen, api) -> None:
        super().__init__()
        self._screen = screen
        self.api = api

    def on_mount(self) -> None:
        self.push_screen(self._screen)


def _open_position_index(candles: Candles, strategy: str) -> int:
    """Index of a candle at whose close the event backtest holds a position with an unfilled level
    left (a cycle that ended with 2 of 3 levels filled, the candle before its exit)."""
    res = run_event_backtest(candles, strategy, {}, Account())
    ts = candles.ts.tolist()
    for c in res.cycles:
        if c.levels_filled == 2 and c.exit_reason != "end":
            i = ts.index(c.close_time) - 1          # the candle before the exit candle
            if ts[i] > c.open_time:
                return i
    raise AssertionError("no multi-level cycle found")


async def _engine_at(tmp: Path, strategy: str) -> tuple[Engine, EngineAPI]:
    from core.data.replay import ReplayFeed

    full = load_from_file(shared_file(BTC_1H))
    head = full.between(None, int(full.ts[4000]))
    n = _open_position_index(head, strategy)
    candles = full.between(None, int(full.ts[n]) + 1)
    # replay=False: the feed ends without the end-of-data exit, so the position stays open
    src = CandleSource(candles.symbol, candles.timeframe,
                       lambda after: ReplayFeed.from_candles(candles, speed="max", start_after_ts=after),
                       lambda up_to, k: [], replay=False)
    eng = Engine(tmp / f"{strategy}.db", [src], [RunnerSpec(strategy, {}, candles.symbol, candles.timeframe)],
                 Account(), status_interval=0)
    await eng.run()
    assert eng.runners[0].cursor == int(candles.ts[-1])
    return eng, LocalPort(EngineAPI(eng))


def _rendered(screen: GridScreen) -> str:
    return str(screen.query_one(Ladder).render())


@pytest.mark.parametrize("strategy", ["envelope_dca", "envelope_dca_short"])
async def test_grid_screen_shows_the_strategys_levels(tmp_path: Path, strategy: str) -> None:
    eng, api = await _engine_at(tmp_path, strategy)
    runner = eng.runners[0]
    pos = runner.position()
    assert 1 <= pos["levels_filled"] < runner.strategy.num_levels
    screen = GridScreen()
    app = Host(screen, api)
    async with app.run_test(size=(160, 48)) as pilot:
        screen.refresh_data(api)
        await pilot.pause()
        text = _rendered(screen)
        view = screen.view
        assert view.side == runner.strategy.side
        # unfilled levels: the strategy's own quotes; filled ones: the matching engine's fills
        fills = [f for f in runner.book.fills if f.kind == "entry"][-pos["levels_filled"]:]
        for i in range(runner.strategy.num_levels):
            if i < pos["levels_filled"]:
                want = fills[i].price
                assert f"L{i} filled" in text
            else:
                want = runner.strategy.levels[i]
                assert f"L{i} placed" in text
            assert fmt_price(want) in text
            assert view.levels[i].price == pytest.approx(want, rel=0, abs=0)
        assert fmt_price(pos["stop"]) in text and "SL" in text
        assert fmt_price(runner.strategy.take_profit) in text and "TP" in text
        assert fmt_price(pos["avg_entry"]) in text and "AVG" in text
        assert "▶ price" in text
        # order by price, the price marker between the right rows
        rows = screen.query_one(Ladder).rows()
        prices = [r.price for r in rows]
        assert prices == sorted(prices, reverse=True)
        assert [r.row for r in rows] == sorted({r.row for r in rows})        # one item per line
        k = next(i for i, r in enumerate(rows) if r.kind == K_PRICE)
        price = runner.last_close
        assert all(r.price >= price for r in rows[:k]) and all(r.price <= price for r in rows[k + 1:])
        # long: levels below the price, stop below; short: mirrored
        lv_rows = [r for r in rows if r.kind == "level"]
        sl_row = next(r for r in rows if r.kind == "sl")
        if strategy == "envelope_dca":
            assert sl_row.row > lv_rows[-1].row and [r.level for r in lv_rows] == sorted(r.level for r in lv_rows)
        else:
            assert sl_row.row < lv_rows[0].row
            assert [r.level for r in lv_rows] == sorted((r.level for r in lv_rows), reverse=True)
        summary = str(screen.query_one("#grid-summary").render())
        assert "exposure" in summary and "limit" in summary and "next L" in summary and "stop" in summary
        # the last cycles are listed
        assert screen.query_one("#cycles").row_count == min(20, len(runner.cycles))


def _view(side: str, price: float, levels: list[float], filled: int, stop: float | None, tp: float,
          avg: float | None) -> GridView:
    lvs = [LevelView(i, FILLED if i < filled else PLACED, p, 1.0, p if i < filled else None,
                     0.0 if i < filled else None) for i, p in enumerate(levels)]
    return GridView("X/USDT", "envelope_dca", "1h", side, price, lvs, tp, stop, avg, qty=float(filled))


@pytest.mark.parametrize("height", [5, 12, 40])
def test_ladder_long_and_short_order_and_marker(height: int) -> None:
    long = _view("long", 95.0, [97.0, 94.0, 91.0], 1, 77.6, 100.0, 97.0)
    rows = ladder_rows(long, height)
    kinds = [(r.kind, r.level) for r in rows]
    assert kinds == [("tp", -1), ("level", 0), ("avg", -1), ("price", -1), ("level", 1), ("level", 2), ("sl", -1)] \
        or kinds == [("tp", -1), ("avg", -1), ("level", 0), ("price", -1), ("level", 1), ("level", 2), ("sl", -1)]
    assert [r.row for r in rows] == sorted(set(r.row for r in rows))
    assert max(r.row for r in rows) <= max(height, len(rows)) - 1
    short = _view("short", 105.0, [103.0, 106.0, 109.0], 1, 123.6, 100.0, 103.0)
    rows = ladder_rows(short, height)
    kinds = [(r.kind, r.level) for r in rows]
    assert kinds[0] == ("sl", -1) and kinds[-1] == ("tp", -1)
    i = kinds.index(("price", -1))
    assert kinds[i - 1] == ("level", 1) and ("level", 0) in kinds[i + 1:]
    text = str(render_ladder(short, height))
    assert "▶ price" in text and "L0 filled" in text and "L2 placed" in text and "SL" in text


def test_place_rows_keeps_colliding_items_readable() -> None:
    assert place_rows([100.0, 100.0, 100.0], 10) == [0, 1, 2]
    rows = place_rows([200.0, 100.0, 100.0, 100.0], 10)
    assert rows == [0, 7, 8, 9]
    rows = place_rows([200.0, 199.99, 100.0], 10)
    assert rows == [0, 1, 9]
    assert place_rows([3.0, 2.0, 1.0], 2) == [0, 1, 2]


async def test_grid_screen_narrow_and_wide_layouts(tmp_path: Path) -> None:
    eng, api = await _engine_at(tmp_path, "envelope_dca")
    for size, narrow in (((80, 24), True), ((200, 60), False)):
        screen = GridScreen()
        app = Host(screen, api)
        async with app.run_test(size=size) as pilot:
            screen.refresh_data(api)
            await pilot.pause()
            assert screen.has_class("-narrow") is narrow
            chart = screen.query_one("#chart")
            assert chart.display is (not narrow)
            text = _rendered(screen)
            assert "▶ price" in text and "L0 filled" in text
            if not narrow:
                assert chart.data is not None and len(chart.data.close) == 120
                assert any(k == "entry" for _, _, k in chart.data.fills)
            await pilot.press("n")            # one symbol: stays on it
            assert screen.symbol == "BTC/USDT"


def test_the_summary_says_when_the_runner_is_halted() -> None:
    """A runner halted for want of a stop is said on the Grid screen, not only in the logs."""
    from tui.screens.grid import summary_text
    from tui.widgets.ladder import GridView

    v = GridView("BTC/USDT:USDT", "envelope_dca", "1h", "long", 40_000.0, qty=0.5, avg_entry=41_000.0)
    assert "HALTED" not in summary_text(v)
    v.halted = "halted: unprotected: no stop at the venue"
    assert "HALTED: UNPROTECTED: NO STOP AT THE VENUE: entries cancelled and refused, stop kept" in summary_text(v)
