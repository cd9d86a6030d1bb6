"""Start-up reconciliation of one live grid runner with the exchange.

Before a live runner trades, `reconcile(executor)` compares what the store says (the
ledger's position, the open entries, intents left pending by a crash) with what the
exchange holds (the four kinds of open orders, the position), and acts:

1. reads first: every open order of the symbol (ours and foreign) and the position; any
   failed read raises and nothing is changed (the runner stays "reconciling" and retries);
2. a SECOND ENGINE: an open order carrying this installation's client-id prefix that this
   database never recorded means another engine (or a lost database) trades the account:
   `AccountInUse` is raised and the engine refuses to start;
3. intents left pending by a crash: a `place` is looked up by client id (`reconcile_order`):
   found -> adopted (its fills applied below), absent -> marked never sent; a `flatten`
   whose exit filled is recorded as the cycle's exit; other pending intents are superseded
   by the exchange's state read below;
4. the store's open entries: fills that happened while the engine was down are applied in
   order (`filled_while_down`), orders gone from the exchange are closed in the store;
5. orphans it owns: our entries open at the exchange that the store no longer wants
   (recorded cancelled, or of an old cycle) are cancelled (`cancelled_orphan`);
6. the position: the ledger's position gone flat at the exchange is recorded as stopped out
   (`closed_while_down`); a quantity that differs is adopted (`qty_adjusted`); the stop is
   placed or re-sized (`stop_replaced` / `stop_checked`, rule one); an exchange position
   this runner does not own is left alone and BLOCKS the runner (`external_position`,
   critical: grid and manual trades never share a symbol);
7. foreign orders (no prefix) are left alone and reported (`external_order`).

Every action is written to `trading_reconcile`, logged, and published as a `ReconcileEvent`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from core.errors import RadarError
from core.events.bus import ReconcileEvent
from core.executor.live_executor import LiveGridExecutor
from core.model.errors import OrderNotFound

log = logging.getLogger(__name__)

#: relative difference between the ledger's and the exchange's qty that is adopted
QTY_MISMATCH = 1e-6


class AccountInUse(RadarError):
    """Orders with this installation's client-id prefix that this database does not know:
    another engine trades the account (exit code 2)."""

    exit_code = 2


@dataclass
class ReconcileReport:
    """What `reconcile` did: actions (action, client_id or None, detail), and `blocked` (why the
    runner must not trade, or None)."""

    actions: list[tuple[str, str | None, str]] = field(default_factory=list)
    blocked: str | None = None

    def count(self, action: str) -> int:
        return sum(1 for a in self.actions if a[0] == action)


async def reconcile(ex: LiveGridExecutor, ts: int, alert=None) -> ReconcileReport:
    """Reconcile `ex` (restored from the store) with its exchange; see the module docstring.

    Args:
        ex: the runner's executor, its ledger and open entries restored from the store.
        ts: ms UTC (wall clock) recorded on the changes.
        alert: optional `(level, message)` callback for the critical findings.

    Raises:
        AccountInUse: our prefix on orders this database never recorded.
        GatewayError: a read failed (nothing was changed; retry later).
    """
    gw = ex.gateway
    store = ex.store
    led = ex.ledger
    rep = ReconcileReport()

    def act(action: str, cid: str | None, detail: str) -> None:
        rep.actions.append((action, cid, detail))
        with ex._tx():
            store.add_reconcile(ex.runner_id, action, cid, detail)
        log.warning("reconcile %s %s: %s %s %s", ex.name, ex.symbol, action, cid or "", detail)
        ex._publish(ReconcileEvent(ex.name, ex.symbol, ts, action, cid, detail))

    # 1. reads
    ours, foreign = await gw.fetch_all_open_orders()
    pos = await gw.fetch_position()

    # 2. a second engine on the account
    strangers = [o.client_id for o in ours if o.purpose != "take_profit" and not store.known_client_id(o.client_id)]
    if strangers:
        raise AccountInUse(
            f"{ex.symbol}: open orders {', '.join(strangers[:5])}{' ...' if len(strangers) > 5 else ''} carry this "
            f"installation's client order id prefix {gw.prefix!r} but are not in {store.db_path}: another radar "
            f"engine (or a lost database) trades this account. Stop it, or cancel those orders, then restart; "
            f"or give this installation its own client_order_prefix in exchanges.yaml")

    # 3. intents a crash left pending
    for it in store.pending_intents(ex.runner_id):
        cid, action = it["client_id"], it["action"]
        if action == "place":
            st = await gw.reconcile_order(cid)
            row = store.order(cid)
            if st is None:
                with ex._tx():
                    store.set_order_status(cid, "cancelled", ts)
                    store.intent_done(it["id"], "failed")
                act("never_sent", cid, "the crash came before the exchange took it")
            else:
                with ex._tx():
                    store.set_order_status(cid, "open", ts)
                    store.intent_done(it["id"])
                if row is not None and row["purpose"] == "entry":
                    ex.orders[cid] = ["entry", row["level"], row["price"], row["qty"] or st.qty or 0.0, 0.0]
                act("adopted", cid, f"placed before the crash: {st.status}, filled {st.filled:g} of {st.qty}")
        elif action == "flatten":
            st = None
            try:
                st = await gw.fetch_order_state(cid)
            except OrderNotFound:
                pass
            if st is not None and st.filled > 0 and led.qty > 0:
                with ex._tx():
                    store.intent_done(it["id"])
                ex._record_exit(cid, "exit", float(st.avg_price or led.avg_entry), "kill", st.fee, ts)
                act("filled_while_down", cid, f"market exit at {st.avg_price}")
            else:
                with ex._tx():
                    store.set_order_status(cid, "cancelled", ts)
                    store.intent_done(it["id"], "failed")
                act("never_sent", cid, "the market exit was not executed")
        else:
            with ex._tx():
                store.intent_done(it["id"], "superseded")

    # 4. the store's open entries against the exchange
    open_ids = {o.client_id for o in ours}
    for cid, rec in list(ex.orders.items()):
        before = led.qty
        filled = await ex._refresh(cid, rec, ts)
        if filled:
            act("filled_while_down", cid, f"+{led.qty - before:g} filled at {rec[2]}")
        elif cid in open_ids:
            if not any(a[0] == "adopted" and a[1] == cid for a in rep.actions):
                act("adopted", cid, f"level {rec[1]} at {rec[2]}")
        else:
            act("gone", cid, "no longer open at the exchange")
    if led.qty > 0 and any(a[0] == "filled_while_down" for a in rep.actions):
        pos = await gw.fetch_position()

    # 5. orphans we own
    for o in ours:
        if o.purpose == "entry" and o.client_id not in ex.orders:
            try:
                await gw.cancel_order(o.client_id)
            except OrderNotFound:
                pass
            with ex._tx():
                store.set_order_status(o.client_id, "cancelled", ts)
            act("cancelled_orphan", o.client_id, f"{o.side} {o.qty} at {o.price}: not wanted by the store")

    # 6. the position
    side = "long" if led.side == "long" else "short"
    if led.qty > 0 and pos.qty == 0:
        stop = led.stop
        await ex.exit_seen_flat(ts)
        act("closed_while_down", None, f"the exchange holds no position: recorded as stopped out at {stop:g}")
    elif led.qty == 0 and pos.qty > 0:
        rep.blocked = f"an external {pos.side} position of {pos.qty:g} on {ex.symbol}: not ours, left alone"
        act("external_position", None, rep.blocked + "; this runner does not trade until it is closed")
        if alert is not None:
            alert("critical", f"{ex.symbol}: {rep.blocked}; {ex.name} will not trade the symbol until it is closed")
    elif led.qty > 0:
        if pos.side != side:
            rep.blocked = f"the exchange holds a {pos.side} position on {ex.symbol}, the {ex.name} ledger a {side} one"
            act("external_position", None, rep.blocked)
            if alert is not None:
                alert("critical", rep.blocked)
        else:
            if abs(pos.qty - led.qty) > QTY_MISMATCH * led.qty:
                old = led.qty
                led.adopt_qty(pos.qty)
                ex.save_state(*ex._cursor())
                act("qty_adjusted", None, f"ledger {old:g} -> exchange {pos.qty:g}")
            had_stop = pos.stop is not None
            outcome = await ex.protect(ts)
            act("stop_checked" if had_stop else "stop_replaced", ex.stop_cid,
                f"{outcome}: stop {led.stop:g}" if led.qty > 0 else outcome)
    else:
        for o in ours:
            if o.purpose == "stop":
                try:
                    await gw.cancel_order(o.client_id)
                except OrderNotFound:
                    pass
                act("cancelled_orphan", o.client_id, "a stop without a position")

    # 7. foreign orders
    for f in foreign:
        act("external_order", f.get("client_id") or f.get("id"),
            f"{f.get('kind')} {f.get('side')} {f.get('qty')} at {f.get('price')}: not ours, left alone")
    ex.blocked = rep.blocked
    act("done", None, f"{len(rep.actions)} action(s); position {led.qty:g}, {len(ex.orders)} open entr(ies)")
    return rep
