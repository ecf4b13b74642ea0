"""Paper Fig. 1b: held-out loss against training compute 6·N·T, every run's final and best
checkpoint beside the scaling law fitted on the large runs; the smaller runs' excess over the law
annotated.

In the paper, Pythia models under 410M sit above the law extrapolated from the larger ones (+8 % on
average at their final checkpoint, ≈ +4 % at their best): the loss they stop at is not what their
size should give.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from saturation.figures import DEFAULT_OPTIONS, FigureOptions, style
from saturation.scaling import FixedTerms, Law


def law_of(table: pd.DataFrame) -> Law:
    """The fitted law, from the terms the scaling stage writes on every row."""
    row = table.iloc[0]
    return Law(row["A"], row["alpha"], FixedTerms(row["B"], row["beta"], row["E"]))


def plot(
    table: pd.DataFrame, png: str | Path, pdf: str | Path, options: FigureOptions = DEFAULT_OPTIONS
) -> plt.Figure:
    """Draws and saves the figure; returns it (closed) so its plotted data can be read back."""
    if table.empty:
        raise ValueError("the scaling table is empty")
    style.setup()
    law = law_of(table)
    frame = table.assign(compute=6 * table["parameters"] * table["tokens"])
    palette = style.width_palette(frame["width"].unique().tolist())
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for kind, marker in (("final", "o"), ("best", "*")):
        points = frame[frame["kind"] == kind]
        ax.scatter(points["compute"], points["loss"], marker=marker, s=40 if kind == "final" else 90,
                   c=[palette[w] for w in points["width"]], edgecolor="black", zorder=5,
                   label=f"{kind} checkpoint")  # fmt: skip
    final = frame[frame["kind"] == "final"]
    tokens = float(final["tokens"].median())
    sizes = np.geomspace(final["parameters"].min() / 1.5, final["parameters"].max() * 1.5, 100)
    ax.plot(6 * sizes * tokens, law.predict(sizes, tokens), color="black", lw=1,
            label=f"law at T = {tokens:.3g} (A {law.A:.3g}, α {law.alpha:.3f})")  # fmt: skip
    for row in final[~final["in_fit"]].itertuples():
        ax.annotate(f"{100 * row.excess:+.1f} %", (row.compute, row.loss),
                    textcoords="offset points", xytext=(6, 6), fontsize=8)  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlabel("training compute 6·N·T (FLOPs)")
    ax.set_ylabel("held-out loss (nats/token)")
    fitted = ", ".join(sorted(frame.loc[frame["in_fit"], "run"].unique()))
    ax.set_title(f"Loss vs the scaling law fitted on {fitted}", fontsize=9)
    ax.legend(fontsize=8)
    style.save(fig, png, pdf)
    return fig
