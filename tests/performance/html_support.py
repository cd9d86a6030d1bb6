"""Reading a performance report back with the standard library's html.parser (tests only)."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path


class ReportParser(HTMLParser):
    """Collects, per enclosing element id: the tables (rows of cell texts) and the number of SVG
    figures and base64 images inside it. `ids` lists every id seen."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str | None] = []
        self.ids: list[str] = []
        self.tables: dict[str, list[list[list[str]]]] = {}
        self.figures: dict[str, int] = {}
        self._cell: list[str] | None = None
        self._row: list[str] | None = None

    def _where(self) -> str | None:
        return next((i for i in reversed(self.stack) if i), None)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ("meta", "link", "br", "img", "hr", "input"):
            if tag == "img" and (a.get("src") or "").startswith("data:image"):
                self.figures[self._where()] = self.figures.get(self._where(), 0) + 1
            return
        if "id" in a:
            self.ids.append(a["id"])
        self.stack.append(a.get("id"))
        if tag == "svg":
            self.figures[self._where()] = self.figures.get(self._where(), 0) + 1
        elif tag == "table":
            self.tables.setdefault(self._where(), []).append([])
        elif tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("meta", "link", "br", "img", "hr", "input"):
            return
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            where = self._where()
            if where in self.tables and self.tables[where]:
                self.tables[where][-1].append(self._row)
            self._row = None
        if self.stack:
            self.stack.pop()

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def parse_report(path: Path) -> ReportParser:
    p = ReportParser()
    p.feed(path.read_text(encoding="utf-8"))
    p.close()
    return p


def monthly_cells(p: ReportParser) -> dict[tuple[int, int], float]:
    """{(year, month 1..12): percent} of the report's monthly table (`#radar-monthly`), plus
    (year, 13) for the Year column."""
    rows = p.tables["radar-monthly"][0]
    head = rows[0]
    assert head[1:] == ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec", "Year"]
    out = {}
    for row in rows[1:]:
        year = int(row[0])
        for m, cell in enumerate(row[1:], start=1):
            if cell:
                assert cell.endswith("%"), cell
                out[(year, m)] = float(cell[:-1])
    return out
