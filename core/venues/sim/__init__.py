"""The simulated venue: the matching engines of `../shared/specs/envelope_dca.md` and
`docs/single_position.md` (used by the event backtest), and the venues that put them behind
the `Gateway` contract for paper trading and replays (as nautilus_trader's sandbox wraps its
simulated exchange as a live client)."""
