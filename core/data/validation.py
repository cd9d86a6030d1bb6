"""Bad-row checks for candle and funding-rate rows (vectorised with numpy).

A file with any bad row is refused whole. The refusal is one `BadRowsError`
whose message has a stable format::

    <source>: refused, <N> bad row(s): <count> <kind> (first at row <i>); <count> <kind> (first at row <i>)

* `N` counts distinct bad rows (one row can be bad in several ways);
  "1 bad row" is singular, otherwise "bad rows".
* Row indexes are 0-based positions in the file's JSON list.
* Kinds are listed by their first row, ties in the order of `CANDLE_KINDS`.

Candle kinds (`CANDLE_KINDS`):
    "NaN/null/inf value"            any of the six values is not a finite number
    "non-integer or out-of-range timestamp"  not an integer ms in [0, 2**53]
    "non-positive price"            open, high, low or close <= 0
    "negative volume"
    "high < low"
    "open/close outside [low, high]"  (judged only when prices > 0 and high >= low,
                                    so each bad row shows its root cause)
    "duplicate timestamp"           same open time as the previous row
    "out-of-order timestamp"        open time before the previous row's
    "off-grid timestamp"            open time % timeframe_ms != 0

Funding rows (`FUNDING_KINDS`) are checked for non-finite time or rate,
non-integer/out-of-range, duplicate and out-of-order timestamps only: off-grid
times (as the exchange reported them) and negative rates are valid; the
columns after the rate are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.errors import DataError

NON_FINITE = "NaN/null/inf value"
BAD_TIMESTAMP = "non-integer or out-of-range timestamp"
NON_POSITIVE_PRICE = "non-positive price"
NEGATIVE_VOLUME = "negative volume"
HIGH_BELOW_LOW = "high < low"
OPEN_CLOSE_OUTSIDE = "open/close outside [low, high]"
DUPLICATE_TS = "duplicate timestamp"
OUT_OF_ORDER_TS = "out-of-order timestamp"
OFF_GRID_TS = "off-grid timestamp"

CANDLE_KINDS = (
    NON_FINITE, BAD_TIMESTAMP, NON_POSITIVE_PRICE, NEGATIVE_VOLUME, HIGH_BELOW_LOW,
    OPEN_CLOSE_OUTSIDE, DUPLICATE_TS, OUT_OF_ORDER_TS, OFF_GRID_TS,
)
FUNDING_KINDS = (NON_FINITE, BAD_TIMESTAMP, DUPLICATE_TS, OUT_OF_ORDER_TS)
_MAX_TS = float(2**53)


@dataclass(frozen=True)
class RowProblem:
    """One kind of bad row in a file: `count` rows, the first at 0-based index `first_row`."""

    kind: str
    count: int
    first_row: int


class BadRowsError(DataError):
    """A file was refused because of bad rows (exit code 2).

    Attributes:
        source: the file as named in the message.
        bad_rows: number of distinct bad rows.
        problems: one `RowProblem` per kind found, in message order.
    """

    def __init__(self, source: str, bad_rows: int, problems: list[RowProblem]) -> None:
        self.source = source
        self.bad_rows = bad_rows
        self.problems = problems
        super().__init__(format_refusal(source, bad_rows, problems))


def format_refusal(source: str, bad_rows: int, problems: list[RowProblem]) -> str:
    """The refusal message (format in the module docstring)."""
    parts = "; ".join(f"{p.count} {p.kind} (first at row {p.first_row})" for p in problems)
    noun = "bad row" if bad_rows == 1 else "bad rows"
    return f"{source}: refused, {bad_rows} {noun}: {parts}"


def candle_row_problems(rows: np.ndarray, tf_ms: int) -> tuple[int, list[RowProblem]]:
    """(distinct bad rows, problems) of (n, 6) float64 candle rows `[ts_ms, o, h, l, c, v]`.

    `tf_ms` is the timeframe in ms (the grid the open times must sit on).
    Returns `(0, [])` for good rows.
    """
    ts, o, h, lo, c, v = (rows[:, i] for i in range(6))
    finite_row = np.isfinite(rows).all(axis=1)
    masks: dict[str, np.ndarray] = {NON_FINITE: ~finite_row}
    with np.errstate(invalid="ignore"):
        non_positive = finite_row & ((o <= 0) | (h <= 0) | (lo <= 0) | (c <= 0))
        masks[NON_POSITIVE_PRICE] = non_positive
        masks[NEGATIVE_VOLUME] = finite_row & (v < 0)
        masks[HIGH_BELOW_LOW] = finite_row & (h < lo)
        judged = finite_row & ~non_positive & (h >= lo)
        masks[OPEN_CLOSE_OUTSIDE] = judged & ((o < lo) | (o > h) | (c < lo) | (c > h))
    masks.update(_timestamp_masks(ts, np.isfinite(ts)))
    good_ts = np.isfinite(ts) & ~masks[BAD_TIMESTAMP]
    its = np.where(good_ts, ts, 0).astype(np.int64)
    masks[OFF_GRID_TS] = good_ts & (its % tf_ms != 0)
    return _collect(masks, CANDLE_KINDS)


def funding_row_problems(rows: np.ndarray) -> tuple[int, list[RowProblem]]:
    """(distinct bad rows, problems) of (n, 6) float64 funding rows `[ts_ms, rate, ...]`."""
    ts, rate = rows[:, 0], rows[:, 1]
    finite_row = np.isfinite(ts) & np.isfinite(rate)
    masks = {NON_FINITE: ~finite_row, **_timestamp_masks(ts, np.isfinite(ts))}
    return _collect(masks, FUNDING_KINDS)


def validate_candle_rows(source: str, rows: np.ndarray, tf_ms: int) -> None:
    """Refuse candle rows with any bad row.

    Raises:
        BadRowsError: at least one bad row (message format in the module docstring).
    """
    bad, problems = candle_row_problems(rows, tf_ms)
    if bad:
        raise BadRowsError(source, bad, problems)


def validate_funding_rows(source: str, rows: np.ndarray) -> None:
    """Refuse funding-rate rows with any bad row.

    Raises:
        BadRowsError: at least one bad row (message format in the module docstring).
    """
    bad, problems = funding_row_problems(rows)
    if bad:
        raise BadRowsError(source, bad, problems)


def _timestamp_masks(ts: np.ndarray, finite: np.ndarray) -> dict[str, np.ndarray]:
    """Bad-timestamp, duplicate and out-of-order masks (row i compared with row i-1)."""
    with np.errstate(invalid="ignore"):
        bad_ts = finite & ((ts < 0) | (ts > _MAX_TS) | (ts != np.floor(ts)))
        usable = finite & ~bad_ts
        dup = np.zeros(ts.shape, dtype=bool)
        ooo = np.zeros(ts.shape, dtype=bool)
        if ts.shape[0] > 1:
            both = usable[1:] & usable[:-1]
            dup[1:] = both & (ts[1:] == ts[:-1])
            ooo[1:] = both & (ts[1:] < ts[:-1])
    return {BAD_TIMESTAMP: bad_ts, DUPLICATE_TS: dup, OUT_OF_ORDER_TS: ooo}


def _collect(masks: dict[str, np.ndarray], order: tuple[str, ...]) -> tuple[int, list[RowProblem]]:
    any_bad = np.zeros_like(next(iter(masks.values())))
    problems = []
    for kind in order:
        mask = masks[kind]
        count = int(np.count_nonzero(mask))
        if count:
            any_bad |= mask
            problems.append(RowProblem(kind, count, int(np.argmax(mask))))
    problems.sort(key=lambda p: (p.first_row, order.index(p.kind)))
    return int(np.count_nonzero(any_bad)), problems
