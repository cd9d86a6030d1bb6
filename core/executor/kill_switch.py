"""The kill switch, persisted in SQLite (table kill_switch): while active, no new entry is
placed (pending entries are cancelled, stops and take-profits stay); `flatten` also closes
every position at market when it is set. It survives restarts until cleared by `clear()`."""

from __future__ import annotations

from core.executor.state_store import StateStore


class KillSwitch:
    """State of the kill switch (attributes active, flatten, actor, reason, changed_ms)."""

    def __init__(self, store: StateStore) -> None:
        self.store = store
        row = store.load_kill_switch() or {}
        self.active: bool = row.get("active", False)
        self.flatten: bool = row.get("flatten", False)
        self.actor: str = row.get("actor", "")
        self.reason: str = row.get("reason", "")
        self.changed_ms: int | None = row.get("changed_ms")

    def _save(self) -> None:
        own_tx = not self.store.in_tx
        self.store.begin()
        self.store.save_kill_switch(self.active, self.flatten, self.actor, self.reason)
        if own_tx:
            self.store.commit()
        row = self.store.load_kill_switch() or {}
        self.changed_ms = row.get("changed_ms")

    def trip(self, actor: str, flatten: bool = False, reason: str = "command") -> None:
        """Activate (persisted before returning)."""
        self.active, self.flatten, self.actor, self.reason = True, bool(flatten), actor, reason
        self._save()

    def clear(self, actor: str, reason: str = "resume") -> None:
        """Deactivate (persisted before returning)."""
        self.active, self.flatten, self.actor, self.reason = False, False, actor, reason
        self._save()

    def as_dict(self) -> dict:
        return {"active": self.active, "flatten": self.flatten, "actor": self.actor, "reason": self.reason,
                "changed_ms": self.changed_ms}
