"""One module per benchmark case; each has `run(rounds, quick) -> dict` (see bench.runner)."""
