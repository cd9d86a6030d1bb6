"""Per-runner commands of the console's screens: pause / resume one runner and close its position.

    class ScannerScreen(RunnerControls, TableScreen):
        ACTIONS = (..., *RUNNER_ACTIONS)
        def selected_runner(self): return ("BTC/USDT", "envelope_dca") or None

* `P` pauses the selected runner (no new entries; its resting entries are cancelled; the open
  position keeps its stop-loss and take-profit), or resumes it when it is paused.
* `X` closes the selected runner's position at market (its entries cancelled; recorded with
  reason "forceexit"); the kill switch is not touched.

Both are destructive: the app asks first, naming the runner and, for `X`, the position. They go
through the engine port (`pause`, `resume_runner`, `flatten`), so the engine audits them and an
attached read-only console is refused by the engine. A refusal is a toast.
"""

from __future__ import annotations

from typing import Any

from core.errors import RadarError
from tui.actions import Action
from tui.formats import fmt_qty

PAUSE = Action("pause-runner", "P", "Pause the selected runner (no new entries, stop and TP kept); "
               "resume it when paused", "toggle_pause", destructive=True)
FORCE_EXIT = Action("force-exit", "X", "Close the selected runner's position at market (entries cancelled)",
                    "force_exit", destructive=True)
RUNNER_ACTIONS: tuple[Action, ...] = (PAUSE, FORCE_EXIT)


class RunnerControls:
    """Mixin for a RadarScreen that has a selected runner (see the module docstring)."""

    def selected_runner(self) -> tuple[str, str] | None:
        """(symbol, strategy) of the runner the operator is on, or None: by default the selected
        row of a table screen, keyed "SYMBOL|strategy" (the Grid overrides it)."""
        key = getattr(self, "selected_key", lambda: None)()
        if not key or "|" not in key:
            return None
        symbol, _, strategy = key.partition("|")
        return symbol, strategy

    def confirm_text(self, action: Action) -> str:
        """The runner commands' confirmations (`runner_confirm_text`), else the screen's own."""
        return self.runner_confirm_text(action) or super().confirm_text(action)   # type: ignore[misc]

    def _runner_view(self) -> Any:
        sel = self.selected_runner()
        port = getattr(self.app, "api", None)                       # type: ignore[attr-defined]
        if sel is None or port is None:
            return None
        return port.snapshot().runner(*sel)

    def runner_confirm_text(self, action: Action) -> str | None:
        """The confirmation of `P` / `X` naming the runner now, or None for another action."""
        if action.name not in (PAUSE.name, FORCE_EXIT.name):
            return None
        r = self._runner_view()
        if r is None:
            return "No runner selected: nothing will be done."
        who = f"{r.symbol} {r.strategy}"
        if action.name == PAUSE.name:
            if r.paused:
                return f"RESUME {who}: it places entry orders again from the next candle."
            n = len(r.grid.entry_orders())
            pos = (f"its {r.position.side} position of {fmt_qty(r.position.qty)} keeps its stop-loss and take-profit"
                   if r.position.is_open else "it is flat")
            return f"PAUSE {who}: cancel its {n} resting entry order(s) and place no new ones; {pos}."
        if not r.position.is_open:
            return f"CLOSE {who}: it has no open position; only its resting entries are cancelled."
        p = r.position
        avg = "—" if p.avg_entry is None else f"{p.avg_entry:,.4f}"
        return (f"CLOSE THE {(p.side or '').upper()} POSITION of {who} AT MARKET: "
                f"{fmt_qty(p.qty)} @ avg {avg}, uPnL {p.unrealized:+,.2f} USDT; "
                "its entries are cancelled. The kill switch is not touched.")

    async def _runner_command(self, what: str, call: Any) -> dict | None:
        try:
            return await call
        except RadarError as exc:
            self.notify(f"{what}: {exc}", severity="error", timeout=10)     # type: ignore[attr-defined]
            return None
        finally:
            coalescer = getattr(self.app, "coalescer", None)                # type: ignore[attr-defined]
            if coalescer is not None:
                coalescer.mark()

    async def action_toggle_pause(self) -> None:
        r = self._runner_view()
        if r is None:
            self.notify("no runner selected", severity="warning")           # type: ignore[attr-defined]
            return
        port, actor = self.app.api, self.app.actor                          # type: ignore[attr-defined]
        if r.paused:
            res = await self._runner_command("resume", port.resume_runner(actor, r.symbol, r.strategy))
            if res is not None:
                self.notify(f"{r.symbol} {r.strategy} resumed: entries from the next candle", timeout=6)  # type: ignore[attr-defined]
        else:
            res = await self._runner_command("pause", port.pause(actor, r.symbol, r.strategy))
            if res is not None:
                self.notify(f"{r.symbol} {r.strategy} PAUSED: {res.get('cancelled_entries', 0)} entry order(s) "  # type: ignore[attr-defined]
                            "cancelled, stop and take-profit kept", severity="warning", timeout=8)

    async def action_force_exit(self) -> None:
        r = self._runner_view()
        if r is None:
            self.notify("no runner selected", severity="warning")           # type: ignore[attr-defined]
            return
        port, actor = self.app.api, self.app.actor                          # type: ignore[attr-defined]
        res = await self._runner_command("force-exit", port.flatten(actor, r.symbol, r.strategy))
        if res is not None:
            self.notify(f"{r.symbol} {r.strategy}: {res.get('flattened', 0)} position(s) closed at market, "  # type: ignore[attr-defined]
                        f"{res.get('cancelled_entries', 0)} entry order(s) cancelled", severity="warning", timeout=8)
