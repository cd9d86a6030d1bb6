"""Fills as a matching engine reports them, and the names of order kinds and exit reasons.

Order kinds: "entry", "stop", "take_profit", "exit" (a market close). Exit reasons: "tp"
(take-profit), "sl" (stop-loss), "end" (end of the replayed data), "time" (maximum holding
of a single-position trade); the engine adds "kill" (the kill switch's flatten),
"forceexit" (an operator closed one position: `flatten` / `radar ctl flatten` / Telegram
/forceexit) and "unprotected" (closed because no stop could be placed).
"""

from __future__ import annotations

ENTRY = "entry"
STOP = "stop"
TAKE_PROFIT = "take_profit"
EXIT = "exit"

TP = "tp"
SL = "sl"
END = "end"
TIME = "time"


class Fill:
    """One fill reported by a matching engine.

    Attributes:
        order_id: id of the filled order (a fresh id for a market exit such as "end").
        kind: "entry" | "exit". reason: None for entries; "tp" | "sl" | "end" | ... for exits.
        level: level index for entries, -1 for exits. side: "buy" | "sell".
        ts: open time (ms UTC) of the candle holding the fill.
        price: fill price (quote currency). qty: base units (> 0). fee: USDT paid.
    """

    __slots__ = ("order_id", "kind", "reason", "level", "side", "ts", "price", "qty", "fee")

    def __init__(self, order_id: int, kind: str, reason: str | None, level: int, side: str,
                 ts: int, price: float, qty: float, fee: float) -> None:
        self.order_id = order_id
        self.kind = kind
        self.reason = reason
        self.level = level
        self.side = side
        self.ts = ts
        self.price = price
        self.qty = qty
        self.fee = fee

    def __repr__(self) -> str:
        what = f"level {self.level}" if self.kind == ENTRY else self.reason
        return (f"Fill(#{self.order_id} {self.kind} {what} {self.side} {self.qty!r} @ {self.price!r} "
                f"fee={self.fee!r} ts={self.ts})")
