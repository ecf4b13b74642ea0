"""Paper Fig. 1a: held-out loss along training, one line per width, each minimum marked.

A saturating run reaches its minimum before its last checkpoint and then rises or plateaus.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from saturation.figures import style


def plot(table: pd.DataFrame, png: str | Path, pdf: str | Path) -> None:
    style.setup()
    frame = style.metric_frame(table, "val_loss")
    palette = style.width_palette(frame["width"].unique().tolist())
    fig, ax = plt.subplots(figsize=(6, 4))
    sns.lineplot(
        data=frame,
        x="step",
        y="value",
        hue="width",
        palette=palette,
        marker="o",
        markersize=3,
        errorbar=None,
        ax=ax,
    )
    for width, runs in frame.groupby("width"):
        best = runs.groupby("step")["value"].mean().idxmin()
        ax.scatter(
            [best],
            [runs[runs["step"] == best]["value"].mean()],
            marker="*",
            s=140,
            color=palette[width],
            edgecolor="black",
            zorder=5,
        )
    ax.set_xscale("symlog", linthresh=1)
    ax.set_xlabel("training step")
    ax.set_ylabel("held-out loss (nats/token)")
    ax.set_title("Held-out loss along training (★ = minimum)")
    ax.legend(title="width")
    style.save(fig, png, pdf)
