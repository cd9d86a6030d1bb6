"""Number formats shared by the console's screens (never scientific notation).

Quantities:

    fmt_qty(1011770.4)  -> "1,011,770"       fmt_qty(12345.678) -> "12,345.68"
    fmt_qty(12.345678)  -> "12.3457"         fmt_qty(0.8168612) -> "0.816861"
    fmt_qty(0.00012345) -> "0.00012345"      fmt_qty(None)      -> "—"
"""

from __future__ import annotations

import math

#: (smallest magnitude, decimals) of a quantity, largest first
QTY_DECIMALS = ((100_000.0, 0), (1_000.0, 2), (1.0, 4), (0.01, 6), (0.0, 8))


def fmt_price(x: float | None) -> str:
    """A price with enough digits to tell levels apart: 65,432.10 / 1.2346 / 0.00012345."""
    if x is None or not isinstance(x, (int, float)) or not math.isfinite(x):
        return "—"
    ax = abs(x)
    if ax >= 1000:
        return f"{x:,.2f}"
    if ax >= 1:
        return f"{x:,.4f}"
    return f"{x:.8f}"


def qty_decimals(x: float) -> int:
    """The decimals a quantity of this magnitude is shown with (see `QTY_DECIMALS`)."""
    ax = abs(x)
    return next(d for lo, d in QTY_DECIMALS if ax >= lo)


def fmt_qty(x: float | None) -> str:
    """A quantity with thousands separators and decimals by magnitude (module docstring)."""
    if x is None or not isinstance(x, (int, float)) or not math.isfinite(x):
        return "—"
    if x == 0:
        return "0"
    return f"{x:,.{qty_decimals(x)}f}"
