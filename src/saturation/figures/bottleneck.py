"""Beyond the paper: the softmax bottleneck on a synthetic language whose answer is known. Final
held-out loss against d, the rank the head's logits can have (the width; a low-rank head's
rank), one panel per language: each head kind's runs as points (several seeds: their mean and
its interval, one colour per head), the oracle's best loss of any rank-d softmax head and of the
head GPT-NeoX trains (final LayerNorm + unbiased unembedding, one dimension behind) as lines,
the truncated-SVD bound dotted, H* and r* marked.

Linear heads should follow the head family's curve below r* and reach H* above it; how far the
points sit above the curve is what training leaves, the curve itself what the rank allows. A
mixture of softmaxes is not a rank-d softmax head: below r* it may go under the curve.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.ticker import ScalarFormatter

from saturation.figures import DEFAULT_OPTIONS, FigureOptions, style
from saturation.summary import mean_interval

CURVES = {  # kind: (label, line style)
    "best_rank": ("best rank-d softmax head", "-"),
    "head_family": ("best GPT-NeoX head (LayerNorm + W)", "--"),
    "svd_bound": ("truncated SVD (upper bound)", ":"),
}


def plot(
    table: pd.DataFrame, png: str | Path, pdf: str | Path, options: FigureOptions = DEFAULT_OPTIONS
) -> plt.Figure:
    """Draws and saves the figure; returns it (closed) so its plotted data can be read back."""
    style.setup()
    if table.empty:
        raise ValueError("the bottleneck table is empty: no synthetic language is configured")
    languages = sorted(table["language"].unique())
    fig, axes = plt.subplots(1, len(languages), figsize=(6 * len(languages), 4.2), squeeze=False)
    for ax, language in zip(axes[0], languages, strict=True):
        rows = table[table["language"] == language]
        entropy, rank = rows["entropy"].iloc[0], int(rows["rank"].iloc[0])
        for kind, (label, line) in CURVES.items():
            curve = rows[rows["kind"] == kind].sort_values("d")
            ax.plot(curve["d"], curve["loss"], line, color="black", linewidth=1, label=label)
        trained = rows[rows["kind"] == "trained"]
        series = _series(trained)
        for (head, tag), colour in zip(series, _colours(len(series)), strict=True):
            runs = trained[(trained["head"] == head) & (_tags(trained) == tag)]
            label = f"{head} head{f', {tag}' if tag else ''}"
            _plot_trained(ax, runs, label, colour, options.confidence)
        ax.axhline(entropy, color="tab:blue", linewidth=1, label=f"H* = {entropy:.3g}")
        ax.axvline(rank, color="grey", linewidth=1, linestyle="-.", label=f"r* = {rank}")
        ax.set_xscale("log", base=2)
        ax.set_xticks(sorted(rows["d"].unique()))
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.minorticks_off()
        ax.set_xlabel("d: the rank of the head's logits (width; a low-rank head's rank)")
        ax.set_ylabel("held-out loss (nats/token)")
        ax.set_title(f"language {language}")
        ax.legend(fontsize=8)
    fig.suptitle("The softmax bottleneck on a language of known logit rank")
    style.save(fig, png, pdf)
    return fig


HEAD_COLOURS = ["tab:red", "tab:green", "tab:purple", "tab:orange", "tab:brown", "tab:pink"]


def _colours(n: int) -> list:
    """A colour per series: the head palette (blue and grey mark H* and r*), or, for a sweep of
    more series than it has, tab20's but its blues and greys (every series drawn; distinct up
    to 16)."""
    if n <= len(HEAD_COLOURS):
        return HEAD_COLOURS[:n]
    palette = [plt.get_cmap("tab20")(i) for i in range(20) if i not in (0, 1, 14, 15)]
    return [palette[i % len(palette)] for i in range(n)]


def _tags(trained: pd.DataFrame) -> pd.Series:
    """The runs' tags ("" where untagged; a table read back from CSV has NaN there)."""
    return trained["tag"].fillna("").astype(str)


def _series(trained: pd.DataFrame) -> list[tuple[str, str]]:
    """The (head label, tag) pairs of the trained runs, each a line: untagged linear first."""
    pairs = set(zip(trained["head"], _tags(trained), strict=True))
    return sorted(pairs, key=lambda pair: (pair[0] != "linear", pair))


def _plot_trained(
    ax: plt.Axes, trained: pd.DataFrame, head: str, colour: str, confidence: float
) -> None:
    """One series' runs (a head, a tag): every seed a faint point, the mean of seeds per d a
    line with its interval (where there are seeds to give one)."""
    seeds = trained.groupby("d")["loss"].apply(lambda v: mean_interval(v, confidence))
    mean, low, high = (seeds.map(lambda interval, i=i: interval[i]) for i in range(3))
    ax.scatter(trained["d"], trained["loss"], color=colour, s=14, alpha=0.5, zorder=4)
    ax.plot(mean.index, mean, "o-", color=colour, zorder=5,
            label=f"{head}, trained (final; mean of seeds)")  # fmt: skip
    if low.notna().any():
        ax.fill_between(mean.index, low, high, color=colour, alpha=0.2, linewidth=0)
