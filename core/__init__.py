"""Radar's engine: data, storage, indicators, strategies, backtest, execution.

The console (`tui/`) depends on this package; nothing here imports `tui/`.
"""

__version__ = "0.1.0"
