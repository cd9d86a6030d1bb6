"""Plain-text message bodies for Telegram (no Markdown: nothing to escape). Times are ms UTC."""

from __future__ import annotations

from typing import Iterable, Mapping

from core.alerts.model import Alert
from core.alerts.notify import Notification
from core.model.clock import format_ms

#: Telegram's limit on one message's text.
MAX_MESSAGE_CHARS = 4096


def fit(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """`text` cut to `limit` characters (ending with "…" when cut); empty text becomes "-"."""
    if not text:
        return "-"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def number(value: float) -> str:
    """A price or amount with up to 8 significant digits, e.g. 64250.5, 0.00123."""
    return f"{value:.8g}"


def signed(value: float, digits: int = 2) -> str:
    """A P&L figure with an explicit sign, e.g. "+12.34", "-0.50"."""
    return f"{value:+.{digits}f}"


def notification_text(n: Notification) -> str:
    """The message for an alert notification: its line plus how to acknowledge or snooze it."""
    return fit(f"{n.line()}\n/ack {n.alert.id} · /snooze {n.alert.id} 30m")


def grid_level_opened_text(symbol: str, level: int, side: str, price: float, amount: float,
                           at_ms: int) -> str:
    """ "grid level opened" message.

    Args:
        symbol: e.g. "BTC/USDT:USDT".
        level: grid level number (1 = first).
        side: "long"/"short" or "buy"/"sell".
        price: fill price (quote currency).
        amount: filled amount (base currency).
        at_ms: fill time, ms UTC.
    """
    return fit(f"Grid level {level} opened: {symbol} {side} {number(amount)} @ {number(price)}\n"
               f"{format_ms(at_ms)}")


def cycle_closed_text(symbol: str, pnl: float, quote: str, at_ms: int, *, pnl_pct: float | None = None,
                      duration_ms: int | None = None, levels: int | None = None) -> str:
    """ "cycle closed with P&L" message.

    Args:
        symbol: e.g. "BTC/USDT:USDT".
        pnl: realised P&L of the cycle in `quote` (fees included).
        quote: the quote currency, e.g. "USDT".
        at_ms: close time, ms UTC.
        pnl_pct: P&L in percent of the cycle's cost, if known.
        duration_ms: how long the cycle was open, if known.
        levels: how many grid levels were filled, if known.
    """
    parts = [f"Cycle closed: {symbol} {signed(pnl)} {quote}"]
    if pnl_pct is not None:
        parts[0] += f" ({signed(pnl_pct)}%)"
    extra = []
    if levels is not None:
        extra.append(f"{levels} level(s)")
    if duration_ms is not None:
        extra.append(f"open {_span(duration_ms)}")
    if extra:
        parts.append(", ".join(extra))
    parts.append(format_ms(at_ms))
    return fit("\n".join(parts))


def daily_report_text(day_start_ms: int, sections: Mapping[str, str] | Iterable[tuple[str, str]]) -> str:
    """The daily report: a title with the UTC day, then one "Name: text" block per section.

    Args:
        day_start_ms: the start of the reported day, ms UTC.
        sections: ordered (name, text) pairs, e.g. {"P&L": "+12.30 USDT", "Cycles": "4 closed"}.
    """
    items = sections.items() if isinstance(sections, Mapping) else sections
    lines = [f"Radar daily report {format_ms(day_start_ms)[:10]} (UTC)"]
    for name, text in items:
        lines.append(f"{name}: {text}" if "\n" not in text else f"{name}:\n{text}")
    return fit("\n".join(lines))


def weekly_report_text(week_start_ms: int, sections: Mapping[str, str] | Iterable[tuple[str, str]]) -> str:
    """The weekly report: a title with the UTC week (Monday .. Sunday), then one "Name: text"
    block per section (as `daily_report_text`).

    Args:
        week_start_ms: Monday 00:00 UTC of the reported week, ms UTC.
        sections: ordered (name, text) pairs (`core.performance.weekly.weekly_sections`).
    """
    items = sections.items() if isinstance(sections, Mapping) else sections
    last_day = week_start_ms + 6 * 86_400_000
    lines = [f"Radar weekly report {format_ms(week_start_ms)[:10]} .. {format_ms(last_day)[:10]} (UTC)"]
    for name, text in items:
        lines.append(f"{name}: {text}" if "\n" not in text else f"{name}:\n{text}")
    return fit("\n".join(lines))


def alerts_text(alerts: list[Alert], unacknowledged: int, limit: int = 20) -> str:
    """The /alerts reply: unresolved alerts, most severe first, one line each (at most `limit`)."""
    if not alerts:
        return "no open alerts"
    head = f"{len(alerts)} open alert(s), {unacknowledged} unacknowledged:"
    lines = [head]
    for a in alerts[:limit]:
        count = f" (x{a.count})" if a.count > 1 else ""
        state = "" if a.state.value == "active" else f" [{a.state.value}]"
        lines.append(f"#{a.id} {a.severity.value.upper()}{state} {a.title}{count}")
    if len(alerts) > limit:
        lines.append(f"… and {len(alerts) - limit} more (radar alerts list)")
    return fit("\n".join(lines))


def _span(ms: int) -> str:
    minutes = max(0, ms) // 60_000
    days, rest = divmod(minutes, 1440)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {mins}m"
    return f"{mins}m"
