"""The Bitget stand-in as the aimed crash-point test (tests/engine/test_live_crashpoints.py) uses it.

`CrashStandIn` is `BitgetPrivateStub` with two additions:

* the market goes through each candle ONCE: a /test/mark walk for a candle whose close time
  (`now_ms`) was walked already is not applied again (the protection check still runs). A worker
  killed in the middle of candle t restarts after its cursor t-1 and is handed candle t again; the
  real market does not replay candle t for it, and re-walking the path would fill orders the
  engine placed at t's close on t's own lows (a run no uninterrupted engine could have);
* `created`: every request to create an order of ours that reached the exchange's handler (past
  any injected fault) as (endpoint, client id, accepted): placed orders (place-order
  `clientOid`), amended-to orders (modify-order `newClientOid`) and stops (place-tpsl-order
  `clientOid`). A client id of ours in it twice means it was SENT twice (`duplicate_sends`),
  whatever the exchange answered;
* `hold_exit_at = n`: the n-th market exit of ours (client id `...-x`, counted in `exits_seen`
  from the start) is executed (the position closed, the fill booked) but its answer is held
  back: `exit_held` is set and the request hangs until `release()` or the stand-in closes. A
  test kills the engine meanwhile: the close happened, the engine never heard of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from typing import Any

from tests.support.bitget_private_stub import MODIFY_ORDER, PLACE_ORDER, PLACE_TPSL, BitgetPrivateStub

_EXIT = re.compile(r"-\d+-x$")        # a market exit's client id (core.executor.client_ids)


class CrashStandIn(BitgetPrivateStub):
    """See the module docstring."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.walked_until = 0                  # close time (ms) of the last candle walked
        self.rewalks = 0                       # /test/mark walks skipped (candle walked already)
        self.created: list[tuple[str, str, bool]] = []
        self.exits_seen = 0
        self.hold_exit_at: int | None = None
        self.exit_held = asyncio.Event()
        self._release = asyncio.Event()

    async def _control_mark(self, q: dict) -> Any:
        now = int(q.get("now_ms") or 0)
        if now and now <= self.walked_until:
            self.rewalks += 1
            if not self.protected(q["symbol"]):
                self.unprotected.append(now)
            return {"ok": True}
        self.walked_until = max(self.walked_until, now)
        return await super()._control_mark(q)

    def _note(self, path: str, cid: str | None, res: Any) -> Any:
        if cid:
            self.created.append((path, cid, not callable(res)))
        return res

    async def _place_order(self, q: dict) -> Any:
        cid = q.get("clientOid")
        res = self._note(PLACE_ORDER, cid, await super()._place_order(q))
        if cid and _EXIT.search(cid) and not callable(res):
            self.exits_seen += 1
            if self.exits_seen == self.hold_exit_at:
                self.exit_held.set()
                self._release.clear()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._release.wait(), 30)
        return res

    def release(self) -> None:
        """Let a held exit answer go (its engine is gone: nobody reads it)."""
        self._release.set()

    async def _modify_order(self, q: dict) -> Any:
        return self._note(MODIFY_ORDER, q.get("newClientOid"), await super()._modify_order(q))

    async def _place_tpsl(self, q: dict) -> Any:
        return self._note(PLACE_TPSL, q.get("clientOid"), await super()._place_tpsl(q))

    def duplicate_sends(self, prefix: str) -> list[str]:
        """Client ids starting with `prefix` that reached an order-creating handler more than once."""
        seen: dict[str, int] = {}
        for _path, cid, _ok in self.created:
            if cid.startswith(prefix):
                seen[cid] = seen.get(cid, 0) + 1
        return sorted(c for c, n in seen.items() if n > 1)
