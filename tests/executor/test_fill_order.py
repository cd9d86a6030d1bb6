"""core.executor.fill_order.pick_unbooked: which of the venue's trades a poll has not booked yet,
and in what order they happened."""

from __future__ import annotations

from core.executor.fill_order import Wanted, pick_unbooked
from core.model.orders import VenueTrade


def trade(seq: int, side: str, qty: float, price: float, order: str, ts: int = 1_000, fee: float = 0.1) -> VenueTrade:
    return VenueTrade(str(seq), seq, order, None, side, price, qty, fee, ts)


def newest_first(*trades: VenueTrade) -> list[VenueTrade]:
    return sorted(trades, key=lambda t: (t.ts, t.seq), reverse=True)


def test_a_stop_out_then_the_rest_of_an_entry_comes_out_in_the_venues_order():
    booked_entry = trade(1, "buy", 0.5, 100.0, "o-e0", ts=900)       # booked by an earlier poll
    half = trade(2, "buy", 0.2, 95.0, "o-e1")                         # not booked: half of level 1
    stop = trade(3, "sell", 0.7, 90.0, "o-stop")                      # the stop closed 0.5 + 0.2
    rest = trade(4, "buy", 0.2, 95.0, "o-e1")                         # then the rest of level 1
    events, complete = pick_unbooked(newest_first(booked_entry, half, stop, rest),
                                     [Wanted("e1", "o-e1", "cid-e1", 0.4)], "sell", closed=0.7)
    assert complete
    assert [(e.trade.seq, e.key) for e in events] == [(2, "e1"), (3, None), (4, "e1")]


def test_older_trades_of_the_same_order_and_older_closes_stay_out():
    events, complete = pick_unbooked(
        newest_first(trade(1, "buy", 0.1, 100.0, "o-e1", ts=800), trade(2, "sell", 0.3, 99.0, "o-x", ts=850),
                     trade(3, "buy", 0.1, 98.0, "o-e1"), trade(4, "sell", 0.25, 97.0, "o-stop")),
        [Wanted("e1", "o-e1", "cid-e1", 0.1)], "sell", closed=0.25)
    assert complete
    assert [e.trade.seq for e in events] == [3, 4]


def test_a_trade_matched_by_client_id_when_the_venue_gives_no_order_id():
    t = VenueTrade("7", 7, None, "cid-e2", "buy", 50.0, 1.0, 0.0, 5)
    events, complete = pick_unbooked([trade(8, "sell", 1.0, 49.0, "o-s", ts=6), t],
                                     [Wanted("e2", None, "cid-e2", 1.0)], "sell", closed=1.0)
    assert complete and [e.key for e in events] == ["e2", None]


def test_trades_that_do_not_add_up_are_not_complete():
    # the stop's trade is not in the list yet
    _, complete = pick_unbooked(newest_first(trade(1, "buy", 0.2, 95.0, "o-e1")),
                                [Wanted("e1", "o-e1", "cid-e1", 0.2)], "sell", closed=0.5)
    assert not complete
    # the entry reported more than its trades show
    _, complete = pick_unbooked(newest_first(trade(1, "buy", 0.2, 95.0, "o-e1"), trade(2, "sell", 0.5, 90.0, "o-s")),
                                [Wanted("e1", "o-e1", "cid-e1", 0.3)], "sell", closed=0.5)
    assert not complete


def test_same_millisecond_trades_keep_the_venues_sequence():
    a = trade(11, "sell", 0.5, 90.0, "o-s", ts=7)
    b = trade(12, "buy", 0.5, 95.0, "o-e1", ts=7)
    events, complete = pick_unbooked([b, a], [Wanted("e1", "o-e1", "cid-e1", 0.5)], "sell", closed=0.5)
    assert complete and [e.trade.seq for e in events] == [11, 12]
