"""The `radar` command line: one console script with subcommands."""
