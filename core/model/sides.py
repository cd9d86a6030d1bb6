"""Position sides and the order sides that open and close them."""

from __future__ import annotations

LONG = "long"
SHORT = "short"


def entry_side(side: str) -> str:
    """The order side that opens (adds to) a `side` position: "buy" for long, "sell" for short."""
    return "buy" if side == LONG else "sell"


def exit_side(side: str) -> str:
    """The order side that closes (reduces) a `side` position: "sell" for long, "buy" for short."""
    return "sell" if side == LONG else "buy"
