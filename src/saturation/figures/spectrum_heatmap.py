"""Paper Fig. 4: the top singular values σ_i/σ_1 of the LM head along training, one panel per run
(ordered by width); a second row shows the row-centred head W − 1m̄ᵀ (`figures.head`: raw,
centred or both).

Rank 1 is the top row (always 1). The spectrum first flattens towards uniform (the rows below
rank 1 brighten); at saturation it collapses into a spike (they go dark while σ_1 dominates).
Each checkpoint's column stands at its training step on a symlog axis, as the line figures' x,
not at its index: a Pythia-like schedule puts most checkpoints in the first few percent of
training.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from saturation.figures import DEFAULT_OPTIONS, FigureOptions, style

TOP_K = 100  # the paper's top-100


# the spectra table's column of each head, and its row's title
HEADS = {"raw": ("sigma", "head W"), "centred": ("sigma_centred", "row-centred head W − 1m̄ᵀ")}


def ratios(spectra: pd.DataFrame, top_k: int = TOP_K, column: str = "sigma") -> pd.DataFrame:
    """σ_i / σ_1 (of `column`) for the top-k ranks of every checkpoint of every run."""
    if spectra.empty:
        raise ValueError("the spectra table is empty")
    frame = spectra.copy()
    frame["ratio"] = frame[column] / frame.groupby(["run", "step"])[column].transform("max")
    return frame.loc[frame["rank"] <= top_k, ["run", "width", "step", "rank", "ratio"]]


def shown_ranks(spectra: pd.DataFrame, top_k: int = TOP_K) -> str:
    """What a panel shows: the top k of a run's ranks, or all of them when it has no more than
    k (the paper's top-100 is every singular value of a width below 100)."""
    ranks = int(spectra["rank"].max())
    return f"top {top_k} of {ranks} σ" if ranks > top_k else f"all {ranks} σ"


def column_edges(steps: np.ndarray, ax: plt.Axes) -> np.ndarray:
    """The edges of one column per checkpoint on the axis's x scale: halfway between
    neighbouring steps in the scale's own coordinates, the outer columns as wide as their
    neighbours'."""
    transform = ax.xaxis.get_transform()
    at = transform.transform(np.asarray(steps, dtype=float))
    if len(at) == 1:
        middles = np.array([at[0] - 0.5, at[0] + 0.5])
    else:
        inner = (at[:-1] + at[1:]) / 2
        middles = np.concatenate([[2 * at[0] - inner[0]], inner, [2 * at[-1] - inner[-1]]])
    return transform.inverted().transform(middles)


def plot(
    spectra: pd.DataFrame,
    png: str | Path,
    pdf: str | Path,
    options: FigureOptions = DEFAULT_OPTIONS,
) -> plt.Figure:
    """Draws and saves the figure; returns it (closed) so its plotted data can be read back:
    one row of panels per head shown (`options.heads`), one panel per run."""
    style.setup()
    order = spectra[["width", "run"]].drop_duplicates().sort_values(["width", "run"])
    runs = order["run"].tolist()
    heads = options.heads
    fig, axes = plt.subplots(len(heads), len(runs), figsize=(3.2 * len(runs), 3.8 * len(heads)),
                             squeeze=False, layout="constrained")  # fmt: skip
    for index, (row, head) in enumerate(zip(axes, heads, strict=True)):
        column, title = HEADS[head]
        frame = ratios(spectra, column=column)
        for ax, run in zip(row, runs, strict=True):
            mesh = _panel(ax, frame[frame["run"] == run])
            width = order.loc[order["run"] == run, "width"].iloc[0]
            ranks = shown_ranks(spectra[spectra["run"] == run])
            ax.set_title(f"{run}: width {width}\n{title}, {ranks}", fontsize=9)
            ax.set_ylabel("singular value rank i" if ax is row[0] else "")
            ax.set_xlabel("training step" if index == len(heads) - 1 else "")
        fig.colorbar(mesh, ax=row[-1], label="σ_i / σ_1")
    fig.suptitle("LM-head spectrum σ_i / σ_1 along training")
    style.save(fig, png, pdf)
    return fig


def _panel(ax: plt.Axes, mine: pd.DataFrame):
    """One run's σ_i / σ_1 as columns at its steps (symlog x), rank 1 on top."""
    grid = mine.pivot(index="rank", columns="step", values="ratio")
    ax.set_xscale("symlog", linthresh=1)
    x = column_edges(grid.columns.to_numpy(), ax)
    y = np.arange(len(grid) + 1) + 0.5  # rank i's row spans i ± 0.5
    mesh = ax.pcolormesh(x, y, grid.to_numpy(), vmin=0, vmax=1, cmap="magma")
    ax.set_xlim(x[0], x[-1])
    ax.set_ylim(y[-1], y[0])  # rank 1 on top
    ax.grid(False)
    return mesh
