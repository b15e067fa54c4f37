"""dtrace-nb: DTrace's D language on Linux eBPF, in Jupyter and on the command line."""

__version__ = "0.1.0"


def load_ipython_extension(ip):  # pragma: no cover - exercised through IPython
    from dtrace_nb.magics import register

    register(ip)


def unload_ipython_extension(ip):  # pragma: no cover
    from dtrace_nb.magics import unregister

    unregister(ip)
