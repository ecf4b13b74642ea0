"""Paper Fig. 5: singular entropy KL(σ̂‖u) of the LM head along training, one line per run
coloured by width; beside it, the same of the row-centred head W − 1m̄ᵀ (`figures.head` shows
one of them alone).

It falls while the head's spectrum flattens and rises sharply when the spectrum collapses. The
right panel leaves out the mean row, which shifts every logit alike, so the softmax (and the loss)
cannot see it, while the optimiser still moves it: a rise on the left only is that row growing,
not the part of the head the loss constrains (docs/SCIENCE-NOTES.md).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from saturation.figures import DEFAULT_OPTIONS, FigureOptions, style

# the metric and the title of each head's panel (FigureOptions.head picks the panels)
PANELS = {
    "raw": ("singular_entropy", "head W"),
    "centred": ("singular_entropy_centred", "row-centred head W − 1m̄ᵀ"),
}


def plot(
    table: pd.DataFrame, png: str | Path, pdf: str | Path, options: FigureOptions = DEFAULT_OPTIONS
) -> plt.Figure:
    """Draws and saves the figure; returns it (closed) so its plotted data can be read back."""
    style.setup()
    panels = [PANELS[head] for head in options.heads]
    frames = [style.metric_frame(table, metric) for metric, _ in panels]
    fig, axes = plt.subplots(1, len(panels), figsize=(5.5 * len(panels), 4), sharey=True,
                             squeeze=False)  # fmt: skip
    for ax, frame, (_, head) in zip(axes[0], frames, panels, strict=True):
        style.lines_by_run(frame, ax, options.confidence)
        ax.set_yscale("log")
        ax.set_title(head)
    axes[0][0].set_ylabel("singular entropy KL(σ̂ ‖ u), σ̂ = σ / Σσ (nats)")
    fig.suptitle("LM-head singular entropy along training")
    style.save(fig, png, pdf)
    return fig
