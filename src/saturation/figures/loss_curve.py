"""Paper Fig. 1a: held-out loss along training, one line per run coloured by width, a band of
± one standard error (over the held-out windows) around it, each run's minimum marked.

A saturating run reaches its minimum before its last checkpoint and then rises or plateaus.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from saturation.figures import style


def plot(table: pd.DataFrame, png: str | Path, pdf: str | Path) -> plt.Figure:
    """Draws and saves the figure; returns it (closed) so its plotted data can be read back."""
    style.setup()
    frame = style.metric_frame(table, "val_loss")
    fig, ax = plt.subplots(figsize=(6, 4))
    palette = style.lines_by_run(frame, ax)
    for _, run in frame.groupby("run"):
        run = run.sort_values("step")
        if run["stderr"].notna().all():
            ax.fill_between(run["step"], run["value"] - run["stderr"], run["value"] + run["stderr"],
                            color=palette[run["width"].iloc[0]], alpha=0.25, linewidth=0)  # fmt: skip
        best = run.loc[run["value"].idxmin()]
        ax.scatter([best["step"]], [best["value"]], marker="*", s=140,
                   color=palette[best["width"]], edgecolor="black", zorder=5)  # fmt: skip
    ax.set_ylabel("held-out loss (nats/token)")
    ax.set_title("Held-out loss along training (★ = minimum, band = ± 1 s.e.)")
    style.save(fig, png, pdf)
    return fig
