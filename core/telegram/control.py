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

    async def balance_text(self) -> str:
        """Equity, cash and day P&L per runner and in total, USDT (/balance)."""
        ...

    async def daily_text(self, days: int) -> str:
        """P&L per UTC day of the last `days` days, per day and in total, USDT (/daily)."""
        ...

    async def check(self, action: str, symbol: str) -> str | None:
        """Why `action` ("forceexit" | "pause" | "resume_runner") on `symbol` cannot be done now
        (one line), or None. Asked before the confirmation buttons are offered."""
        ...

    async def forceexit(self, actor: str, symbol: str) -> str:
        """Close `symbol`'s position at market (its resting entries cancelled); the outcome line."""
        ...

    async def pause(self, actor: str, symbol: str) -> str:
        """Pause the runner of `symbol`: no new entries, its position keeps its stops; the outcome line."""
        ...

    async def resume_runner(self, actor: str, symbol: str) -> str:
        """Lift the pause of the runner of `symbol`; the outcome line."""
        ...


class InMemoryEngineControl:
    """A minimal `EngineControl` holding fixed texts and a kill-switch flag (tests, demos).

    Attributes:
        killed: the kill switch is engaged.
        kill_calls, resume_calls: the actors of every `kill` / `resume` call, in order.
        status, positions, pnl, jobs, balance: the texts returned by the *_text methods.
        symbols: the symbols "traded"; paused: those paused; calls: (action, actor, symbol) of
            every forceexit / pause / resume_runner, in order.
    """

    def __init__(self, status: str = "engine running", positions: str = "no open positions",
                 pnl: str = "P&L today: +0.00 USDT", jobs: str = "no jobs",
                 balance: str = "total: equity 10,000.00, cash 10,000.00, day P&L +0.00 USDT",
                 symbols: tuple[str, ...] = ("BTC/USDT",)) -> None:
        self.status = status
        self.positions = positions
        self.pnl = pnl
        self.jobs = jobs
        self.balance = balance
        self.symbols = set(symbols)
        self.paused: set[str] = set()
        self.killed = False
        self.kill_calls: list[str] = []
        self.resume_calls: list[str] = []
        self.calls: list[tuple[str, str, str]] = []

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

    async def balance_text(self) -> str:
        """The `balance` text."""
        return self.balance

    async def daily_text(self, days: int) -> str:
        """A zero P&L line per day."""
        return "\n".join(f"day -{i}: +0.00 USDT" for i in range(days - 1, -1, -1))

    async def check(self, action: str, symbol: str) -> str | None:
        """Unknown symbols, pausing a paused one and resuming one that is not paused are refused."""
        if symbol not in self.symbols:
            return f"no strategy runs on {symbol!r}; running: {', '.join(sorted(self.symbols))}"
        if action == "pause" and symbol in self.paused:
            return f"{symbol} is paused already"
        if action == "resume_runner" and symbol not in self.paused:
            return f"{symbol} is not paused"
        return None

    async def forceexit(self, actor: str, symbol: str) -> str:
        """Records the call."""
        self.calls.append(("forceexit", actor, symbol))
        return f"force-exit of {symbol} by {actor}"

    async def pause(self, actor: str, symbol: str) -> str:
        """Marks `symbol` paused (records the call)."""
        self.calls.append(("pause", actor, symbol))
        self.paused.add(symbol)
        return f"paused {symbol} by {actor}"

    async def resume_runner(self, actor: str, symbol: str) -> str:
        """Marks `symbol` not paused (records the call)."""
        self.calls.append(("resume_runner", actor, symbol))
        self.paused.discard(symbol)
        return f"resumed {symbol} by {actor}"
