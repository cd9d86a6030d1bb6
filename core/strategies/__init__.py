"""Trading strategies: their parameter models (`params`) and, per strategy, its signal logic."""
