"""Shared look of every figure and the one way figures are saved."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: clusters and CI have no display

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from saturation.io import atomic_path


def setup() -> None:
    sns.set_theme(context="paper", style="whitegrid", font_scale=1.1)


def width_palette(widths: list[int]) -> dict[int, tuple]:
    """Small widths light, large dark: one colour per width, the same in every figure."""
    colours = sns.color_palette("viridis_r", n_colors=max(len(widths), 1))
    return dict(zip(sorted(widths), colours, strict=False))


def metric_frame(table: pd.DataFrame, metric: str) -> pd.DataFrame:
    frame = table[table["metric"] == metric]
    if frame.empty:
        raise ValueError(f"the tidy table has no rows for metric {metric!r}")
    return frame


# No creation time in a PDF: an identical rerun then gives byte-identical files, like every
# other output (PNGs carry no time).
METADATA = {"png": None, "pdf": {"CreationDate": None}}


def save(fig: plt.Figure, png: str | Path, pdf: str | Path) -> None:
    for path, kind in ((png, "png"), (pdf, "pdf")):
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=kind, dpi=200, bbox_inches="tight", metadata=METADATA[kind])
    plt.close(fig)


def lines_by_run(frame: pd.DataFrame, ax: plt.Axes) -> dict[int, tuple]:
    """One line per run, coloured by its width, against the training step (symlog:
    Pythia-like schedules start at 0). Runs are never averaged: two runs of one width are two
    models (another seed, another source), so each keeps its own line."""
    palette = width_palette(frame["width"].unique().tolist())
    sns.lineplot(
        data=frame, x="step", y="value", hue="width", units="run", estimator=None,
        palette=palette, marker="o", markersize=3, ax=ax,
    )  # fmt: skip
    ax.set_xscale("symlog", linthresh=1)
    ax.set_xlim(left=0, right=frame["step"].max() * 1.05)
    ax.set_xlabel("training step")
    ax.legend(title="width")
    label_published_runs(frame, ax, "step")
    return palette


def label_published_runs(frame: pd.DataFrame, ax: plt.Axes, x: str) -> None:
    """Name each published model's line at its last point (`pythia-70m`): its colour says only
    its width, which a run trained here may share."""
    from saturation.plan.pretrained import OWN_RUN_NAME

    for run, rows in frame.groupby("run"):
        if not OWN_RUN_NAME.match(str(run)):
            last = rows.loc[rows[x].idxmax()]
            ax.annotate(str(run), (last[x], last["value"]), xytext=(3, 0),
                        textcoords="offset points", fontsize=7, va="center")  # fmt: skip
