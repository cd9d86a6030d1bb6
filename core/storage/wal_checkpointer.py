"""Background WAL checkpoints for a database written from the event-loop thread.

In WAL mode with `synchronous=NORMAL` a commit only appends to the `-wal` file (no fsync);
the fsyncs happen at checkpoints, which SQLite runs inside the COMMIT that takes the WAL past
`wal_autocheckpoint` pages. On the engine's connection that is the event loop's thread: at
replay speed (thousands of small commits a second, ~13 MB/s of WAL) each such COMMIT had
to flush tens of MB and stalled the loop for 50-130 ms.

`WalCheckpointer` runs `PRAGMA wal_checkpoint(PASSIVE)` every `interval` seconds on its own
connection in a daemon thread (sqlite3 releases the GIL while it works): the WAL is fsynced
and copied into the database file off the loop. PASSIVE never blocks the writer nor waits
for readers. The writer's own auto-checkpoint stays on: when it comes, nearly every frame is
already copied, so it only syncs what was appended since the last background pass (a few
ms) and lets SQLite restart the WAL from its beginning (a checkpoint by another connection
cannot restart it while the writer keeps appending, so without it the file would grow).

Durability is unchanged: what a COMMIT made durable is in the WAL whichever connection
checkpoints it later.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from pathlib import Path

log = logging.getLogger(__name__)

#: seconds between background checkpoints
DEFAULT_INTERVAL_S = 0.1


class WalCheckpointer:
    """A daemon thread checkpointing `db_path` (already in WAL mode); see the module docstring.

        ckpt = WalCheckpointer(path).start()
        ...
        ckpt.close()          # before closing the writer's connection
    """

    def __init__(self, db_path: str | os.PathLike[str], interval: float = DEFAULT_INTERVAL_S) -> None:
        self.db_path = Path(db_path)
        self.interval = float(interval)
        self.passes = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> "WalCheckpointer":
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"wal-checkpoint:{self.db_path.name}",
                                            daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        try:
            conn = sqlite3.connect(self.db_path, isolation_level=None, check_same_thread=False, timeout=0)
        except sqlite3.Error as exc:  # pragma: no cover - the writer opened it just before
            log.warning("background WAL checkpoints disabled for %s: %s", self.db_path, exc)
            return
        wal = Path(str(self.db_path) + "-wal")
        last = None
        try:
            while not self._stop.wait(self.interval):
                try:
                    st = wal.stat()
                    sig = (st.st_size, st.st_mtime_ns)
                except OSError:
                    continue                                   # no WAL file (yet / any more)
                if sig == last:
                    continue                                   # nothing written since the last pass
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    self.passes += 1
                    last = sig
                except sqlite3.Error as exc:                   # busy/locked: the next pass retries
                    log.debug("background WAL checkpoint of %s: %s", self.db_path, exc)
        finally:
            conn.close()

    def close(self) -> None:
        """Stop the thread (waits for a checkpoint in progress)."""
        self._stop.set()
        t, self._thread = self._thread, None
        if t is not None:
            t.join(timeout=10)
