"""The console reaches the engine only through its port: no screen, widget or the app imports
the engine, the executor or the storage, or opens the database; what they read of the engine
are the typed views of `core.api.views` (and the run's service records)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: what the console's screens may import from core: the views, errors, event classes, and the
#: service records/helpers (alerts, jobs) the port hands them
ALLOWED = ("core.api.views", "core.errors", "core.events.bus", "core.jobs.model", "core.jobs.manager",
           "core.jobs.optimize_job", "core.strategies", "core.alerts.model", "core.health.status")


def _core_imports(path: Path) -> list[str]:
    text = path.read_text()
    return re.findall(r"^\s*(?:from|import)\s+(core(?:\.\w+)*)", text, re.M)


def test_screens_widgets_and_app_import_only_views_from_core() -> None:
    files = [*(ROOT / "tui" / "screens").glob("*.py"), *(ROOT / "tui" / "widgets").glob("*.py"),
             ROOT / "tui" / "app.py", ROOT / "tui" / "confirmations.py"]
    offenders = {str(p.relative_to(ROOT)): mods for p in files
                 if (mods := [m for m in _core_imports(p) if not m.startswith(ALLOWED)])}
    assert offenders == {}


def test_no_console_module_opens_the_database() -> None:
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "tui").rglob("*.py")
                 if re.search(r"open_sync|sqlite3|aiosqlite|\.engine\.runners|api\.engine\b", p.read_text())]
    assert offenders == []
