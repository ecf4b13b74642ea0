"""Paper Fig. 4: the top singular values σ_i/σ_1 of the LM head along training, one panel per run
(ordered by width).

Rank 1 is the top row (always 1). The spectrum first flattens towards uniform (the rows below
rank 1 brighten); at saturation it collapses into a spike (they go dark while σ_1 dominates).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from saturation.figures import style

TOP_K = 100  # the paper's top-100


def ratios(spectra: pd.DataFrame, top_k: int = TOP_K) -> pd.DataFrame:
    """σ_i / σ_1 for the top-k ranks of every checkpoint of every run."""
    if spectra.empty:
        raise ValueError("the spectra table is empty")
    frame = spectra.copy()
    frame["ratio"] = frame["sigma"] / frame.groupby(["run", "step"])["sigma"].transform("max")
    return frame.loc[frame["rank"] <= top_k, ["run", "width", "step", "rank", "ratio"]]


def shown_ranks(spectra: pd.DataFrame, top_k: int = TOP_K) -> str:
    """What a panel shows: the top k of a run's ranks, or all of them when it has no more than
    k (the paper's top-100 is every singular value of a width below 100)."""
    ranks = int(spectra["rank"].max())
    return f"top {top_k} of {ranks} σ" if ranks > top_k else f"all {ranks} σ"


def plot(spectra: pd.DataFrame, png: str | Path, pdf: str | Path) -> plt.Figure:
    """Draws and saves the figure; returns it (closed) so its plotted data can be read back."""
    style.setup()
    frame = ratios(spectra)
    runs = frame[["width", "run"]].drop_duplicates().sort_values(["width", "run"])["run"].tolist()
    fig, axes = plt.subplots(1, len(runs), figsize=(3.2 * len(runs), 3.6), squeeze=False)
    for ax, run in zip(axes[0], runs, strict=True):
        mine = frame[frame["run"] == run]
        grid = mine.pivot(index="rank", columns="step", values="ratio")
        sns.heatmap(grid, vmin=0, vmax=1, cmap="magma", ax=ax, cbar=ax is axes[0][-1],
                    cbar_kws={"label": "σ_i / σ_1"}, yticklabels=max(1, len(grid) // 8),
                    xticklabels=max(1, grid.shape[1] // 12))  # fmt: skip
        width = mine["width"].iloc[0]
        ax.set_title(f"{run}: width {width}, {shown_ranks(spectra[spectra['run'] == run])}")
        ax.set_xlabel("training step")
        ax.set_ylabel("singular value rank i" if ax is axes[0][0] else "")
    fig.suptitle("LM-head spectrum σ_i / σ_1 along training")
    style.save(fig, png, pdf)
    return fig
