"""Playing a recording back (recording.py) through the live display: its refreshes in
order, compressed to a few seconds, then its Result."""

from __future__ import annotations

import os
import time
from typing import Callable, Optional

from dtrace_nb.display.live import LiveSnapshot
from dtrace_nb.display.plots import histogram_png
from dtrace_nb.result.result import Result

REPLAY_SECONDS = 3.0  # how long playing back the refreshes takes at most


def replay(path: str, display: Callable, max_rows: int = 20, plot_style: str = "default",
           plots: bool = True, on_output: Optional[Callable[[str], None]] = None,
           seconds: float = REPLAY_SECONDS) -> Result:
    """Show a recording's refreshes through the live display, then return its Result."""
    result = Result.load(path)
    label = os.path.basename(path)
    handle = display(LiveSnapshot(f"replaying {label}", {}, {}, max_rows), display_id=True)
    refreshes = result.refreshes
    pause = min(0.5, seconds / max(1, len(refreshes)))
    for _t, status, frames, funcs in refreshes:
        png = histogram_png({n: (funcs.get(n, ""), df) for n, df in frames.items()},
                            plot_style) if plots else None
        handle.update(LiveSnapshot(f"{status} (replay of {label})", frames, funcs, max_rows,
                                   png))
        time.sleep(pause)
    if on_output is not None and result.output:
        on_output(result.output)
    png = histogram_png(result._histograms(), plot_style) if plots else None
    handle.update(LiveSnapshot(f"replayed {label}: recorded {result.duration:.1f} s, "
                               f"{result.records} records", dict(result.aggregations),
                               dict(result.funcs), max_rows, png))
    result.plot_style = plot_style
    return result
