"""The risk report of a running engine's book (`EngineAPI.risk`, the VaR alert service).

The book is read in memory on the engine's loop (`core.risk.book.book_from_runners`); the
equity points, the scenario candles and the arithmetic run in a worker thread
(`core.risk.report.risk_report`), so the loop never waits on them. One computation at a time
per engine; a report younger than `max_age_s` at the same candle count is served again.
"""

from __future__ import annotations

import asyncio
import time
import weakref
from pathlib import Path
from typing import Any

from core.errors import UsageError

#: engine -> (candles processed, monotonic time, report); engine -> its lock
_CACHE: "weakref.WeakKeyDictionary[Any, tuple[int, float, dict]]" = weakref.WeakKeyDictionary()
_LOCKS: "weakref.WeakKeyDictionary[Any, asyncio.Lock]" = weakref.WeakKeyDictionary()


def load_risk_config(config_dir: Any) -> Any:
    """The `RadarConfig` of `config_dir` (None: the packaged config).

    Raises:
        ConfigError: the folder's config is invalid.
    """
    from core.config import load_config
    from core.paths import DEFAULT_CONFIG_DIR

    return load_config(Path(config_dir) if config_dir is not None else DEFAULT_CONFIG_DIR)


async def engine_risk(engine: Any, cfg: Any, *, max_age_s: float = 5.0) -> dict:
    """The risk report (`core.risk.report.risk_report`) of `engine`'s runners with config `cfg`.

    Raises:
        UsageError: the engine is not running (no database state yet) or has no runner.
        RadarError: a strategy that cannot be rebuilt (to recompute a stop).
    """
    from core.risk.book import book_from_runners
    from core.risk.report import equity_series, risk_report

    if getattr(engine, "store", None) is None:
        raise UsageError("risk: the engine is not running (not started yet, or stopped)")
    if not engine.runners:
        raise UsageError("risk: no runner in this engine")
    lock = _LOCKS.get(engine)
    if lock is None:
        lock = _LOCKS[engine] = asyncio.Lock()
    async with lock:
        candles = int(getattr(getattr(engine, "stats", None), "candles", 0) or 0)
        hit = _CACHE.get(engine)
        if hit is not None and hit[0] == candles and time.monotonic() - hit[1] < max_age_s:
            return hit[2]
        book = book_from_runners(engine.runners)

        def work() -> dict:
            return risk_report(book, equity_series(engine.db_path, book), cfg)

        report = await asyncio.to_thread(work)
        _CACHE[engine] = (candles, time.monotonic(), report)
        return report
