"""Paper Fig. 6: rank-constrained heads on frozen models. The held-out loss (left) and accuracy
(right) of the head W = A B retrained on a checkpoint's cached states, against its rank r (log
scale), one colour per swept checkpoint, one line style per init; each point the learning rate
its (r, init) chose. Horizontal lines: the checkpoint's own head (dotted) and a full-rank head
retrained the same way (dash-dot, the better init), so what the rank costs is read against
retraining, not against the original head alone.

In the paper, loss falls and accuracy rises steeply up to r ≈ 64 … 128 and then flattens, well
below the widths of the models: the heads need far fewer dimensions than they have.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.ticker import ScalarFormatter

from saturation.figures import DEFAULT_OPTIONS, FigureOptions, style
from saturation.figures.head_sweeps import INIT_STYLES, best_of_inits, chosen, series_palette

METRICS = {"loss": "held-out loss (nats/token)", "accuracy": "next-token accuracy"}


def plot(
    table: pd.DataFrame, png: str | Path, pdf: str | Path, options: FigureOptions = DEFAULT_OPTIONS
) -> plt.Figure:
    """Draws and saves the figure; returns it (closed) so its plotted data can be read back."""
    style.setup()
    heads = chosen(table)
    palette = series_palette(heads)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4))
    for ax, (metric, label) in zip(axes, METRICS.items(), strict=True):
        for series, colour in palette.items():
            rows = heads[heads["series"] == series]
            low_rank = rows[rows["head"] == "low_rank"]
            for init, line in INIT_STYLES.items():
                curve = low_rank[low_rank["init"] == init].sort_values("rank")
                if not curve.empty:
                    ax.plot(curve["rank"], curve[metric], line, color=colour, markersize=4,
                            label=f"{series}, {init} init")  # fmt: skip
            own = rows[rows["head"] == "own"]
            ax.axhline(own[metric].iloc[0], color=colour, linestyle=":", linewidth=1.2,
                       label=f"{series}: own head")  # fmt: skip
            full = best_of_inits(rows[rows["head"] == "full_rank"])
            if not full.empty:
                ax.axhline(full[metric].iloc[0], color=colour, linestyle="-.", linewidth=1,
                           label=f"{series}: full rank, retrained")  # fmt: skip
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted(heads["rank"].unique()))
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.minorticks_off()
        ax.set_xlabel("rank r of the head W = A B")
        ax.set_ylabel(label)
    axes[1].legend(fontsize=7, loc="best")
    fig.suptitle("Rank-constrained heads on frozen checkpoints")
    style.save(fig, png, pdf)
    return fig
