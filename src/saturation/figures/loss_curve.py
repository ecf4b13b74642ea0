"""Paper Fig. 1a: held-out loss along training, one line per run coloured by width, a band of
± one standard error (over the held-out windows) around it, each run's minimum marked. A model
with several seeds is drawn as their mean, its band the interval of that mean across seeds, the
seeds themselves as thin lines (`style.lines_by_run`).

A saturating run reaches its minimum before its last checkpoint and then rises or plateaus.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from saturation.figures import DEFAULT_OPTIONS, FigureOptions, style
from saturation.plan.pretrained import model_name


def plot(
    table: pd.DataFrame, png: str | Path, pdf: str | Path, options: FigureOptions = DEFAULT_OPTIONS
) -> plt.Figure:
    """Draws and saves the figure; returns it (closed) so its plotted data can be read back."""
    style.setup()
    frame = style.metric_frame(table, "val_loss")
    fig, ax = plt.subplots(figsize=(6, 4))
    palette = style.lines_by_run(frame, ax, options.confidence)
    bands = style.seed_bands(frame, options.confidence)
    single = frame[~frame["run"].map(model_name).isin(bands["model"])]
    for _, run in single.groupby("run"):
        run = run.sort_values("step")
        if run["stderr"].notna().all():
            ax.fill_between(run["step"], run["value"] - run["stderr"], run["value"] + run["stderr"],
                            color=palette[run["width"].iloc[0]], alpha=0.25, linewidth=0)  # fmt: skip
    for _, curve in [*single.groupby("run"), *bands.groupby("model")]:
        best = curve.loc[curve["value"].idxmin()]
        ax.scatter([best["step"]], [best["value"]], marker="*", s=140,
                   color=palette[best["width"]], edgecolor="black", zorder=5)  # fmt: skip
    ax.set_ylabel("held-out loss (nats/token)")
    band = (
        "± 1 s.e." if bands.empty else f"± 1 s.e.; seeds: {options.confidence:.0%} CI of the mean"
    )
    ax.set_title(f"Held-out loss along training (★ = minimum, band = {band})")
    style.save(fig, png, pdf)
    return fig
