"""The grid's worst case: every unfilled level fills at its price, then the stop is hit.

For one grid runner (`core.risk.book.RunnerBook`), starting from its open position (Q base
units at average entry A; flat: Q = 0, a new cycle) the resting levels fill in level order,
each at its own price P_i for q_i = unit / P_i units with the maker fee q_i·P_i·f_m; after
each fill the average entry A = Σq·P / Σq and the stop is recomputed by the strategy's own
rule (`GridStrategy.on_fill`; envelope_dca: S = A·(1 − p) long, A·(1 + p) short). Then the
whole position Q' exits at the final stop S with the taker fee Q'·S·f_t
(`/work/shared/specs/envelope_dca.md`, "Money"):

    loss = Q'·(A' − S) + Σ new entry fees + Q'·S·f_t        (long; short: Q'·(S − A') + ...)

`loss` is measured from the runner's cash now (the fees of fills already made are spent);
`loss_from_equity` = loss + unrealised P&L now (what the equity at the last price would lose).
A single-position runner: the loss of its position to its stop, the same way (no level).
A position without a stop has no bound: a long one is counted to a price of 0 (the whole
notional), a short one is `unbounded` (loss None) — said loudly in the note.

Money USDT (float64, positive = a loss), prices quote currency, quantities base units.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.risk.book import LONG, RunnerBook, stop_rule


@dataclass(frozen=True)
class WorstCase:
    """The worst case of one runner.

    Attributes:
        strategy, symbol, timeframe, side: the runner.
        levels_to_fill: how many resting levels were filled on the way.
        qty: base units at the stop (Q'); avg_entry: A' (quote currency); stop: S (None: none).
        entry_fees: maker fees of the levels filled on the way, USDT.
        exit_fee: taker fee of the stop exit, USDT.
        loss: USDT lost from the cash now (None when unbounded); 0 for a flat runner without levels.
        loss_from_equity: loss + the unrealised P&L at the last price (None when unbounded).
        unbounded: True when a short position has no stop.
        note: "" or why the figure is special (no stop, ...).
    """

    strategy: str
    symbol: str
    timeframe: str
    side: str | None
    levels_to_fill: int
    qty: float
    avg_entry: float | None
    stop: float | None
    entry_fees: float
    exit_fee: float
    loss: float | None
    loss_from_equity: float | None
    unbounded: bool = False
    note: str = ""


def worst_case(r: RunnerBook) -> WorstCase:
    """The worst case of runner `r` (see the module docstring).

    Raises:
        RadarError: a grid strategy that cannot be rebuilt from its params (to recompute its stop).
    """
    q, cost, fees = float(r.qty), float(r.qty) * (r.avg_entry or 0.0), 0.0
    stop = r.stop
    filled = 0
    rule = stop_rule(r) if r.kind == "grid" and r.resting else None
    for lvl in (r.resting if r.kind == "grid" else ()):
        fees += lvl.qty * lvl.price * r.maker_fee
        q += lvl.qty
        cost += lvl.qty * lvl.price
        stop = rule(lvl.level, lvl.price, lvl.qty, cost / q)
        filled += 1
    if q <= 0:
        return WorstCase(r.strategy, r.symbol, r.timeframe, r.side, 0, 0.0, None, None, 0.0, 0.0, 0.0, 0.0)
    avg = cost / q
    note = ""
    if stop is None:
        if r.side != LONG:
            return WorstCase(r.strategy, r.symbol, r.timeframe, r.side, filled, q, avg, None, fees, 0.0, None, None,
                             unbounded=True, note="NO STOP on a short position: the loss has no bound")
        stop, note = 0.0, "NO STOP: counted to a price of 0 (the whole notional)"
    realised = q * ((stop - avg) if r.side == LONG else (avg - stop))
    exit_fee = q * stop * r.taker_fee
    loss = fees + exit_fee - realised
    return WorstCase(r.strategy, r.symbol, r.timeframe, r.side, filled, q, avg, stop, fees, exit_fee, loss,
                     loss + r.unrealized, note=note)


def total_loss(cases: list[WorstCase]) -> float | None:
    """Σ loss over the runners, USDT; None when any is unbounded."""
    if any(c.loss is None for c in cases):
        return None
    return float(sum(c.loss for c in cases))  # type: ignore[misc]
