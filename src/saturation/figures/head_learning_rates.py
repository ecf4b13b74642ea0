"""Paper Fig. 9: the learning rate each rank chose. Left: the peak learning rate of lowest
select-half loss against the rank r (log-log), one colour per swept checkpoint, one line style
per init, the full-rank head at r = d as a cross. Right: the final select-half loss of every
learning rate searched, per rank (one line per (checkpoint, rank), the better init), so a
choice at the edge of the grid is visible as one.

In the paper, low ranks want larger learning rates (they have fewer parameters to move far).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from saturation.figures import DEFAULT_OPTIONS, FigureOptions, style
from saturation.figures.head_sweeps import (
    INIT_STYLES,
    best_of_inits,
    chosen,
    series_palette,
    with_series,
)


def plot(
    table: pd.DataFrame, png: str | Path, pdf: str | Path, options: FigureOptions = DEFAULT_OPTIONS
) -> plt.Figure:
    """Draws and saves the figure; returns it (closed) so its plotted data can be read back."""
    style.setup()
    heads = chosen(table)
    palette = series_palette(heads)
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.4))
    for order, (series, colour) in enumerate(palette.items()):
        rows = heads[heads["series"] == series]
        size = 4 + 3 * (len(palette) - 1 - order)  # checkpoints that chose alike stay visible
        for init, line in INIT_STYLES.items():
            curve = rows[(rows["head"] == "low_rank") & (rows["init"] == init)].sort_values("rank")
            if not curve.empty:
                left.plot(curve["rank"], curve["lr"], line, color=colour, markersize=size,
                          markerfacecolor="none", label=f"{series}, {init} init")  # fmt: skip
            full = rows[(rows["head"] == "full_rank") & (rows["init"] == init)]
            left.scatter(full["rank"], full["lr"], marker="x", color=colour, s=40, zorder=5)
    left.set_xscale("log", base=2)
    left.set_yscale("log")
    left.set_xlabel("rank r (×: full-rank head, at r = d)")
    left.set_ylabel("chosen peak learning rate")
    left.legend(fontsize=7)
    searched = with_series(table[table["head"] == "low_rank"])
    best = best_of_inits(heads[heads["head"] == "low_rank"])[["series", "rank", "init"]]
    searched = searched.merge(best, on=["series", "rank", "init"])
    ranks = sorted(searched["rank"].unique())
    shades = dict(zip(ranks, plt.cm.plasma([i / max(len(ranks), 1) for i in range(len(ranks))]),
                      strict=True))  # fmt: skip
    labelled = set()
    for (_series, rank), rows in searched.groupby(["series", "rank"]):
        rows = rows.sort_values("lr")
        right.plot(rows["lr"], rows["select_loss"], "o-", color=shades[rank], markersize=3,
                   label=None if rank in labelled else f"r = {rank}")  # fmt: skip
        labelled.add(rank)
    right.set_xscale("log")
    right.set_xlabel("peak learning rate")
    right.set_ylabel("select-half loss after training (every checkpoint)")
    right.legend(fontsize=7, title="rank")
    fig.suptitle("The learning-rate search of the rank-constrained heads")
    style.save(fig, png, pdf)
    return fig
