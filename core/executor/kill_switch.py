"""The kill switch, persisted in SQLite: while active, no new entry is placed (pending entries
are cancelled, stops and take-profits stay); `flatten` also closes every position at market
when it is set. It survives restarts until cleared by `clear()`.

Besides the account-wide switch (table kill_switch) a symbol can be blocked on its own (table
kill_symbols), e.g. by the protection rules when a position stayed without a stop past its
grace period: `blocks(symbol)` is what the executors ask before adding risk."""

from __future__ import annotations

from core.executor.state_store import StateStore


class KillSwitch:
    """State of the kill switch (attributes active, flatten, actor, reason, changed_ms, and
    `symbols`: symbol -> {actor, reason, changed_ms} of the symbols blocked on their own)."""

    def __init__(self, store: StateStore) -> None:
        self.store = store
        row = store.load_kill_switch() or {}
        self.active: bool = row.get("active", False)
        self.flatten: bool = row.get("flatten", False)
        self.actor: str = row.get("actor", "")
        self.reason: str = row.get("reason", "")
        self.changed_ms: int | None = row.get("changed_ms")
        self.symbols: dict[str, dict] = store.kill_symbols()

    def _save(self) -> None:
        with self.store.transaction():
            self.store.save_kill_switch(self.active, self.flatten, self.actor, self.reason)
        row = self.store.load_kill_switch() or {}
        self.changed_ms = row.get("changed_ms")

    def blocks(self, symbol: str) -> bool:
        """True when entries on `symbol` are blocked (the switch, or the symbol on its own)."""
        return self.active or (bool(self.symbols) and symbol in self.symbols)

    def trip(self, actor: str, flatten: bool = False, reason: str = "command") -> None:
        """Activate (persisted before returning)."""
        self.active, self.flatten, self.actor, self.reason = True, bool(flatten), actor, reason
        self._save()

    def trip_symbol(self, symbol: str, actor: str, reason: str) -> None:
        """Block the entries of one symbol (persisted before returning)."""
        with self.store.transaction():
            self.store.set_kill_symbol(symbol, actor, reason)
        self.symbols = self.store.kill_symbols()

    def clear(self, actor: str, reason: str = "resume", symbol: str | None = None) -> None:
        """Deactivate (persisted before returning): the account-wide switch and every symbol
        block, or with `symbol` only that symbol's block."""
        if symbol is not None:
            with self.store.transaction():
                self.store.clear_kill_symbols(symbol)
            self.symbols = self.store.kill_symbols()
            return
        self.active, self.flatten, self.actor, self.reason = False, False, actor, reason
        with self.store.transaction():
            self.store.clear_kill_symbols()
        self.symbols = {}
        self._save()

    def as_dict(self) -> dict:
        return {"active": self.active, "flatten": self.flatten, "actor": self.actor, "reason": self.reason,
                "changed_ms": self.changed_ms, "symbols": dict(self.symbols)}
