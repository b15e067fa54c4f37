"""Built-in providers. Each module implements dtrace_nb.probes.Provider."""
