"""Backtesting: the event-driven engine (shared matching engine), the numba fast engine, metrics."""
