"""SQLite storage: one database in WAL mode, versioned migrations, sync and async access."""
