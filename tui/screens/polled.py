"""PolledQueryScreen: a screen painted from one engine query that is too costly to ask at every
repaint (the Risk and Performance screens): asked when the screen is shown, then every
`REFRESH_S` seconds while it stays visible, in a worker (never blocking a repaint); `ctrl+r`
asks now. A refused or failed query leaves the last figures up and says why when there are none.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from core.api.protocol import CommandRefused
from tui.screens.base import RadarScreen

log = logging.getLogger(__name__)


class PolledQueryScreen(RadarScreen):
    """Subclasses set `QUERY` (a word for messages, e.g. "risk"), `SUMMARY_ID` (the Static that
    shows a message while there is no view) and implement `fetch_view(api)` (await the view) and
    `show(view)` (paint it)."""

    #: seconds between two reads while the screen is visible
    REFRESH_S = 30.0
    QUERY = ""
    SUMMARY_ID = ""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.view: Any = None
        self._api: Any = None
        self._loading = False
        self._fetched_at: float | None = None

    async def fetch_view(self, api: Any) -> Any:
        """The view of this screen's query (raises CommandRefused when the engine refuses)."""
        raise NotImplementedError

    def show(self, view: Any) -> None:
        """Paint `view` (and keep it in `self.view`)."""
        raise NotImplementedError

    def refresh_data(self, api: Any) -> None:
        """Ask when due (see the module docstring); never blocks."""
        self._api = api
        due = self._fetched_at is None or time.monotonic() - self._fetched_at >= self.REFRESH_S
        if due and not self._loading and api is not None:
            self._loading = True
            self.run_worker(self._fetch(api), name=self.QUERY, group=self.QUERY, exclusive=True)

    async def _fetch(self, api: Any) -> None:
        try:
            view = await self.fetch_view(api)
        except CommandRefused as exc:
            self._message(f"no {self.QUERY} figures yet: {exc}")
        except AttributeError:
            self._message(f"this engine does not answer the {self.QUERY} query")
        except Exception as exc:                   # the screen stays up; the next read may work
            log.warning("%s query failed: %s", self.QUERY, exc)
            self._message(f"{self.QUERY} query failed: {exc}")
        else:
            self.show(view)
        finally:
            self._loading = False
            self._fetched_at = time.monotonic()

    def _message(self, text: str) -> None:
        if self.view is None:
            from textual.widgets import Static

            self.query_one(f"#{self.SUMMARY_ID}", Static).update(text)

    def action_reload(self) -> None:
        """Ask again now."""
        self._fetched_at = None
        self.refresh_data(self._api)
