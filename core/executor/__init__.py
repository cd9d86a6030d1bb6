"""Order execution: strategy intents -> gateway orders, with write-ahead state in SQLite.

* `gateway`: the `Gateway` protocol (paper and, later, ccxt) and its typed errors.
* `paper`: `PaperGateway`, the backtester's matching engine behind the gateway protocol.
* `client_ids`: deterministic client order ids.
* `executor`: `GridExecutor`, one per (strategy, symbol).
* `single_paper`: `SinglePaperGateway`, the single-position matching engine behind the protocol.
* `single_executor`: `SingleExecutor`, the orders and records of a single-position runner.
* `state_store`: the SQLite tables of the trading state (migration 5), the engine lock.
* `kill_switch`: the persisted kill switch.
"""
