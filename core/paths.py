"""Where Radar finds its config and keeps its data by default."""

from __future__ import annotations

import os
from pathlib import Path

#: The repository root (editable install): holds `config/`.
PROJECT_ROOT = Path(__file__).resolve().parents[1]

#: The packaged YAML config folder, the default of `--config-dir`.
DEFAULT_CONFIG_DIR = PROJECT_ROOT / "config"


def data_home() -> Path:
    """`$XDG_DATA_HOME/radar`, or `~/.local/share/radar` when XDG_DATA_HOME is unset."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "radar"


def default_db_path() -> Path:
    """The default SQLite database: `<data_home>/radar.db`."""
    return data_home() / "radar.db"


def default_log_dir() -> Path:
    """The default folder of JSON-lines logs: `<data_home>/logs`."""
    return data_home() / "logs"
