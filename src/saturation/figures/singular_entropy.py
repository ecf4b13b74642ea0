"""Paper Fig. 5: singular entropy KL(σ̂‖u) of the LM head along training, one line per width.

It falls while the head's spectrum flattens and rises sharply when the spectrum collapses.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from saturation.figures import style


def plot(table: pd.DataFrame, png: str | Path, pdf: str | Path) -> None:
    style.setup()
    frame = style.metric_frame(table, "singular_entropy")
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
    ax.set_xscale("symlog", linthresh=1)
    ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel("singular entropy KL(σ̂ ‖ u) (nats)")
    ax.set_title("LM-head singular entropy along training")
    ax.legend(title="width")
    style.save(fig, png, pdf)
