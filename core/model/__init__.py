"""The bottom layer of Radar's engine: the domain types every other package shares.

Account settings, cycles, sides, candles, fills, orders and their venue errors, the position
book and the clock. Nothing here imports from another package of `core` except `core.errors`,
so the backtest, the simulated venue, the exchange venues, the executor and the engine can
all depend on it without depending on each other.
"""
