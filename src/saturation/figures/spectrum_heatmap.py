"""Paper Fig. 4: the top singular values σ_i/σ_1 of the LM head along training, one panel per width.

The spectrum first flattens towards uniform; at saturation it collapses into a spike (the upper
rows go dark while σ_1 dominates).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from saturation.figures import style

TOP_K = 100  # the paper's top-100


def ratios(spectra: pd.DataFrame, top_k: int = TOP_K) -> pd.DataFrame:
    """σ_i / σ_1 for the top-k ranks of every checkpoint (seeds averaged)."""
    if spectra.empty:
        raise ValueError("the spectra table is empty")
    frame = spectra.copy()
    frame["ratio"] = frame["sigma"] / frame.groupby(["run", "step"])["sigma"].transform("max")
    frame = frame[frame["rank"] <= top_k]
    return frame.groupby(["width", "step", "rank"], as_index=False)["ratio"].mean()


def plot(spectra: pd.DataFrame, png: str | Path, pdf: str | Path) -> None:
    style.setup()
    frame = ratios(spectra)
    widths = sorted(frame["width"].unique())
    fig, axes = plt.subplots(1, len(widths), figsize=(3.2 * len(widths), 3.6), squeeze=False)
    for ax, width in zip(axes[0], widths, strict=True):
        grid = frame[frame["width"] == width].pivot(index="rank", columns="step", values="ratio")
        sns.heatmap(grid, vmin=0, vmax=1, cmap="magma", ax=ax, cbar=ax is axes[0][-1],
                    cbar_kws={"label": "σ_i / σ_1"}, yticklabels=max(1, len(grid) // 8),
                    xticklabels=max(1, grid.shape[1] // 12))  # fmt: skip
        ax.set_title(f"width {width}")
        ax.set_xlabel("training step")
        ax.set_ylabel("singular value rank i" if ax is axes[0][0] else "")
    fig.suptitle(f"LM-head spectrum along training (top {TOP_K})")
    style.save(fig, png, pdf)
