"""Order execution: strategy quotes -> venue orders, with write-ahead state in SQLite.

One order path for paper and live: each executor drives any venue behind the `Gateway`
contract (`core.venues.sim` simulated, `core.venues.bitget` an exchange).

* `gateway`: the `Gateway` protocol every venue implements (the typed errors are `core.model.errors`).
* `grid_executor`: `GridExecutor`, the orders, fills and position book of one grid runner.
* `protection`: the whole-position stop after every fill (rule one) and the emergency close.
* `reconcile`: start-up reconciliation of a runner with its venue.
* `single_executor`: `SingleExecutor` (and its account, `SingleBook`), the orders and records of a
  single-position runner, through the same contract (plus one documented sim-only hook).
* `client_ids`: deterministic client order ids (with the database's epoch).
* `crashpoints`: named crash points for aimed crash tests.
* `risk_gate`: the pre-trade risk check of entries.
* `state_store`: the SQLite tables of the trading state, the engine lock.
* `kill_switch`: the persisted kill switch (account-wide and per symbol).
"""
