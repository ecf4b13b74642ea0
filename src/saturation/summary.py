"""Saturation summary per run (paper §3–§4): where the loss bottoms out, how far it climbs back,
and when the head's spectrum collapses and the last layer turns anisotropic."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

SUMMARY_COLUMNS = [
    "run", "width", "seed", "best_step", "lowest_step", "best_loss", "final_step", "final_loss",
    "final_minus_best", "relative_excess", "final_singular_entropy", "final_effective_rank",
    "kl_of", "collapse_step", "kl_minimum_step", "kl_onset_step", "kl_onset_minus_best",
    "final_singular_entropy_centred", "final_mean_row_share",
    "final_epochs", "final_train_loss", "late_rise",
    "final_anisotropy_last", "anisotropy_onset_step", "anisotropy_onset_minus_best",
]  # fmt: skip


@dataclass(frozen=True)
class SummaryConfig:
    """Thresholds of the two degeneration events, as levels rather than changes: a random head
    is almost exactly isotropic (KL ≈ 1e-3 at initialisation), so any rule relative to the
    curve's minimum fires at the first steps of training."""

    # collapse: KL(σ̂‖u) above this × ln d, i.e. the head's effective rank below d^(1 − this)
    collapse_kl_fraction: float = 0.5
    anisotropy_onset: float = 0.5  # onset: last-layer anisotropy above this
    # the paper's reading (Fig. 5): the KL's minimum after the early transient, then its onset,
    # the first lasting rise above this multiple of that minimum (`relative_onset`)
    onset_multiple: float = 2.0
    # where the curve has no early peak, the transient is this share of the last step
    transient_share: float = 0.1
    # the KL the collapse and the onset read: of σ ("sigma") or of σ² ("sigma2")
    kl_of: str = "sigma"


# the tidy metric of each KL convention (summary.kl_of)
KL_METRICS = {"sigma": "singular_entropy", "sigma2": "singular_entropy_sq"}


def _series(run: pd.DataFrame, metric: str) -> pd.Series:
    series = run[run["metric"] == metric].set_index("step")["value"].sort_index()
    if series.empty:
        raise ValueError(f"run {run['run'].iloc[0]}: no {metric!r} rows in the tidy table")
    return series


def _stderr_at(run: pd.DataFrame, metric: str, step: int) -> float:
    """The metric's standard error at `step`, NaN where none is recorded."""
    rows = run[run["metric"] == metric].set_index("step")
    return float(rows["stderr"].loc[step]) if "stderr" in rows else math.nan


def _optional_series(run: pd.DataFrame, metric: str) -> pd.Series | None:
    """A metric some runs lack (`train_loss`, `epochs`: runs trained here only)."""
    return _series(run, metric) if (run["metric"] == metric).any() else None


def late_rise(run: pd.DataFrame, best: int, final: int) -> str:
    """What a held-out loss that ends above its best is: `none` (best = final), `overfitting`
    (the loss on a sample of the train split keeps falling from the best to the final
    checkpoint, by more than its standard error, past one epoch: the data repeats), `saturation`
    (the train-sample loss rises or stalls too; or, without one, the data never repeated:
    epochs ≤ 1), else `undetermined`."""
    if best == final:
        return "none"
    epochs = _optional_series(run, "epochs")
    seen = float(epochs.loc[final]) if epochs is not None else math.nan
    train = _optional_series(run, "train_loss")
    if train is not None:
        stderr = _stderr_at(run, "train_loss", final)
        falling = train.loc[final] < train.loc[best] - (0.0 if math.isnan(stderr) else stderr)
        if falling:
            return "overfitting" if seen > 1 else "undetermined"
        return "saturation"
    return "saturation" if seen <= 1 else "undetermined"


def lowest_step(run: pd.DataFrame) -> int:
    """The checkpoint of lowest held-out loss in one run's tidy rows (ties: the earliest)."""
    return int(_series(run, "val_loss").idxmin())


def best_step(run: pd.DataFrame) -> int:
    """The earliest checkpoint whose held-out loss is within one standard error of the lowest
    (that checkpoint's, over the held-out windows; where none is recorded, the lowest itself).

    A raw argmin moves with noise: any uptick at the end makes best ≠ final, while the paper's
    saturation is a rise of 0.05–0.07 nats. So "best" is the first checkpoint the lowest cannot
    be told apart from (`lowest_step` is kept beside it)."""
    loss = _series(run, "val_loss")
    stderr = _stderr_at(run, "val_loss", lowest_step(run))
    tolerance = 0.0 if math.isnan(stderr) else stderr
    return int(loss.index[loss <= loss.min() + tolerance][0])


def final_stretch_start(series: pd.Series, above: float) -> float:
    """The first step of the closing stretch in which the series stays above `above`; NaN if
    the run ends at or below it.

    The closing stretch, not the first crossing: early training crosses both thresholds and
    comes back (the last layer turns anisotropic for a few dozen steps, the head's first
    direction briefly dominates), while saturation is the state a run ends in.
    """
    if not series.iloc[-1] > above:
        return math.nan
    at_or_below = series.index[~(series > above)]
    if len(at_or_below) == 0:
        return float(series.index[0])
    return float(series.index[series.index > at_or_below[-1]][0])


def transient_end(series: pd.Series, share: float) -> float:
    """The step where the early transient ends: the curve's first local maximum (a point
    above both neighbours: Pythia's KL peaks within its first thousand steps, then falls), or,
    where there is none, `share` of the last step."""
    values = series.to_numpy()
    peaks = [i for i in range(1, len(values) - 1) if values[i - 1] < values[i] > values[i + 1]]
    return float(series.index[peaks[0]]) if peaks else share * float(series.index[-1])


def relative_onset(series: pd.Series, multiple: float, share: float) -> tuple[float, float]:
    """(the step of the curve's minimum after the early transient, the onset: the first step of
    the closing stretch above `multiple` × that minimum); NaN where it ends below (no onset).

    A level relative to the run's own minimum, as the paper reads Fig. 5 ("2× the minimum"),
    rather than the fixed fraction of ln d of `collapse_step`, which sits far up the climb. The
    minimum is taken after the transient because a random head starts almost flat (KL ≈ d/8V),
    so a minimum taken from step 0 would make any later value an onset."""
    after = series[series.index >= transient_end(series, share)]
    if after.empty or not after.min() > 0:
        return math.nan, math.nan
    low = after.idxmin()
    return float(low), final_stretch_start(after[after.index >= low], multiple * after.min())


def summarise_run(run: pd.DataFrame, cfg: SummaryConfig) -> dict:
    loss = _series(run, "val_loss")
    kl = _series(run, KL_METRICS[cfg.kl_of])
    anisotropy = _series(run, "anisotropy_last")
    rank = _series(run, "effective_rank")
    # d of ln d: the head's number of singular values, min(V, width), recovered exactly from the
    # two stored spectrum statistics of σ (effective rank = d · exp(−KL), docs/SCIENCE-NOTES.md)
    sigma_kl = _series(run, "singular_entropy")
    n_sigma = round(rank.iloc[-1] * math.exp(sigma_kl.iloc[-1]))
    width = int(run["width"].iloc[0])
    best, final_step = best_step(run), int(loss.index[-1])
    excess = loss.iloc[-1] - loss.min()
    kl_minimum, kl_onset = relative_onset(kl, cfg.onset_multiple, cfg.transient_share)
    epochs, train = _optional_series(run, "epochs"), _optional_series(run, "train_loss")
    anisotropy_onset = final_stretch_start(anisotropy, cfg.anisotropy_onset)
    return {
        "run": run["run"].iloc[0],
        "width": width,
        "seed": int(run["seed"].iloc[0]),
        "best_step": best,  # within one standard error of the lowest loss
        "lowest_step": lowest_step(run),
        "best_loss": float(loss.min()),  # the lowest
        "final_step": final_step,
        "final_loss": float(loss.iloc[-1]),
        "final_minus_best": float(excess),
        "relative_excess": float(excess / loss.min()),
        "final_singular_entropy": float(kl.iloc[-1]),
        "final_effective_rank": float(rank.iloc[-1]),
        "kl_of": cfg.kl_of,
        "collapse_step": final_stretch_start(kl, cfg.collapse_kl_fraction * math.log(n_sigma)),
        "kl_minimum_step": kl_minimum,
        "kl_onset_step": kl_onset,
        "kl_onset_minus_best": kl_onset - best,
        # the head without its mean row (which the softmax cannot see), and that row's share
        "final_singular_entropy_centred": float(_series(run, "singular_entropy_centred").iloc[-1]),
        "final_mean_row_share": float(_series(run, "mean_row_share").iloc[-1]),
        "final_epochs": float(epochs.iloc[-1]) if epochs is not None else math.nan,
        "final_train_loss": float(train.iloc[-1]) if train is not None else math.nan,
        "late_rise": late_rise(run, best, final_step),
        "final_anisotropy_last": float(anisotropy.iloc[-1]),
        "anisotropy_onset_step": anisotropy_onset,
        "anisotropy_onset_minus_best": anisotropy_onset - best,
    }


def saturation_summary(metrics: pd.DataFrame, cfg: SummaryConfig) -> pd.DataFrame:
    rows = [summarise_run(run, cfg) for _, run in metrics.groupby("run", sort=False)]
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS).sort_values(
        ["width", "seed"], ignore_index=True
    )


BENCHMARK_COLUMNS = [
    "run", "width", "seed", "metric", "best_step", "best", "best_stderr", "final_step", "final",
    "final_stderr", "final_minus_best",
]  # fmt: skip


def _at(values: pd.DataFrame, step: int, column: str) -> float:
    row = values[values["step"] == step]
    return float(row[column].iloc[0]) if len(row) else math.nan


def best_vs_final(metrics: pd.DataFrame) -> pd.DataFrame:
    """The paper's Table 1 analogue: every benchmark metric at the best (`best_step`) and the
    final checkpoint of each run (NaN where that checkpoint was not evaluated)."""
    rows = []
    for _, run in metrics.groupby("run", sort=False):
        best, final = best_step(run), int(_series(run, "val_loss").index[-1])
        benchmarks = run[run["metric"].str.contains("/", regex=False)]
        for metric, values in benchmarks.groupby("metric"):
            rows.append({
                "run": run["run"].iloc[0], "width": int(run["width"].iloc[0]),
                "seed": int(run["seed"].iloc[0]), "metric": metric,
                "best_step": best, "best": _at(values, best, "value"),
                "best_stderr": _at(values, best, "stderr"),
                "final_step": final, "final": _at(values, final, "value"),
                "final_stderr": _at(values, final, "stderr"),
                "final_minus_best": _at(values, final, "value") - _at(values, best, "value"),
            })  # fmt: skip
    table = pd.DataFrame(rows, columns=BENCHMARK_COLUMNS)
    return table.sort_values(["metric", "width", "seed"], ignore_index=True)


def to_markdown(table: pd.DataFrame, digits: int = 4) -> str:
    """A GitHub-flavoured Markdown table (missing values shown as –)."""

    def cell(value: object) -> str:
        if isinstance(value, float):
            return "–" if math.isnan(value) else f"{value:.{digits}g}"
        return str(value)

    header = "| " + " | ".join(table.columns) + " |"
    rule = "|" + "|".join("---" for _ in table.columns) + "|"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([header, rule, *body]) + "\n"
