"""Playing a recording back (recording.py) through the live display: its refreshes in
order, compressed to a few seconds, then its Result."""

from __future__ import annotations

import os
import time
from typing import Callable, Optional

from dtrace_nb.display.cell import CellContent, CellView
from dtrace_nb.display.controlbar import BarState
from dtrace_nb.display.plots import histogram_png
from dtrace_nb.result.result import Result

REPLAY_SECONDS = 3.0  # how long playing back the refreshes takes at most


def _view(stage: str, content: CellContent) -> CellView:
    state = BarState(stage=stage)
    return CellView(state.html(), f"dtrace-nb: {stage}", content)


def replay(path: str, display: Callable, max_rows: int = 20, plot_style: str = "default",
           plots: bool = True, on_output: Optional[Callable[[str], None]] = None,
           seconds: float = REPLAY_SECONDS, load: Callable[[str], Result] = Result.load
           ) -> Result:
    """Show a recording's refreshes through the live display, then return its Result
    (`load`: the kind of Result it records, e.g. FleetResult.load)."""
    result = load(path)
    label = os.path.basename(path)
    handle = display(_view(f"replaying {label}", CellContent()), display_id=True)
    refreshes = result.refreshes
    pause = min(0.5, seconds / max(1, len(refreshes)))
    for _t, status, frames, funcs in refreshes:
        png = histogram_png({n: (funcs.get(n, ""), df) for n, df in frames.items()},
                            plot_style) if plots else None
        handle.update(_view(f"{status} (replay of {label})",
                            CellContent(frames=frames, funcs=funcs, png=png,
                                        max_rows=max_rows)))
        time.sleep(pause)
    png = histogram_png(result._histograms(), plot_style) if plots else None
    final = CellContent(frames=dict(result.aggregations), funcs=dict(result.funcs), png=png,
                        final_text=result.output, max_rows=max_rows, live=False)
    handle.update(_view(f"replayed {label}: recorded {result.duration:.1f} s, "
                        f"{result.records} records", final))
    if on_output is not None and result.output and not plots:
        on_output(result.output)
    result.plot_style = plot_style
    return result
