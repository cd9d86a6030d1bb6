"""The weekly Telegram report's figures: the week's equity change, its max drawdown and its cycles
per asset (`core.performance.cycle_stats` over a span of one week).

Weeks are ISO weeks in UTC: Monday 00:00 to the next Monday (ms UTC). Sent by
`core.engine.trade_notices.TradeNotices` when the first candle of a later week arrives, as the
daily report is; formatted by `core.telegram.format.weekly_report_text`.
"""

from __future__ import annotations

from typing import Iterable

from core.performance.cycle_stats import WEEK_MS, per_asset

DAY_MS = 86_400_000
#: 1970-01-01 was a Thursday: days since the epoch + 3 counts from a Monday
_MONDAY_SHIFT = 3


def week_of(ts_ms: int) -> int:
    """The ISO-week number (Monday-based, UTC) of a ms UTC timestamp: consecutive weeks differ by 1."""
    return (int(ts_ms) // DAY_MS + _MONDAY_SHIFT) // 7


def week_start_ms(week: int) -> int:
    """Monday 00:00 UTC (ms) of `week` (`week_of`)."""
    return (int(week) * 7 - _MONDAY_SHIFT) * DAY_MS


def weekly_sections(start_equity: float | None, end_equity: float | None, max_drawdown: float,
                    cycles: Iterable[tuple[str, object]], open_positions: list[str]) -> list[tuple[str, str]]:
    """The report's (name, text) sections.

    Args:
        start_equity, end_equity: the book's equity (USDT) at the start and at the end of the week
            (None: unknown, the Equity section is left out).
        max_drawdown: the largest drawdown within the week, from the week's running peak (fraction).
        cycles: (symbol, cycle) of the cycles closed in the week (cycle: open_time, close_time ms
            UTC, pnl USDT).
        open_positions: one line per open position.
    """
    sections: list[tuple[str, str]] = []
    if end_equity is not None:
        change = ""
        if start_equity:
            change = f" ({end_equity - start_equity:+,.2f} USDT, {(end_equity / start_equity - 1) * 100:+.2f}%)"
        sections.append(("Equity", f"{end_equity:,.2f} USDT{change}"))
    sections.append(("Max drawdown", f"{max_drawdown * 100:.2f}%"))
    groups: dict[str, list] = {}
    for symbol, cy in cycles:
        groups.setdefault(symbol, []).append(cy)
    stats = per_asset(groups, WEEK_MS)
    total = stats[-1] if stats else None
    if total is None or total.n_cycles == 0:
        sections.append(("Cycles", "0 closed"))
    else:
        sections.append(("Cycles", f"{total.n_cycles} closed, P&L {total.total_pnl:+,.2f} USDT, "
                                   f"win rate {total.win_rate * 100:.0f}%"))
        lines = [f"{s.asset}: {s.n_cycles} cycle(s), avg {s.avg_duration_ms / 3_600_000:.1f}h, "
                 f"win {s.win_rate * 100:.0f}%, P&L {s.total_pnl:+,.2f}" for s in stats if s.asset != "all"]
        sections.append(("Per asset", "\n".join(lines)))
    sections.append(("Open positions", "\n".join(open_positions) if open_positions else "none"))
    return sections
