"""Paper Fig. 2: anisotropy of the hidden states against normalised depth, at each run's final
checkpoint.

Depth 0 is the embedding output, 1 the final normalised state fed to the head. In the paper small
models end training with a near-degenerate last layer (≈ 0.95–0.99) that larger ones avoid.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from saturation.figures import DEFAULT_OPTIONS, FigureOptions, style

PREFIX = "anisotropy_d"  # saturation.measure.analysis.anisotropy_metric


def by_depth(table: pd.DataFrame) -> pd.DataFrame:
    """Anisotropy rows of each run's final checkpoint with their depth in [0, 1]."""
    frame = table[table["metric"].str.startswith(PREFIX)].copy()
    if frame.empty:
        raise ValueError(f"the tidy table has no rows for metric {PREFIX}*")
    frame = frame[frame["step"] == frame.groupby("run")["step"].transform("max")]
    frame["depth"] = frame["metric"].str.removeprefix(PREFIX).astype(int)
    frame["normalised_depth"] = frame["depth"] / frame.groupby("run")["depth"].transform("max")
    return frame


def title(frame: pd.DataFrame) -> str:
    """Names the final step only when every run ends at the same one: runs of different lengths
    (or a run still training) each contribute their own last checkpoint."""
    steps = sorted(frame["step"].unique())
    if len(steps) == 1:
        return f"Anisotropy by depth at the final checkpoint (step {steps[0]})"
    return f"Anisotropy by depth at each run's final checkpoint (steps {steps[0]}–{steps[-1]})"


def plot(
    table: pd.DataFrame, png: str | Path, pdf: str | Path, options: FigureOptions = DEFAULT_OPTIONS
) -> plt.Figure:
    """Draws and saves the figure; returns it (closed) so its plotted data can be read back."""
    style.setup()
    frame = by_depth(table)
    fig, ax = plt.subplots(figsize=(6, 4))
    sns.lineplot(
        data=frame, x="normalised_depth", y="value", hue="width", units="run", estimator=None,
        palette=style.width_palette(frame["width"].unique().tolist()), marker="o", ax=ax,
    )  # fmt: skip
    ax.set_xlabel("normalised depth (0 = embeddings, 1 = final norm)")
    ax.set_ylabel("anisotropy (mean pairwise cosine)")
    ax.set_title(title(frame))
    ax.legend(title="width")
    style.label_published_runs(frame, ax, "normalised_depth")  # Fig. 2's families, by name
    style.save(fig, png, pdf)
    return fig
