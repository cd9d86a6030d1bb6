"""core.risk: entry rules at their boundaries, loss-limit trips, persisted peak and baseline."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.config.assets import AssetsFile
from core.config.risk import RiskConfig
from core.events.bus import EventBus, RiskRejection
from core.model.clock import ManualClock
from core.risk import (
    TRIP_DAILY_LOSS,
    TRIP_DRAWDOWN,
    Approved,
    EntryCheck,
    Exposure,
    PortfolioView,
    RejectCode,
    RiskManager,
    RiskStore,
    groups_from_assets,
    margin_required,
)
from core.risk.state import DAY_MS, utc_day_start

REPO = Path(__file__).resolve().parents[2]
DAY0 = 1_717_200_000_000 - 1_717_200_000_000 % DAY_MS      # 2024-06-01 00:00 UTC
HOUR = 3_600_000

LIMITS = {
    "leverage_cap": 3,
    "max_open_positions": 4,
    "max_notional_per_symbol": 5000.0,
    "max_total_notional": 10000.0,
    "daily_loss_limit": 0.05,
    "max_drawdown": 0.20,
    "max_same_direction_per_group": 2,
}
GROUPS = {"A/USDT:USDT": "g", "B/USDT:USDT": "g", "C/USDT:USDT": "g", "D/USDT:USDT": "h"}


def make_config(flatten: bool = True, **limits) -> RiskConfig:
    return RiskConfig.model_validate({
        "account": {"initial_capital": 10000.0, "leverage": 1},
        "fees": {"maker": 0.0002, "taker": 0.0006},
        "limits": {**LIMITS, **limits},
        "kill_switch": {"flatten_on_trip": flatten},
        "stops": {"recheck_interval_s": 30.0, "placement_retries": 3},
    })


@pytest.fixture
def store(db_path: Path):
    s = RiskStore.open(db_path)
    yield s
    s.close()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(DAY0 + 12 * HOUR)


def manager(store: RiskStore, clock: ManualClock, bus: EventBus | None = None, **limits) -> RiskManager:
    return RiskManager(make_config(**limits), GROUPS, store, clock, bus)


def entry(symbol: str = "A/USDT:USDT", notional: float = 100.0, *, side: str = "long", leverage: float = 1,
          new: bool = True, level: int = 0) -> EntryCheck:
    return EntryCheck(symbol, side, notional, leverage, new, level, strategy="grid")


def pos(symbol: str, notional: float, side: str = "long") -> Exposure:
    return Exposure(symbol, side, notional)


def view(*positions: Exposure, free: float = 1e9, pending: tuple[Exposure, ...] = ()) -> PortfolioView:
    return PortfolioView(positions, free, pending)


def code(result) -> RejectCode | None:
    return None if isinstance(result, Approved) else result.code


# ---------------------------------------------------------------------------- entry rules


def test_leverage_cap_is_inclusive(store, clock):
    rm = manager(store, clock)
    assert code(rm.check_entry(entry(leverage=3), view())) is None
    r = rm.check_entry(entry(leverage=3.01), view())
    assert code(r) == RejectCode.LEVERAGE_CAP and r.limit == 3 and "leverage_cap" in r.reason


def test_max_open_positions_refuses_a_new_position_at_the_maximum(store, clock):
    rm = manager(store, clock)
    three = [pos(s, 10) for s in ("D/USDT:USDT", "X/USDT", "Y/USDT")]
    assert code(rm.check_entry(entry("Z/USDT"), view(*three))) is None
    four = three + [pos("W/USDT", 10)]
    r = rm.check_entry(entry("Z/USDT"), view(*four))
    assert code(r) == RejectCode.MAX_OPEN_POSITIONS and (r.value, r.limit) == (5, 4)
    # a later grid level is not a new position: only notional and margin apply
    assert code(rm.check_entry(entry("W/USDT", new=False, level=1), view(*four))) is None


def test_pending_first_levels_count_as_positions_but_later_levels_do_not(store, clock):
    rm = manager(store, clock)
    three = [pos(s, 10) for s in ("D/USDT:USDT", "X/USDT", "Y/USDT")]
    later = Exposure("Y/USDT", "long", 10, opens_position=False)
    assert code(rm.check_entry(entry("Z/USDT"), view(*three, pending=(later,)))) is None
    first = Exposure("W/USDT", "long", 10, opens_position=True)
    assert code(rm.check_entry(entry("Z/USDT"), view(*three, pending=(first,)))) == RejectCode.MAX_OPEN_POSITIONS


def test_group_same_direction_limit(store, clock):
    rm = manager(store, clock)
    one = [pos("A/USDT:USDT", 10)]
    assert code(rm.check_entry(entry("B/USDT:USDT"), view(*one))) is None
    two = one + [pos("B/USDT:USDT", 10)]
    r = rm.check_entry(entry("C/USDT:USDT"), view(*two))
    assert code(r) == RejectCode.GROUP_SAME_DIRECTION and (r.value, r.limit) == (3, 2)
    assert "'g'" in r.reason and "A/USDT:USDT" in r.reason
    # the other side, another group, a symbol without a group, a later level: all allowed
    assert code(rm.check_entry(entry("C/USDT:USDT", side="short"), view(*two))) is None
    assert code(rm.check_entry(entry("D/USDT:USDT"), view(*two))) is None
    assert code(rm.check_entry(entry("Z/USDT"), view(*two))) is None
    assert code(rm.check_entry(entry("A/USDT:USDT", new=False, level=2), view(*two))) is None
    # shorts in the group do not count toward the long limit, pending first levels do
    mixed = [pos("A/USDT:USDT", 10), pos("B/USDT:USDT", 10, "short")]
    assert code(rm.check_entry(entry("C/USDT:USDT"), view(*mixed))) is None
    pend = (Exposure("B/USDT:USDT", "long", 10, opens_position=True),)
    assert code(rm.check_entry(entry("C/USDT:USDT"), view(*one, pending=pend))) == RejectCode.GROUP_SAME_DIRECTION


def test_symbol_notional_cap_is_inclusive(store, clock):
    rm = manager(store, clock)
    have = [pos("A/USDT:USDT", 3000), pos("D/USDT:USDT", 4000)]       # D does not count toward A
    assert code(rm.check_entry(entry(notional=2000, new=False), view(*have))) is None
    r = rm.check_entry(entry(notional=2000.01, new=False), view(*have))
    assert code(r) == RejectCode.MAX_NOTIONAL_PER_SYMBOL and r.value == pytest.approx(5000.01)
    # resting entry orders of the symbol count too
    pend = (Exposure("A/USDT:USDT", "long", 1000.0),)
    assert code(rm.check_entry(entry(notional=1000.01, new=False), view(*have, pending=pend))) \
        == RejectCode.MAX_NOTIONAL_PER_SYMBOL
    assert code(rm.check_entry(entry(notional=1000, new=False), view(*have, pending=pend))) is None


def test_float_rounding_at_a_cap_is_not_a_rejection(store, clock):
    rm = manager(store, clock, max_notional_per_symbol=0.3)
    assert 0.1 + 0.2 > 0.3                                             # 0.30000000000000004
    assert code(rm.check_entry(entry(notional=0.2, new=False), view(pos("A/USDT:USDT", 0.1)))) is None
    assert code(rm.check_entry(entry(notional=0.2001, new=False), view(pos("A/USDT:USDT", 0.1)))) \
        == RejectCode.MAX_NOTIONAL_PER_SYMBOL


def test_total_notional_cap_is_inclusive(store, clock):
    rm = manager(store, clock)
    have = [pos("D/USDT:USDT", 4000), pos("X/USDT", 4000, "short")]    # both sides count
    assert code(rm.check_entry(entry(notional=2000), view(*have))) is None
    r = rm.check_entry(entry(notional=2000.01), view(*have))
    assert code(r) == RejectCode.MAX_TOTAL_NOTIONAL and r.limit == 10000


def test_margin_check_notional_over_leverage_plus_round_trip_fees(store, clock):
    rm = manager(store, clock)
    need = 1000 / 2 + 1000 * 2 * 0.0006                                 # 501.2 USDT
    assert margin_required(1000, 2, make_config().fees) == pytest.approx(need)
    ok = rm.check_entry(entry(notional=1000, leverage=2), view(free=need))
    assert isinstance(ok, Approved) and ok.margin_required == pytest.approx(need)
    r = rm.check_entry(entry(notional=1000, leverage=2), view(free=need - 0.01))
    assert code(r) == RejectCode.MARGIN and r.value == pytest.approx(need)
    # later grid levels are margin-checked too
    assert code(rm.check_entry(entry(notional=1000, leverage=2, new=False, level=3), view(free=500))) \
        == RejectCode.MARGIN


def test_unusable_portfolio_fails_closed(store, clock):
    rm = manager(store, clock)
    assert code(rm.check_entry(entry(), view(free=math.nan))) == RejectCode.PORTFOLIO_INVALID
    assert code(rm.check_entry(entry(), view(pos("X/USDT", math.nan)))) == RejectCode.PORTFOLIO_INVALID
    assert code(rm.check_entry(entry(), view(free=-1.0))) == RejectCode.MARGIN


@pytest.mark.parametrize("kwargs", [{"side": "buy"}, {"notional": 0.0}, {"notional": math.inf},
                                    {"leverage": 0.5}, {"leverage": math.nan}])
def test_entry_check_refuses_bad_inputs(kwargs):
    with pytest.raises(ValueError):
        entry(**kwargs)


def test_rejections_are_counted_per_code_published_and_persisted(db_path, clock):
    bus = EventBus()
    sub = bus.subscribe([RiskRejection])
    store = RiskStore.open(db_path)
    rm = manager(store, clock, bus)
    rm.check_entry(entry(leverage=5), view())
    rm.check_entry(entry(leverage=4), view())
    rm.check_entry(entry(notional=100), view(free=1.0))
    rm.check_entry(entry(), view())                                    # approved: not counted
    assert rm.rejections == {"leverage_cap": 2, "margin": 1}
    events = [sub.get_nowait() for _ in range(3)]
    assert [e.reason for e in events] == ["leverage_cap", "leverage_cap", "margin"]
    assert events[0] == RiskRejection("grid", "A/USDT:USDT", clock(), "leverage_cap", events[0].detail)
    assert "leverage 5" in events[0].detail
    assert len(sub) == 0
    store.close()
    store2 = RiskStore.open(db_path)
    rm2 = manager(store2, clock)
    assert rm2.rejections == {"leverage_cap": 2, "margin": 1}
    rm2.check_entry(entry(leverage=9), view(), ts_ms=clock() + 5)
    assert store2.rejection_counts() == {"leverage_cap": 3, "margin": 1}
    row = store2.conn.execute("SELECT first_ms, last_ms, last_symbol FROM risk_rejections "
                              "WHERE code='leverage_cap'").fetchone()
    assert row == (clock(), clock() + 5, "A/USDT:USDT")
    store2.close()


def test_groups_from_the_repository_assets_file():
    doc = yaml.safe_load((REPO / "config" / "assets.yaml").read_text())
    groups = groups_from_assets(AssetsFile.model_validate(doc))
    assert groups["BTC/USDT:USDT"] == groups["ETH/USDT:USDT"] == "majors"
    risk = RiskConfig.model_validate(yaml.safe_load((REPO / "config" / "risk.yaml").read_text()))
    assert risk.limits.max_same_direction_per_group >= 1


# ---------------------------------------------------------------------------- trips


def test_daily_loss_trips_at_the_limit_not_just_inside(store, clock):
    rm = manager(store, clock)
    assert rm.on_equity(10000.0) is None                               # day-start baseline
    assert rm.on_equity(9500.01, clock() + HOUR) is None               # 4.9999 %
    d = rm.on_equity(9500.0, clock() + 2 * HOUR)                       # exactly 5 %
    assert d is not None and d.code == TRIP_DAILY_LOSS and d.new and d.flatten
    assert d.reference == 10000.0 and d.fraction == pytest.approx(0.05) and d.limit == 0.05
    assert "daily_loss_limit" in d.reason
    again = rm.on_equity(9400.0, clock() + 3 * HOUR)                   # still breached: level-triggered
    assert again is not None and not again.new
    assert rm.state.tripped and rm.state.trip_ms == clock() + 2 * HOUR


def test_flatten_follows_kill_switch_config(store, clock):
    rm = RiskManager(make_config(flatten=False), GROUPS, store, clock)
    rm.on_equity(10000.0)
    assert rm.on_equity(9000.0).flatten is False


def test_drawdown_trips_at_the_limit_not_just_inside(store, clock):
    rm = manager(store, clock)
    rm.on_equity(10000.0, DAY0)                                        # peak
    rm.on_equity(8100.0, DAY0 + DAY_MS)                                # next day: baseline 8100, dd 19 %
    assert rm.on_equity(8000.01, DAY0 + DAY_MS + HOUR) is None         # dd 19.9999 %, day 1.2 %
    d = rm.on_equity(8000.0, DAY0 + DAY_MS + 2 * HOUR)                 # dd exactly 20 %
    assert d is not None and d.code == TRIP_DRAWDOWN and d.reference == 10000.0
    assert d.fraction == pytest.approx(0.20) and "max_drawdown" in d.reason
    assert rm.drawdown() == pytest.approx(0.20)


def test_both_limits_breached_names_both_drawdown_first(store, clock):
    rm = manager(store, clock)
    rm.on_equity(10000.0)
    d = rm.on_equity(7000.0)
    assert d.code == TRIP_DRAWDOWN and "max_drawdown" in d.reason and "daily_loss_limit" in d.reason


def test_day_roll_resets_the_baseline_not_the_peak(store, clock):
    rm = manager(store, clock)
    rm.on_equity(10000.0, DAY0 + HOUR)
    rm.on_equity(9600.0, DAY0 + DAY_MS - 1)                            # 23:59:59.999, same day, -4 %
    assert rm.state.day_start_ms == DAY0 and rm.state.day_start_equity == 10000.0
    rm.on_equity(9600.0, DAY0 + DAY_MS)                                # 00:00:00.000 next day
    st_ = rm.state
    assert (st_.day_start_ms, st_.day_start_equity) == (DAY0 + DAY_MS, 9600.0)
    assert (st_.peak_equity, st_.peak_ms) == (10000.0, DAY0 + HOUR)
    # 4.9 % below the new baseline (8.7 % below the old one): no trip
    assert rm.on_equity(9130.0, DAY0 + DAY_MS + HOUR) is None
    assert rm.daily_loss() == pytest.approx((9600 - 9130) / 9600)


def test_daily_trip_ends_with_the_day(store, clock):
    rm = manager(store, clock)
    rm.on_equity(10000.0, DAY0)
    assert rm.on_equity(9400.0, DAY0 + HOUR).code == TRIP_DAILY_LOSS
    assert rm.on_equity(9400.0, DAY0 + DAY_MS) is None                 # new day, new baseline
    assert not rm.state.tripped and rm.state.trip_code == TRIP_DAILY_LOSS   # latest trip kept


def test_an_update_stamped_before_the_stored_day_keeps_the_baseline(store, clock):
    rm = manager(store, clock)
    rm.on_equity(10000.0, DAY0 + DAY_MS)
    rm.on_equity(9900.0, DAY0 + HOUR)                                  # clock went back a day
    assert (rm.state.day_start_ms, rm.state.day_start_equity) == (DAY0 + DAY_MS, 10000.0)


def test_reset_peak_is_the_only_way_down_and_ends_a_drawdown_breach(store, clock):
    rm = manager(store, clock)
    rm.on_equity(10000.0, DAY0)
    rm.on_equity(7900.0, DAY0 + DAY_MS)
    assert rm.on_equity(7900.0, DAY0 + DAY_MS + 1).code == TRIP_DRAWDOWN
    rm.reset_peak(7900.0, DAY0 + DAY_MS + 2)
    assert rm.state.peak_equity == 7900.0
    assert rm.on_equity(7900.0, DAY0 + DAY_MS + 3) is None
    assert RiskStore(store.conn).load().peak_equity == 7900.0


def test_non_finite_equity_is_refused(store, clock):
    rm = manager(store, clock)
    with pytest.raises(ValueError):
        rm.on_equity(math.nan)
    assert rm.state is None


def test_utc_day_start():
    assert utc_day_start(DAY0) == DAY0
    assert utc_day_start(DAY0 + DAY_MS - 1) == DAY0
    assert utc_day_start(DAY0 + DAY_MS) == DAY0 + DAY_MS


# ---------------------------------------------------------------------------- persistence


def test_restart_same_day_keeps_the_stored_baseline_and_peak(db_path, clock):
    s1 = RiskStore.open(db_path)
    rm = manager(s1, clock)
    rm.on_equity(10000.0, DAY0 + HOUR)
    rm.on_equity(9700.0, DAY0 + 2 * HOUR)
    s1.close()
    s2 = RiskStore.open(db_path)                                       # a new process, same day
    rm2 = manager(s2, clock)
    assert rm2.state.day_start_equity == 10000.0 and rm2.state.peak_equity == 10000.0
    d = rm2.on_equity(9500.0, DAY0 + 3 * HOUR)                         # 5 % from the STORED baseline
    assert d is not None and d.code == TRIP_DAILY_LOSS and d.reference == 10000.0
    assert rm2.state.peak_equity == 10000.0                            # not lowered by the restart
    s2.close()


def test_restart_next_day_takes_a_new_baseline_keeps_the_peak(db_path, clock):
    s1 = RiskStore.open(db_path)
    manager(s1, clock).on_equity(10000.0, DAY0 + HOUR)
    s1.close()
    s2 = RiskStore.open(db_path)
    rm2 = manager(s2, clock)
    assert rm2.on_equity(9000.0, DAY0 + DAY_MS + 5 * HOUR) is None     # day 2 baseline = 9000
    assert (rm2.state.day_start_ms, rm2.state.day_start_equity) == (DAY0 + DAY_MS, 9000.0)
    assert (rm2.state.peak_equity, rm2.state.peak_ms) == (10000.0, DAY0 + HOUR)
    s2.close()


def test_restart_while_tripped_trips_again(db_path, clock):
    s1 = RiskStore.open(db_path)
    rm = manager(s1, clock)
    rm.on_equity(10000.0, DAY0)
    assert rm.on_equity(9000.0, DAY0 + HOUR).new
    s1.close()
    s2 = RiskStore.open(db_path)
    rm2 = manager(s2, clock)
    assert rm2.state.tripped and rm2.state.trip_code == TRIP_DAILY_LOSS
    d = rm2.on_equity(9000.0, DAY0 + 2 * HOUR)
    assert d is not None and d.code == TRIP_DAILY_LOSS and not d.new
    s2.close()


updates = st.lists(
    st.tuples(st.floats(min_value=1.0, max_value=1e7, allow_nan=False),   # equity, USDT
              st.integers(min_value=0, max_value=2 * DAY_MS),              # ms since the previous update
              st.booleans()),                                              # restart before it
    min_size=1, max_size=40)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seq=updates)
def test_peak_is_never_below_the_highest_equity_seen(store, seq):
    store.conn.execute("DELETE FROM risk_state")
    clock = ManualClock(DAY0)
    rm = manager(store, clock)
    highest = -math.inf
    for equity, dt, restart in seq:
        clock.advance(dt)
        if restart:
            rm = manager(store, clock)
        rm.on_equity(equity)
        highest = max(highest, equity)
        assert rm.state.peak_equity == highest
        assert store.load().peak_equity == highest
        assert rm.drawdown() >= 0
