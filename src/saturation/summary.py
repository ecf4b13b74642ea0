"""Saturation summary per run (paper §3–§4): where the loss bottoms out, how far it climbs back,
and when the head's spectrum collapses and the last layer turns anisotropic."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

# the summary's quantities that move with the held-out sample, given bootstrap intervals
BOOTSTRAPPED = [
    "best_step", "lowest_step", "final_minus_best", "kl_onset_minus_best",
    "anisotropy_onset_minus_best",
]  # fmt: skip

SUMMARY_COLUMNS = [
    "run", "width", "seed", "best_step", "lowest_step", "best_loss", "final_step", "final_loss",
    "final_minus_best", "relative_excess", "final_singular_entropy", "final_effective_rank",
    "kl_of", "collapse_step", "kl_minimum_step", "kl_onset_step", "kl_onset_minus_best",
    "final_singular_entropy_centred", "final_mean_row_share",
    "final_epochs", "final_train_loss", "late_rise",
    "final_anisotropy_last", "anisotropy_onset_step", "anisotropy_onset_minus_best",
    # bootstrap intervals over the held-out windows (`bootstrap_intervals`)
    *(f"{quantity}_{end}" for quantity in BOOTSTRAPPED for end in ("low", "high")),
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
    # resamples of the held-out windows behind the intervals of the summary's steps (0: none)
    bootstrap: int = 1000
    # the coverage of those intervals and of the across-seed intervals (`across_seeds`)
    confidence: float = 0.95
    bootstrap_seed: int = 0
    # a held-out rise after the lowest checkpoint smaller than this (nats) is no rise (`late_rise`)
    min_rise: float = 0.01


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


@dataclass(frozen=True)
class WindowLosses:
    """A run's per-window losses on one split: checkpoints × windows, rows in `steps` order."""

    steps: np.ndarray
    losses: np.ndarray

    def change(self, start: int, end: int) -> tuple[float, float]:
        """(mean loss at `end` − at `start`, its standard error over the windows): paired, each
        window against itself, so a window's difficulty, shared by every checkpoint, cancels.
        On the repeat-corpus run the paired error of a 400-step change is 15× smaller than the
        loss's own standard error (docs/SCIENCE-NOTES.md)."""
        rows = {int(step): i for i, step in enumerate(self.steps)}
        diff = self.losses[rows[end]] - self.losses[rows[start]]
        spread = diff.std(ddof=1) / math.sqrt(len(diff)) if len(diff) > 1 else math.nan
        return float(diff.mean()), float(spread)


def _change(
    run: pd.DataFrame, metric: str, windows: WindowLosses | None, start: int, end: int
) -> tuple[float, float]:
    """The metric's change from `start` to `end` and its standard error: paired over the windows
    where the windows table has them, else from the tidy table (the error of the level at
    `end`, larger: a conservative stand-in; 0 where none is recorded)."""
    if windows is not None:
        return windows.change(start, end)
    series, stderr = _series(run, metric), _stderr_at(run, metric, end)
    return float(series.loc[end] - series.loc[start]), 0.0 if math.isnan(stderr) else stderr


def late_rise(
    run: pd.DataFrame,
    final: int,
    val: WindowLosses | None = None,
    train: WindowLosses | None = None,
    min_rise: float = 0.0,
) -> str:
    """What happens to a held-out loss after its lowest checkpoint: `none` (the final checkpoint
    is the lowest, or it is above it by no more than the change's standard error or than
    `min_rise` nats: a rise too small to matter, where the paper's is 0.05–0.07), else
    `overfitting` (the loss on a sample of the train split falls from the lowest to the final
    checkpoint by more than its standard error, past one epoch: the data repeats), `saturation`
    (the train-sample loss rises or stalls too; or, without one, the data never repeated:
    epochs ≤ 1), or `undetermined`. Changes are paired over the windows (`WindowLosses`)
    where the windows table is given."""
    lowest = lowest_step(run)
    rise, error = _change(run, "val_loss", val, lowest, final)
    if lowest == final or rise <= max(error, min_rise):
        return "none"
    epochs = _optional_series(run, "epochs")
    seen = float(epochs.loc[final]) if epochs is not None else math.nan
    if _optional_series(run, "train_loss") is not None:
        change, error = _change(run, "train_loss", train, lowest, final)
        if change < -error:
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


def window_losses(windows: pd.DataFrame | None, run: str, split: str) -> WindowLosses | None:
    """A run's per-window losses on a split (val: held-out; train: the train sample), or None
    where the windows table has none."""
    if windows is None:
        return None
    rows = windows[(windows["run"] == run) & (windows["split"] == split)]
    if rows.empty:
        return None
    matrix = rows.pivot(index="step", columns="window", values="loss").sort_index()
    if matrix.isna().any().any():
        raise ValueError(f"run {run}: its checkpoints were scored on different {split} windows")
    return WindowLosses(matrix.index.to_numpy(), matrix.to_numpy())


def _interval(draws: np.ndarray, confidence: float) -> tuple[float, float]:
    """The percentile interval of bootstrap draws, widened to values drawn (a step interval
    then names two checkpoints); NaN where the quantity is undefined (no onset)."""
    if np.isnan(draws).any():
        return math.nan, math.nan
    tail = (1 - confidence) / 2
    low = np.quantile(draws, tail, method="lower")
    return float(low), float(np.quantile(draws, 1 - tail, method="higher"))


def bootstrap_intervals(
    steps: np.ndarray, losses: np.ndarray, onsets: dict[str, float], cfg: SummaryConfig
) -> dict[str, float]:
    """Intervals of the summary's sample-dependent quantities (`BOOTSTRAPPED`) from resampling
    the held-out windows with replacement, the same draw for every checkpoint.

    One draw for all checkpoints, because they are scored on the same windows: the noise that
    moves the best step is in the differences between checkpoints, which an independent draw
    per checkpoint would inflate. Each resample recomputes the best step by its own rule (the
    earliest within one standard error of the lowest, that error from the resampled windows).
    The KL's and the anisotropy's onsets are functions of the weights (the anisotropy nearly
    so: its sample is thousands of positions), so their distance from the best step moves with
    the best step alone. `losses`: checkpoints × windows, in the order of `steps`."""
    n = losses.shape[1]
    rng = np.random.default_rng(cfg.bootstrap_seed)
    draws: dict[str, list[np.ndarray]] = {quantity: [] for quantity in BOOTSTRAPPED}
    for start in range(0, cfg.bootstrap, 100):  # 100 resamples at a time bound the memory
        picks = rng.integers(0, n, size=(min(100, cfg.bootstrap - start), n))
        sample = losses[:, picks]  # checkpoints × resamples × windows
        means = sample.mean(axis=2)
        lowest = means.argmin(axis=0)
        columns = np.arange(len(picks))
        spread = sample[lowest, columns].std(axis=1, ddof=1) / math.sqrt(n) if n > 1 else 0.0
        best = steps[(means <= means[lowest, columns] + spread).argmax(axis=0)]
        draws["best_step"].append(best)
        draws["lowest_step"].append(steps[lowest])
        draws["final_minus_best"].append(means[-1] - means[lowest, columns])
        draws["kl_onset_minus_best"].append(onsets["kl"] - best)
        draws["anisotropy_onset_minus_best"].append(onsets["anisotropy"] - best)
    intervals = {}
    for quantity, parts in draws.items():
        low, high = _interval(np.concatenate(parts).astype(float), cfg.confidence)
        intervals |= {f"{quantity}_low": low, f"{quantity}_high": high}
    return intervals


def _no_intervals() -> dict[str, float]:
    return {f"{quantity}_{end}": math.nan for quantity in BOOTSTRAPPED for end in ("low", "high")}


def summarise_run(
    run: pd.DataFrame, cfg: SummaryConfig, windows: pd.DataFrame | None = None
) -> dict:
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
    name = run["run"].iloc[0]
    val, train_windows = window_losses(windows, name, "val"), window_losses(windows, name, "train")
    if val is not None and not np.array_equal(val.steps, loss.index.to_numpy()):
        raise ValueError(f"run {name}: the windows table's steps are not its val_loss steps")
    onsets = {"kl": kl_onset, "anisotropy": anisotropy_onset}
    intervals = (
        bootstrap_intervals(val.steps, val.losses, onsets, cfg)
        if val is not None and cfg.bootstrap
        else _no_intervals()
    )
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
        "late_rise": late_rise(run, final_step, val, train_windows, cfg.min_rise),
        "final_anisotropy_last": float(anisotropy.iloc[-1]),
        "anisotropy_onset_step": anisotropy_onset,
        "anisotropy_onset_minus_best": anisotropy_onset - best,
    } | intervals


def saturation_summary(
    metrics: pd.DataFrame, cfg: SummaryConfig, windows: pd.DataFrame | None = None
) -> pd.DataFrame:
    """One row per run (`summarise_run`); with the windows table, bootstrap intervals too."""
    rows = [summarise_run(run, cfg, windows) for _, run in metrics.groupby("run", sort=False)]
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS).sort_values(
        ["width", "seed"], ignore_index=True
    )


def mean_interval(values: np.ndarray | pd.Series, confidence: float) -> tuple[float, float, float]:
    """(mean, low, high): the Student-t interval of the mean of independent values (seeds) at
    `confidence`; NaN bounds for fewer than two values, NaN everything for none."""
    from scipy import stats

    values = np.asarray(values, dtype=float)
    n = len(values)
    if n == 0:
        return math.nan, math.nan, math.nan
    mean = float(values.mean())
    if n < 2:
        return mean, math.nan, math.nan
    half = stats.t.ppf((1 + confidence) / 2, n - 1) * values.std(ddof=1) / math.sqrt(n)
    return mean, float(mean - half), float(mean + half)


SEEDS_COLUMNS = ["model", "width", "seeds", "quantity", "n", "mean", "std", "ci_low", "ci_high"]
# the summary's columns that are not a quantity to pool over seeds
_NOT_POOLED = {"run", "width", "seed", "kl_of", "late_rise"}


def across_seeds(summary: pd.DataFrame, confidence: float) -> pd.DataFrame:
    """Every numeric quantity of the summary pooled over the seeds of each model
    (`plan.pretrained.model_name`): its mean, standard deviation and the Student-t interval of
    the mean at `confidence`, over the seeds where it is defined (`n`; an onset a seed never
    reaches is left out, and `n` says so). A single seed has no interval (NaN)."""
    from saturation.plan.pretrained import model_name

    quantities = [
        column for column in summary.columns
        if column not in _NOT_POOLED and not column.endswith(("_low", "_high"))
    ]  # fmt: skip
    rows = []
    models = summary.assign(model=summary["run"].map(model_name))
    for (model, width), runs in models.groupby(["model", "width"], sort=False):
        for quantity in quantities:
            values = runs[quantity].astype(float).dropna().to_numpy()
            mean, low, high = mean_interval(values, confidence)
            std = float(values.std(ddof=1)) if len(values) > 1 else math.nan
            rows.append({
                "model": model, "width": int(width), "seeds": len(runs), "quantity": quantity,
                "n": len(values), "mean": mean, "std": std, "ci_low": low, "ci_high": high,
            })  # fmt: skip
    table = pd.DataFrame(rows, columns=SEEDS_COLUMNS)
    return table.sort_values(["width", "model"], kind="stable", ignore_index=True)


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
