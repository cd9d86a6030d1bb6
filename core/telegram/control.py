"""What the Telegram bot may ask of the engine: the `EngineControl` protocol and an in-memory stand-in.

The real engine implements `EngineControl` (its API is being written); the bot
depends only on this protocol. Every method is a coroutine so an
implementation may do I/O (e.g. cancel orders when the kill switch trips).
Methods may raise: the bot catches any exception, logs it and tells the operator.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class EngineControl(Protocol):
    """The engine as seen by the Telegram commands."""

    async def status_text(self) -> str:
        """One short plain-text block: engine state, kill switch, feeds, uptime (/status)."""
        ...

    async def positions_text(self) -> str:
        """Open positions as plain text (/positions)."""
        ...

    async def pnl_text(self) -> str:
        """Realised / unrealised P&L as plain text (/pnl)."""
        ...

    async def jobs_text(self) -> str:
        """Running and recent research jobs as plain text (/jobs)."""
        ...

    async def kill(self, actor: str) -> str:
        """Trip the kill switch (stop opening positions, cancel working orders); returns the outcome line.

        Args:
            actor: who asked, e.g. "telegram:alice" (recorded by the engine).
        """
        ...

    async def resume(self, actor: str) -> str:
        """Release the kill switch; returns the outcome line.

        Args:
            actor: who asked, e.g. "telegram:alice".
        """
        ...


class InMemoryEngineControl:
    """A minimal `EngineControl` holding fixed texts and a kill-switch flag (tests, demos).

    Attributes:
        killed: the kill switch is engaged.
        kill_calls, resume_calls: the actors of every `kill` / `resume` call, in order.
        status, positions, pnl, jobs: the texts returned by the *_text methods.
    """

    def __init__(self, status: str = "engine running", positions: str = "no open positions",
                 pnl: str = "P&L today: +0.00 USDT", jobs: str = "no jobs") -> None:
        self.status = status
        self.positions = positions
        self.pnl = pnl
        self.jobs = jobs
        self.killed = False
        self.kill_calls: list[str] = []
        self.resume_calls: list[str] = []

    async def status_text(self) -> str:
        """`status` plus the kill-switch state."""
        return f"{self.status}\nkill switch: {'ENGAGED' if self.killed else 'off'}"

    async def positions_text(self) -> str:
        """The `positions` text."""
        return self.positions

    async def pnl_text(self) -> str:
        """The `pnl` text."""
        return self.pnl

    async def jobs_text(self) -> str:
        """The `jobs` text."""
        return self.jobs

    async def kill(self, actor: str) -> str:
        """Engage the kill switch (records `actor`)."""
        self.kill_calls.append(actor)
        if self.killed:
            return "kill switch was already engaged"
        self.killed = True
        return f"kill switch ENGAGED by {actor}"

    async def resume(self, actor: str) -> str:
        """Release the kill switch (records `actor`)."""
        self.resume_calls.append(actor)
        if not self.killed:
            return "kill switch was not engaged"
        self.killed = False
        return f"kill switch released by {actor}; trading resumes"
