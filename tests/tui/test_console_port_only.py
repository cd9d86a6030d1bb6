"""The console reaches the engine only through its port: no screen, widget or the app imports
the engine, the executor, the venues or the storage, or opens the database; what they read of
the engine are the typed views of `core.api.views` (and the run's service records)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: the engine's inside: the console must not reach into any of it
FORBIDDEN = ("core.engine", "core.executor", "core.venues", "core.storage", "core.risk", "core.api.server",
             "core.backtest", "core.data.feed", "core.data.engine")


def _core_imports(path: Path) -> list[str]:
    return re.findall(r"^\s*(?:from|import)\s+(core(?:\.\w+)*)", path.read_text(), re.M)


def test_screens_widgets_and_app_do_not_import_the_engine() -> None:
    files = [*(ROOT / "tui" / "screens").glob("*.py"), *(ROOT / "tui" / "widgets").glob("*.py"),
             ROOT / "tui" / "app.py", ROOT / "tui" / "confirmations.py", ROOT / "tui" / "attach.py"]
    offenders = {str(p.relative_to(ROOT)): mods for p in files
                 if (mods := [m for m in _core_imports(p) if m.startswith(FORBIDDEN)])}
    assert offenders == {}


def test_no_console_module_opens_the_database() -> None:
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "tui").rglob("*.py")
                 if re.search(r"open_sync|sqlite3|aiosqlite|\.engine\.runners|api\.engine\b", p.read_text())]
    assert offenders == []
