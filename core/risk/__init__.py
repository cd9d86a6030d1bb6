"""Pre-trade risk checks and the loss limits that trip the kill switch.

* `rejection`: `Approved`, `Rejection` and the machine-readable `RejectCode`.
* `limits`: the pure rule checks (`EntryCheck`, `PortfolioView`, caps, margin, loss fractions).
* `state`: the persisted equity peak and daily baseline (`RiskState`, `RiskStore`, migration 6).
* `manager`: `RiskManager`, which the executor calls before every entry and after every equity update.
"""

from core.risk.limits import EntryCheck, Exposure, PortfolioView, margin_required
from core.risk.manager import TRIP_DAILY_LOSS, TRIP_DRAWDOWN, RiskManager, TripDecision, groups_from_assets
from core.risk.rejection import Approved, CheckResult, RejectCode, Rejection
from core.risk.state import RiskState, RiskStore

__all__ = [
    "Approved", "CheckResult", "EntryCheck", "Exposure", "PortfolioView", "RejectCode", "Rejection",
    "RiskManager", "RiskState", "RiskStore", "TRIP_DAILY_LOSS", "TRIP_DRAWDOWN", "TripDecision",
    "groups_from_assets", "margin_required",
]
