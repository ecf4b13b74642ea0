"""Shared look of every figure and the one way figures are saved."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: clusters and CI have no display

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from saturation.io import atomic_path
from saturation.plan.pretrained import OWN_RUN_NAME, model_name
from saturation.summary import mean_interval


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


def seed_bands(frame: pd.DataFrame, confidence: float) -> pd.DataFrame:
    """Per model with more than one seed (`plan.pretrained.model_name`) and step: the mean of
    `value` over its seeds and the Student-t interval of that mean at `confidence` (steps
    some seed lacks are left out: a mean over fewer seeds would jump)."""
    frame = frame.assign(model=frame["run"].map(model_name))
    seeds = frame.groupby("model")["run"].transform("nunique")
    pooled = frame[seeds > 1]
    rows = []
    for (model, width, step), values in pooled.groupby(["model", "width", "step"]):
        n, count = values["run"].nunique(), seeds[values.index[0]]
        if n < count:
            continue
        mean, low, high = mean_interval(values["value"], confidence)
        rows.append({"model": model, "width": width, "step": step, "value": mean,
                     "low": low, "high": high, "seeds": n})  # fmt: skip
    columns = ["model", "width", "step", "value", "low", "high", "seeds"]
    return pd.DataFrame(rows, columns=columns)


def lines_by_run(frame: pd.DataFrame, ax: plt.Axes, confidence: float = 0.95) -> dict[int, tuple]:
    """One line per run, coloured by its width, against the training step (symlog:
    Pythia-like schedules start at 0). Two runs of one width from different sources are two
    models, so each keeps its own line; the seeds of one model (`seed_bands`) are drawn thin,
    under their mean across seeds and its interval at `confidence` as a band. A model its width
    does not name (a tagged run of a sweep, another head, a synthetic language's) is named in
    the legend and once where its mean ends."""
    palette = width_palette(frame["width"].unique().tolist())
    bands = seed_bands(frame, confidence)
    pooled = frame["run"].map(model_name).isin(bands["model"])
    single = frame[~pooled]
    if not single.empty:
        sns.lineplot(
            data=single, x="step", y="value", hue="width", units="run", estimator=None,
            palette=palette, marker="o", markersize=3, ax=ax,
        )  # fmt: skip
    for _, run in frame[pooled].groupby("run"):
        run = run.sort_values("step")
        ax.plot(run["step"], run["value"], color=palette[run["width"].iloc[0]], alpha=0.35,
                linewidth=0.8, label="_seed")  # fmt: skip
    for (model, width), band in bands.groupby(["model", "width"]):
        colour, own = palette[width], _is_own_model(model)
        ax.plot(band["step"], band["value"], color=colour, marker="o", markersize=3,
                label=f"{width if own else model} (mean of {band['seeds'].iloc[0]} seeds)")  # fmt: skip
        ax.fill_between(band["step"], band["low"], band["high"], color=colour, alpha=0.25,
                        linewidth=0)  # fmt: skip
        if not own:  # the model's name once, where its mean ends, not each seed's
            last = band.loc[band["step"].idxmax()]
            _name_line(ax, model, last["step"], last["value"])
    ax.set_xscale("symlog", linthresh=1)
    ax.set_xlim(left=0, right=frame["step"].max() * 1.05)
    ax.set_xlabel("training step")
    ax.legend(title="width" if bands["model"].map(_is_own_model).all() else "width or model")
    label_published_runs(single, ax, "step")
    return palette


def _is_own_model(model: str) -> bool:
    """A text model trained here with the linear head (`w64`): its colour names it."""
    return bool(OWN_RUN_NAME.match(f"{model}-s0"))


def label_published_runs(frame: pd.DataFrame, ax: plt.Axes, x: str) -> None:
    """Name each line that is not a text run trained here at its last point (a published model,
    `pythia-70m`; a synthetic language's run, `r16-w8-s0`): its colour says only its width,
    which a text run may share."""
    for run, rows in frame.groupby("run"):
        if not OWN_RUN_NAME.match(str(run)):
            last = rows.loc[rows[x].idxmax()]
            _name_line(ax, str(run), last[x], last["value"])


def _name_line(ax: plt.Axes, name: str, x: float, y: float) -> None:
    ax.annotate(name, (x, y), xytext=(3, 0), textcoords="offset points", fontsize=7, va="center")
