"""The real order of fills that one poll found together.

A poll reads each resting entry's state (filled so far) and the venue's position. When both an
entry filled more AND the position shrank since the last poll, the order-level answers cannot
tell what came first. Two histories give the same answers and need different books:

* the entry filled, then the stop closed the (bigger) position: one cycle, closed at the stop;
* the stop closed the position, then the rest of a partly filled entry (or a new level) filled:
  the old cycle closed at the stop's fills, and a NEW cycle opened at the entry's price.

Booking the second as the first (the entry added to the old cycle, then a partial close at the
stop) puts the ledger off the exchange by the P&L of the wrong cycle. So the executor reads the
venue's trade list (`Gateway.fetch_recent_trades`) and books the unbooked fills in the venue's
order. Which trades are unbooked is known without any clock: for each entry order, its newest
trades adding up to what it filled since the last poll; for the closes, the newest exit-side
trades (of no entry order) adding up to what was closed (the book's qty + the new entry fills
- the venue's qty now). Everything older was booked before.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.model.orders import VenueTrade

#: relative slack when trades add up to a quantity (the venue rounds to its lot size)
QTY_REL_TOL = 1e-6
#: absolute slack, base units
QTY_ABS_TOL = 1e-9


@dataclass(frozen=True, slots=True)
class Wanted:
    """An entry order with fills not booked yet: `key` (the executor's order key), the venue's
    `order_id` and our `client_id` (either may match a trade), `qty` the unbooked base units."""

    key: str
    order_id: str | None
    client_id: str
    qty: float


@dataclass(frozen=True, slots=True)
class Event:
    """One unbooked trade: `key` is the entry order's key, None for a close."""

    trade: VenueTrade
    key: str | None


def _done(left: float, total: float) -> bool:
    return left <= max(QTY_ABS_TOL, QTY_REL_TOL * total)


def pick_unbooked(newest_first: list[VenueTrade], wanted: list[Wanted], exit_side: str,
                  closed: float) -> tuple[list[Event], bool]:
    """The unbooked trades among `newest_first` (the venue's trades, newest first), oldest first.

    Args:
        newest_first: trades as `fetch_recent_trades` reads them, newest first.
        wanted: the entry orders with unbooked fills (module docstring).
        exit_side: "sell" for a long position, "buy" for a short.
        closed: base units closed at the venue since the last poll (> 0).

    Returns:
        (events oldest first by (ts, seq), complete): complete is False while the trades do not
        yet add up to every wanted quantity and to `closed`.
    """
    by_id: dict[str, Wanted] = {}
    for w in wanted:
        by_id[w.client_id] = w
        if w.order_id:
            by_id[w.order_id] = w
    left = {w.key: w.qty for w in wanted}
    close_left = closed
    picked: list[Event] = []
    for t in newest_first:
        w = by_id.get(t.order_id or "") or by_id.get(t.client_id or "")
        if w is not None:
            if not _done(left[w.key], w.qty):
                picked.append(Event(t, w.key))
                left[w.key] -= t.qty
            continue
        if t.side == exit_side and not _done(close_left, closed):
            picked.append(Event(t, None))
            close_left -= t.qty
    complete = all(_done(abs(left[w.key]), w.qty) for w in wanted) and _done(abs(close_left), closed)
    picked.sort(key=lambda e: (e.trade.ts, e.trade.seq))
    return picked, complete


__all__ = ["Event", "Wanted", "pick_unbooked"]
