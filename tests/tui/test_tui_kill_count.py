"""`K` names the entry orders it cancels: counted from each runner's resting orders, and kept
current while the confirmation is open (the engine keeps trading meanwhile), so the number
the operator confirms is the number cancelled."""

from __future__ import annotations

from core.events.bus import CandleEvent
from tests.tui.test_tui_shell import FakeAPI, make_app, settle
from tui.widgets.confirm import ConfirmScreen


class WarmingAPI(FakeAPI):
    """A FakeAPI whose runners rest no entry order until `warm` (the warm-up of a replay's
    first candles), then two each (and a take-profit); `kill` cancels what rests."""

    def __init__(self) -> None:
        super().__init__(with_position=False)
        self.warm = False

    def _grid(self, symbol: str) -> dict:
        g = super()._grid(symbol)
        g["open_orders"] = [] if self.kill_active or not self.warm else [
            {"client_id": f"rd-{symbol}-L{i}", "purpose": "entry", "level": i, "price": 90.0 - i} for i in (1, 2)
        ] + [{"client_id": f"rd-{symbol}-t", "purpose": "take_profit", "level": -1, "price": 101.0}]
        return g

    async def kill(self, actor: str, flatten: bool = False, reason: str = "command") -> dict:
        resting = sum(1 for s in ("BTC/USDT", "ETH/USDT", "DOGE/USDT")
                      for o in self._grid(s)["open_orders"] if o["purpose"] == "entry")
        res = await super().kill(actor, flatten, reason)
        return {**res, "cancelled_entries": resting}


async def test_kill_confirmation_counts_the_orders_resting_when_confirmed() -> None:
    api = WarmingAPI()
    app = make_app(api)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await pilot.press("K")
        await settle(pilot)
        dialog = app.screen
        assert isinstance(dialog, ConfirmScreen)
        assert "cancel the 0 pending entry order(s)" in dialog.message
        api.warm = True                                   # the engine places its entries meanwhile
        api.bus.publish(CandleEvent("BTC/USDT", "1h", 1, 1, 2, 0.5, 1.5))
        await settle(pilot)
        app.refresh_now()                                 # the console's next repaint
        await settle(pilot)
        assert app.screen is dialog
        assert "cancel the 6 pending entry order(s)" in dialog.message
        assert "cancel the 6 pending" in str(dialog.query_one("#message").render())
        await pilot.press("y")
        await settle(pilot, 5)
        assert api.kills == [("console:test", False)]
        said = [str(n.message) for n in app._notifications]
        assert any("KILL SWITCH ON: 6 entry order(s) cancelled" in m for m in said), said


def test_resting_entries_counts_the_entry_orders_of_the_snapshot_view() -> None:
    from core.api.local_port import LocalPort
    from tui.confirmations import resting_entries

    api = WarmingAPI()
    port = LocalPort(api)
    assert resting_entries(port) == (3, 0)
    api.warm = True
    snap = port.snapshot()
    assert resting_entries(port, snap) == (3, 6)       # take-profits are not entries
    api.kill_active = True
    assert resting_entries(port) == (3, 0)
