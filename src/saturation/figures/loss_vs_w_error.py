"""Paper Fig. 8 and Theorem 5.3. Left: the held-out loss of the rank-r head retrained on a
checkpoint's states against the W-error at rank r of the checkpoint's own head,
‖σ_{r+1:}‖ / ‖W‖_F, one colour per swept checkpoint (each point a rank; the better init). Right
(beyond the paper's figure): the loss gap of the rank-r head to the full-rank head retrained the
same way against √(Σ_{i>r} σ_i²) of the own head, the quantity Theorem 5.3 bounds the gap by
(up to the states' norm), so how loose the bound is can be seen.

In the paper the loss grows with the W-error, nearly linearly once it exceeds a few per cent.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from saturation.figures import DEFAULT_OPTIONS, FigureOptions, style
from saturation.figures.head_sweeps import best_of_inits, chosen, series_palette


def plot(
    table: pd.DataFrame, png: str | Path, pdf: str | Path, options: FigureOptions = DEFAULT_OPTIONS
) -> plt.Figure:
    """Draws and saves the figure; returns it (closed) so its plotted data can be read back."""
    style.setup()
    heads = best_of_inits(chosen(table))
    palette = series_palette(heads)
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.4))
    for series, colour in palette.items():
        rows = heads[heads["series"] == series]
        low_rank = rows[rows["head"] == "low_rank"].sort_values("rank")
        left.plot(low_rank["w_error"], low_rank["loss"], "o-", color=colour, markersize=4,
                  label=series)  # fmt: skip
        for _, row in low_rank.iterrows():
            left.annotate(f"{int(row['rank'])}", (row["w_error"], row["loss"]), xytext=(3, 3),
                          textcoords="offset points", fontsize=6)  # fmt: skip
        full = rows[rows["head"] == "full_rank"]
        if full.empty:
            continue
        gap = low_rank[low_rank["tail_norm"] > 0]
        right.plot(gap["tail_norm"], gap["loss"] - full["loss"].iloc[0], "o-", color=colour,
                   markersize=4, label=series)  # fmt: skip
    left.set_xlabel("W-error of the own head at rank r")
    left.set_ylabel("held-out loss of the rank-r head (nats/token)")
    left.legend(fontsize=7)
    right.set_xscale("log")
    right.axhline(0, color="grey", linewidth=0.8)
    right.set_xlabel("√(Σ_{i>r} σ_i²) of the own head (Theorem 5.3)")
    right.set_ylabel("loss gap to the retrained full-rank head")
    right.legend(fontsize=7)
    fig.suptitle("What the rank costs: loss against the head's W-error")
    style.save(fig, png, pdf)
    return fig
