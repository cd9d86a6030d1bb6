"""A two-parameter heatmap of OOS Sharpe: a Rich table with every value printed (colour is extra).

`heatmap_matrix(combos, x, y)` -> (x values, y values, matrix): per (x, y) cell the best
OOS Sharpe over the other parameters (None when no combo has that pair).
"""

from __future__ import annotations

import math

from rich.table import Table
from rich.text import Text
from textual.widgets import Static


def numeric_params(combos: list[dict]) -> list[str]:
    """Parameter names that take at least two values across the combos."""
    names: dict[str, set] = {}
    for c in combos:
        for k, v in (c.get("params") or {}).items():
            names.setdefault(k, set()).add(v)
    return [k for k, vs in names.items() if len(vs) >= 2]


def heatmap_matrix(combos: list[dict], x: str, y: str, value: str = "oos_sharpe"):
    xs = sorted({c["params"][x] for c in combos if x in c["params"]})
    ys = sorted({c["params"][y] for c in combos if y in c["params"]})
    m: list[list[float | None]] = [[None] * len(xs) for _ in ys]
    xi = {v: i for i, v in enumerate(xs)}
    yi = {v: i for i, v in enumerate(ys)}
    for c in combos:
        p = c["params"]
        if x not in p or y not in p:
            continue
        val = c.get(value)
        if val is None or not math.isfinite(val):
            continue
        cur = m[yi[p[y]]][xi[p[x]]]
        if cur is None or val > cur:
            m[yi[p[y]]][xi[p[x]]] = val
    return xs, ys, m


def _style(v: float | None, lo: float, hi: float) -> str:
    if v is None:
        return "dim"
    if hi <= lo:
        return ""
    f = (v - lo) / (hi - lo)
    return "on dark_red" if f < 0.25 else ("on grey23" if f < 0.75 else "bold on dark_green")


def render_heatmap(combos: list[dict], x: str, y: str) -> Table:
    xs, ys, m = heatmap_matrix(combos, x, y)
    vals = [v for row in m for v in row if v is not None]
    lo, hi = (min(vals), max(vals)) if vals else (0.0, 0.0)
    best = max(vals) if vals else None
    t = Table(title=f"OOS Sharpe (best over other params): rows {y}, columns {x}; * = best",
              show_lines=False, expand=False)
    t.add_column(f"{y} \\ {x}", justify="right", style="bold")
    for xv in xs:
        t.add_column(f"{xv:g}" if isinstance(xv, float) else str(xv), justify="right")
    for yv, row in zip(ys, m):
        cells = []
        for v in row:
            s = "—" if v is None else f"{v:.2f}" + ("*" if v == best else "")
            cells.append(Text(s, style=_style(v, lo, hi)))
        t.add_row(f"{yv:g}" if isinstance(yv, float) else str(yv), *cells)
    return t


class Heatmap(Static):
    """`show(combos, x, y)`."""

    def __init__(self, **kwargs) -> None:
        super().__init__("", **kwargs)
        self.axes: tuple[str, str] | None = None

    def show(self, combos: list[dict], x: str | None, y: str | None) -> None:
        if not combos or x is None or y is None or x == y:
            self.axes = None
            self.update("heatmap: needs two parameters that vary across the combos")
            return
        self.axes = (x, y)
        self.update(render_heatmap(combos, x, y))
