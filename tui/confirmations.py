"""What the confirmations of the console's trading commands say (kill, resume, flatten-all,
cancel-all), counted from the engine API at the moment they are shown.

The pending entry orders are the resting orders of purpose "entry" of every runner: its grid
state's `open_orders` in the port's `snapshot()` - the same orders `kill` cancels. The engine keeps
trading while a confirmation is open, so the app re-counts while it is shown
(`RadarApp.refresh_now`): the number the operator confirms is the number resting then.
"""

from __future__ import annotations

from typing import Any

from core.api.views import PositionView, SnapshotView
from tui.formats import fmt_qty


def resting_entries(api: Any, snapshot: SnapshotView | None = None) -> tuple[int, int]:
    """(runners, resting entry orders) of the engine behind the port `api`."""
    snap = snapshot if snapshot is not None else api.snapshot()
    return len(snap.runners), sum(len(r.grid.entry_orders()) for r in snap.runners)


def position_list(positions: list[PositionView]) -> str:
    """"BTC/USDT long 0.500000, DOGE/USDT long 1,011,770" (or "none")."""
    return ", ".join(f"{p.symbol} {p.side or ''} {fmt_qty(p.qty)}" for p in positions) or "none"


def confirm_text(api: Any, name: str, description: str) -> str:
    """The confirmation of app command `name`, naming what it will do now."""
    runners, pending = resting_entries(api)
    positions = api.positions()
    pos_list = position_list(positions)
    if name == "kill":
        return (f"TRIP THE KILL SWITCH on {runners} runner(s): cancel the {pending} pending entry order(s), "
                f"keep the stops of the {len(positions)} open position(s) ({pos_list}), and block new "
                "entries until `:resume`. Positions are NOT closed.")
    if name == "resume":
        return "CLEAR THE KILL SWITCH: the strategies place entry orders again from the next candle."
    if name == "flatten-all":
        return (f"TRIP THE KILL SWITCH AND CLOSE EVERY POSITION AT MARKET: {len(positions)} position(s): "
                f"{pos_list}; the {pending} pending entry order(s) are cancelled.")
    if name == "cancel-all":
        return (f"CANCEL THE {pending} PENDING ENTRY ORDER(S) on {runners} runner(s) and block new entries "
                "(kill switch on, stops kept, positions not closed).")
    return description
