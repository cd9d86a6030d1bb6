"""Start-up reconciliation of one grid runner with its venue.

Before a runner trades, `reconcile(executor)` compares what the store says (the book's
position, the resting orders, intents left pending by a crash) with what the venue holds
(every kind of open order, the position), and acts:

1. reads first: every open order of the symbol (ours and foreign) and the position; any
   failed read raises and nothing is changed (the runner stays "reconciling" and retries);
2. orders that are not this database's: an open order carrying this installation's prefix
   that this database never recorded means another engine, or a lost database, trades the
   account; with a FRESH store the venue's order history is read too, as far back as the venue
   keeps it (Bitget: 90 days), for orders of ours from another database epoch. Either way `AccountInUse` is raised (exit 2) naming what
   was found and how to adopt it on purpose (`radar run --live --adopt-history`), unless
   `adopt_history` is set: then those orders are recorded as this database's (`adopted`) —
   a stop of ours is never refused nor advised to be cancelled: it may be the position's
   only protection;
3. intents left pending by a crash: a `place` (or a renaming `amend`) is looked up by client
   id: found -> adopted (its fills applied below), absent -> marked never sent; a `flatten`
   whose exit filled is recorded as the cycle's exit; a stop placed, re-sized or re-created
   in flight (`stop_place`, `stop_resize`) is adopted when the venue holds it; other
   pending intents are superseded by the venue's state read below;
4. the store's resting entries: fills that happened while the engine was down are applied in
   order (`filled_while_down`), orders gone from the venue are closed in the store;
5. orphans it owns: our entries resting at the venue that the store no longer wants are
   cancelled (`cancelled_orphan`);
6. the position: the book's position gone flat at the venue is recorded as stopped out
   (`closed_while_down`); a quantity that differs is adopted (`qty_adjusted`); the stop is
   placed or re-sized (`stop_replaced` / `stop_checked`, rule one); a venue position this
   runner does not own is left alone and BLOCKS the runner (`external_position`, critical)
   unless `adopt_history` adopts it (`position_adopted`: qty and average entry from the
   venue, the stop from the strategy);
7. foreign orders (no prefix) are left alone and reported (`external_order`).

Every action is written to `trading_reconcile`, logged, and published as a `ReconcileEvent`.
Each write is made durable before the next venue call. Times ms UTC.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from core.errors import RadarError
from core.events.bus import ReconcileEvent
from core.executor.client_ids import base_client_id, parse_client_id
from core.executor.crashpoints import crashpoint
from core.executor.grid_executor import UNSENT
from core.model.errors import OrderNotFound

if TYPE_CHECKING:
    from core.executor.grid_executor import GridExecutor

log = logging.getLogger(__name__)

#: relative difference between the book's and the venue's qty that is adopted
QTY_MISMATCH = 1e-6


class AccountInUse(RadarError):
    """Orders with this installation's client-id prefix that this database does not know:
    another engine, or a lost database, trades the account (exit code 2)."""

    exit_code = 2


@dataclass
class ReconcileReport:
    """What `reconcile` did: actions (action, client_id or None, detail), and `blocked` (why the
    runner must not trade, or None)."""

    actions: list[tuple[str, str | None, str]] = field(default_factory=list)
    blocked: str | None = None

    def count(self, action: str) -> int:
        return sum(1 for a in self.actions if a[0] == action)


async def reconcile(ex: GridExecutor, ts: int, alert=None, adopt_history: bool = False) -> ReconcileReport:
    """Reconcile `ex` (restored from the store) with its venue; see the module docstring.

    Args:
        ex: the runner's executor, its book and resting orders restored from the store.
        ts: ms UTC recorded on the changes.
        alert: optional `(level, message)` callback for the critical findings.
        adopt_history: record orders of this installation that the store does not know as
            this database's, and adopt a venue position as the runner's (an operator's choice
            after a lost database).

    Raises:
        AccountInUse: our prefix on orders this database never recorded (see the docstring).
        GatewayError: a read failed (nothing was changed; retry later).
    """
    venue = ex.venue
    store = ex.store
    book = ex.book
    rep = ReconcileReport()
    quiet = not venue.external

    def act(action: str, cid: str | None, detail: str) -> None:
        rep.actions.append((action, cid, detail))
        if quiet and action == "done":
            return
        with ex._tx():
            store.add_reconcile(ex.runner_id, action, cid, detail)
        log.warning("reconcile %s %s: %s %s %s", ex.name, ex.symbol, action, cid or "", detail)
        ex._publish(ReconcileEvent(ex.name, ex.symbol, ts, action, cid, detail))

    crashpoint("during_reconcile")
    # 1. reads
    ours, foreign = await venue.fetch_all_open_orders()
    pos = await venue.fetch_position()
    strangers = [o for o in ours if o.purpose != "take_profit" and not store.known_client_id(o.client_id)]
    history = []
    if venue.external and not store.has_orders():
        history = [h for h in await venue.fetch_order_history(0)        # as far back as the venue keeps
                   
                   if not store.known_client_id(h.client_id)
                   and parse_client_id(h.client_id, ex.ids.prefix) is not None]

    # 2. orders that are not this database's
    if strangers or history:
        if not adopt_history:
            msg = _in_use_message(ex, strangers, history)
            if alert is not None:
                alert("critical", msg)
            raise AccountInUse(msg)
        for o in strangers:
            with ex._tx():
                store.add_order(o.client_id, ex.runner_id, book.cycle, o.level, o.purpose, o.side, o.price,
                                "open", ts)
            act("adopted", o.client_id, f"open {o.purpose} of another database, adopted on purpose")
        for h in history:
            with ex._tx():
                store.add_order(h.client_id, ex.runner_id, -1, h.level, h.purpose, h.side or "", h.price,
                                f"history:{h.status}", ts)
        if history:
            act("history_adopted", None, f"{len(history)} order(s) of another database recorded as known")

    # 3. intents a crash left pending
    for it in store.pending_intents(ex.runner_id):
        cid, action = it["client_id"], it["action"]
        if action in ("place", "amend", "stop_place", "stop_resize"):
            st = await venue.reconcile_order(cid)
            row = store.order(cid)
            if st is None or st.status in ("cancelled", "rejected"):
                with ex._tx():
                    if action != "stop_resize":
                        store.set_order_status(cid, UNSENT if st is None else st.status, ts)
                    store.intent_done(it["id"], "failed")
                act("never_sent", cid, f"the crash came before the venue took the {action}")
                continue
            with ex._tx():
                store.set_order_status(cid, "open" if st.status == "open" else st.status, ts)
                store.intent_done(it["id"])
            if row is not None and row["purpose"] == "entry":
                base = base_client_id(cid)
                prev = ex.orders.get(base)
                if prev is not None and prev[5] != cid:
                    with ex._tx():
                        store.set_order_status(prev[5], "replaced", ts)
                ex.orders[base] = ["entry", row["level"], row["price"], row["qty"] or st.qty or 0.0, 0.0, cid]
            elif row is not None and row["purpose"] == "stop" and st.status == "open":
                ex.stop_cid = cid
            act("adopted", cid, f"{action} before the crash: {st.status}, filled {st.filled:g} of {st.qty}")
        elif action.partition(":")[0] == "flatten":     # "flatten:<reason>" ("flatten": older records)
            reason = action.partition(":")[2] or "kill"
            st = None
            try:
                st = await venue.fetch_order_state(cid)
            except OrderNotFound:
                pass
            if st is not None and st.filled > 0 and book.qty > 0:
                with ex._tx():
                    store.intent_done(it["id"])
                ex._record_exit(cid, "exit", float(st.avg_price or book.avg_entry), reason, st.fee, ts)
                act("filled_while_down", cid, f"market exit at {st.avg_price}")
            else:
                with ex._tx():
                    store.set_order_status(cid, "cancelled", ts)
                    store.intent_done(it["id"], "failed")
                act("never_sent", cid, "the market exit was not executed")
        else:
            with ex._tx():
                store.intent_done(it["id"], "superseded")

    # 4. the store's resting entries against the venue
    open_ids = {o.client_id for o in ours}
    for cid, rec in list(ex.orders.items()):
        if rec[0] != "entry":
            continue
        before = book.qty
        filled = await ex._refresh(cid, rec, ts)
        if filled:
            act("filled_while_down", rec[5], f"+{book.qty - before:g} filled at {rec[2]}")
        elif rec[5] in open_ids:
            if not any(a[0] == "adopted" and a[1] == rec[5] for a in rep.actions) and not quiet:
                act("adopted", rec[5], f"level {rec[1]} at {rec[2]}")
        else:
            act("gone", rec[5], "no longer open at the venue")
    if book.qty > 0 and any(a[0] == "filled_while_down" for a in rep.actions):
        pos = await venue.fetch_position()

    # 5. orphans we own
    wanted = {r[5] for r in ex.orders.values()}
    for o in ours:
        if o.purpose == "entry" and o.client_id not in wanted:
            try:
                await venue.cancel_order(o.client_id)
            except OrderNotFound:
                pass
            with ex._tx():
                store.set_order_status(o.client_id, "cancelled", ts)
            act("cancelled_orphan", o.client_id, f"{o.side} {o.qty} at {o.price}: not wanted by the store")

    # 6. the position
    side = book.side
    if book.qty > 0 and pos.qty == 0:
        stop = book.stop
        await ex.exit_seen_flat(ts, defer=False)
        act("closed_while_down", None, f"the venue holds no position: recorded as stopped out at {stop:g}")
    elif book.qty == 0 and pos.qty > 0:
        if adopt_history and pos.side == side and pos.avg_entry:
            book.open_cycle(ts, ex.sizing_unit())
            avg = book.add_entry(0, float(pos.avg_entry), float(pos.qty), 0.0)
            book.stop = ex.strategy.on_fill(0, float(pos.avg_entry), float(pos.qty), avg)
            ex.save_state()
            act("position_adopted", None, f"{pos.side} {pos.qty:g} at {pos.avg_entry:g} adopted on purpose")
            outcome = await ex.protect(ts)
            act("stop_checked" if pos.stop is not None else "stop_replaced", ex.stop_cid, outcome)
        else:
            rep.blocked = f"an external {pos.side} position of {pos.qty:g} on {ex.symbol}: not ours, left alone"
            act("external_position", None, rep.blocked + "; this runner does not trade until it is closed")
            if alert is not None:
                alert("critical", f"{ex.symbol}: {rep.blocked}; {ex.name} will not trade the symbol until it is "
                                  "closed (or adopt it on purpose with --adopt-history)")
    elif book.qty > 0:
        if pos.side != side:
            rep.blocked = f"the venue holds a {pos.side} position on {ex.symbol}, the {ex.name} book a {side} one"
            act("external_position", None, rep.blocked)
            if alert is not None:
                alert("critical", rep.blocked)
        else:
            if abs(pos.qty - book.qty) > QTY_MISMATCH * book.qty:
                old = book.qty
                book.adopt_qty(pos.qty)
                ex.save_state()
                act("qty_adjusted", None, f"book {old:g} -> venue {pos.qty:g}")
            had_stop = pos.stop is not None
            outcome = await ex.protect(ts)
            if not quiet or outcome != "protected":
                act("stop_checked" if had_stop else "stop_replaced", ex.stop_cid,
                    f"{outcome}: stop {book.stop:g}" if book.qty > 0 else outcome)
    else:
        for o in ours:
            if o.purpose == "stop":
                try:
                    await venue.cancel_order(o.client_id)
                except OrderNotFound:
                    pass
                act("cancelled_orphan", o.client_id, "a stop without a position")

    # 7. foreign orders
    for f in foreign:
        act("external_order", f.get("client_id") or f.get("id"),
            f"{f.get('kind')} {f.get('side')} {f.get('qty')} at {f.get('price')}: not ours, left alone")
    ex.blocked = rep.blocked
    act("done", None, f"{len(rep.actions)} action(s); position {book.qty:g}, {len(ex.orders)} resting order(s)")
    return rep


def _in_use_message(ex: GridExecutor, strangers: list, history: list) -> str:
    """The operator's message for orders of this installation that the database does not know."""
    parts = []
    epochs = sorted({(parse_client_id(o.client_id, ex.ids.prefix) or ("", 0, 0, "?"))[3] or "-"
                     for o in [*strangers, *history]})
    if strangers:
        ids = ", ".join(f"{o.client_id} ({o.purpose})" for o in strangers[:5])
        parts.append(f"{len(strangers)} open order(s) [{ids}{' ...' if len(strangers) > 5 else ''}]")
    if history:
        ids = ", ".join(f"{h.client_id} ({h.status})" for h in history[:5])
        parts.append(f"{len(history)} order(s) in the venue's recent history [{ids}"
                     f"{' ...' if len(history) > 5 else ''}]")
    return (f"{ex.symbol}: {' and '.join(parts)} carry this installation's client order id prefix "
            f"{ex.ids.prefix!r} (database epoch(s) {', '.join(epochs)}; this database is {ex.ids.epoch or '-'}) "
            f"but are not in {ex.store.db_path}: another radar engine, or a lost database, trades this account. "
            f"Refusing to start. If another engine runs, stop it (or give this installation its own "
            f"client_order_prefix in exchanges.yaml). If this database replaces a lost one, start once with "
            f"`radar run --live --adopt-history` to record those orders as known and adopt the open position "
            f"(stops at the venue are kept, never cancelled).")
