"""Paper Fig. 3: benchmark word perplexity along training, one line per run (its colour its
width), each point coloured by the last-layer anisotropy of that checkpoint.

In the paper, perplexity stops improving (or worsens) exactly when the last layer turns anisotropic.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from saturation.figures import DEFAULT_OPTIONS, WORD_PERPLEXITY_METRICS, FigureOptions, style


def perplexity_with_anisotropy(table: pd.DataFrame) -> tuple[str, pd.DataFrame]:
    metric = next((m for m in WORD_PERPLEXITY_METRICS if (table["metric"] == m).any()), None)
    if metric is None:
        raise ValueError(f"the tidy table has none of the metrics {WORD_PERPLEXITY_METRICS}")
    keys = ["run", "width", "step"]
    ppl = table[table["metric"] == metric][[*keys, "value"]]
    aniso = table[table["metric"] == "anisotropy_last"][[*keys, "value"]]
    return metric, ppl.merge(aniso, on=keys, suffixes=("", "_anisotropy"))


def plot(
    table: pd.DataFrame, png: str | Path, pdf: str | Path, options: FigureOptions = DEFAULT_OPTIONS
) -> plt.Figure:
    """Draws and saves the figure; returns it (closed) so its plotted data can be read back."""
    style.setup()
    metric, frame = perplexity_with_anisotropy(table)
    fig, ax = plt.subplots(figsize=(6.5, 4))
    sns.lineplot(
        data=frame, x="step", y="value", hue="width", units="run", estimator=None, legend="full",
        palette=style.width_palette(frame["width"].unique().tolist()), alpha=0.6, ax=ax,
    )  # fmt: skip
    points = ax.scatter(
        frame["step"], frame["value"], c=frame["value_anisotropy"], cmap="coolwarm", vmin=0,
        vmax=1, s=36, edgecolor="black", linewidth=0.5, zorder=5,
    )  # fmt: skip
    fig.colorbar(points, ax=ax, label="last-layer anisotropy")
    ax.set_xscale("symlog", linthresh=1)
    ax.set_xlim(left=0, right=frame["step"].max() * 1.05)
    ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel(f"{metric.split('/')[0]} word perplexity")
    ax.set_title("Benchmark word perplexity along training")
    ax.legend(title="width")
    style.save(fig, png, pdf)
    return fig
