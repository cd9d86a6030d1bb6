"""The trading engine: runners per (strategy, symbol), the Engine that wires data -> runners ->
executor -> bus, its API and reports."""
