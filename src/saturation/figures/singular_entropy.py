"""Paper Fig. 5: singular entropy KL(σ̂‖u) of the LM head along training, one line per run
coloured by width.

It falls while the head's spectrum flattens and rises sharply when the spectrum collapses.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from saturation.figures import style


def plot(table: pd.DataFrame, png: str | Path, pdf: str | Path) -> plt.Figure:
    """Draws and saves the figure; returns it (closed) so its plotted data can be read back."""
    style.setup()
    frame = style.metric_frame(table, "singular_entropy")
    fig, ax = plt.subplots(figsize=(6, 4))
    style.lines_by_run(frame, ax)
    ax.set_yscale("log")
    ax.set_ylabel("singular entropy KL(σ̂ ‖ u) (nats)")
    ax.set_title("LM-head singular entropy along training")
    style.save(fig, png, pdf)
    return fig
