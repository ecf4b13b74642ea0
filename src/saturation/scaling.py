"""The paper's scaling-law extrapolation (Fig. 1b): how far small models fall short of the loss a
law fitted on larger ones predicts for them.

The law is Chinchilla's `L(N, T) = A / N^α + B / T^β + E` (N: every parameter, embeddings
included; T: tokens seen). As in the paper, (B, β, E) are fixed (Chinchilla's 410.7, 0.28, 1.69 by
default) and only (A, α) are fitted, on the runs at or above a size threshold; each smaller run's
observed loss is then compared with the law's prediction for it, at its final and at its best
checkpoint (the paper, Pythia: +8 % on average for final, ≈ +4 % for best).

Points format (`fit`, `excess`, and what a user feeds in from published numbers): a DataFrame with
one row per run × checkpoint kind, columns `run`, `parameters` (N), `kind` (`final` or `best`),
`tokens` (T) and `loss` (nats/token). `points_from_tables` builds it from the workflow's tables.

The fit minimises the squared error of log L over the fitted runs' final points (least squares in
log space, like Chinchilla's fit but without its Huber loss, which only matters with outliers among
hundreds of points), started from the closed-form regression of log(L − E − B/T^β) on log N.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

POINT_COLUMNS = ["run", "parameters", "kind", "tokens", "loss"]
KINDS = ("final", "best")


@dataclass(frozen=True)
class FixedTerms:
    """The law's terms held fixed: Chinchilla's (Hoffmann et al. 2022) by default, as the paper."""

    B: float = 410.7
    beta: float = 0.28
    E: float = 1.69

    def rest(self, tokens: np.ndarray) -> np.ndarray:
        """B / T^β + E: the loss the law gives an infinitely large model at T tokens."""
        return self.B / np.asarray(tokens, dtype=np.float64) ** self.beta + self.E


@dataclass(frozen=True)
class Law:
    """A fitted law: `predict(N, T) = A / N^α + B / T^β + E`."""

    A: float
    alpha: float
    fixed: FixedTerms

    def predict(self, parameters: np.ndarray, tokens: np.ndarray) -> np.ndarray:
        parameters = np.asarray(parameters, dtype=np.float64)
        return self.A / parameters**self.alpha + self.fixed.rest(tokens)


def _check_points(points: pd.DataFrame) -> None:
    missing = [column for column in POINT_COLUMNS if column not in points]
    if missing:
        raise ValueError(f"scaling points lack columns {missing} (format: {POINT_COLUMNS})")
    if not set(points["kind"]) <= set(KINDS):
        raise ValueError(f"scaling points: kind must be one of {KINDS}, got {set(points['kind'])}")


def fit(points: pd.DataFrame, fixed: FixedTerms = FixedTerms()) -> Law:
    """(A, α) fitted on the `final` points given, (B, β, E) held at `fixed`.

    Every point must lie above the fixed part of the law (L > B/T^β + E): no positive A could
    explain one below it, and the error says which run and by how much.
    """
    from scipy.optimize import least_squares

    _check_points(points)
    final = points[points["kind"] == "final"]
    if final["parameters"].nunique() < 2:
        raise ValueError(
            f"fitting A and α needs the final points of at least two model sizes, got runs "
            f"{sorted(final['run'])}"
        )
    n, t, loss = (final[c].to_numpy(np.float64) for c in ("parameters", "tokens", "loss"))
    rest = fixed.rest(t)
    below = final["run"][loss <= rest].tolist()
    if below:
        run = below[0]
        i = final["run"].tolist().index(run)
        raise ValueError(
            f"run {run}: loss {loss[i]:.4g} is not above the law's fixed part B/T^β + E = "
            f"{rest[i]:.4g} (B {fixed.B}, β {fixed.beta}, E {fixed.E}, T {t[i]:.4g}): no A, α "
            "describe it; fit on larger runs or fix other terms"
        )
    slope, intercept = np.polyfit(
        np.log(n), np.log(loss - rest), 1
    )  # log(L − rest) = log A − α log N

    def residuals(x: np.ndarray) -> np.ndarray:
        return np.log(np.exp(x[0]) / n ** x[1] + rest) - np.log(loss)

    solution = least_squares(residuals, x0=[intercept, -slope], method="lm")
    return Law(A=float(np.exp(solution.x[0])), alpha=float(solution.x[1]), fixed=fixed)


def bootstrap(
    points: pd.DataFrame, fixed: FixedTerms, iterations: int, seed: int
) -> dict[str, list[float] | int]:
    """95 % percentile intervals of A and α over resamples of the fitted runs (with replacement);
    a resample with fewer than two model sizes, or one the law cannot describe, is skipped and
    not counted in `resamples`. `distinct_samples` counts the different draws among them:
    with few fitted runs there are few, and the interval says little (two runs: one set, an
    interval of width zero)."""
    runs = sorted(points["run"].unique())
    rng = np.random.default_rng(seed)
    fits, samples = [], set()
    for _ in range(iterations):
        chosen = rng.choice(runs, size=len(runs), replace=True)
        sample = pd.concat([points[points["run"] == run] for run in chosen], ignore_index=True)
        try:
            law = fit(sample, fixed)
        except ValueError:
            continue
        fits.append((law.A, law.alpha))
        samples.add(tuple(sorted(chosen)))  # the multiset of runs drawn
    if not fits:
        nan = [math.nan, math.nan]
        return {"A": nan, "alpha": nan, "resamples": 0, "distinct_samples": 0}
    low, high = np.percentile(np.array(fits), [2.5, 97.5], axis=0)
    return {"A": [low[0], high[0]], "alpha": [low[1], high[1]], "resamples": len(fits),
            "distinct_samples": len(samples)}  # fmt: skip


def excess(points: pd.DataFrame, law: Law) -> pd.DataFrame:
    """Every point with the law's prediction and the relative excess (L − L̂) / L̂."""
    _check_points(points)
    table = points.copy()
    table["predicted"] = law.predict(table["parameters"], table["tokens"])
    table["excess"] = (table["loss"] - table["predicted"]) / table["predicted"]
    return table


@dataclass(frozen=True)
class Extrapolation:
    """The law fitted on the large runs, and how every run compares with it."""

    law: Law
    intervals: dict[str, list[float] | int]
    fitted_runs: list[str]
    table: pd.DataFrame  # every point: predicted, excess, in_fit
    mean_excess: dict[str, float]  # kind -> mean over the runs not fitted (NaN if none)

    def record(self) -> dict:
        return {
            "A": self.law.A,
            "alpha": self.law.alpha,
            "fixed": asdict(self.law.fixed),
            "intervals_95": self.intervals,
            "fitted_runs": self.fitted_runs,
            "mean_excess_of_smaller_runs": self.mean_excess,
        }


def extrapolate(
    points: pd.DataFrame,
    fitted_runs: Sequence[str],
    fixed: FixedTerms = FixedTerms(),
    iterations: int = 1000,
    seed: int = 0,
) -> Extrapolation:
    """Fit on `fitted_runs`, bootstrap the fit over them, and compare every run with it."""
    chosen = points[points["run"].isin(fitted_runs)]
    law = fit(chosen, fixed)
    table = excess(points, law)
    table["in_fit"] = table["run"].isin(fitted_runs)
    smaller = table[~table["in_fit"]]
    mean = {kind: float(smaller.loc[smaller["kind"] == kind, "excess"].mean()) for kind in KINDS}
    intervals = bootstrap(chosen, fixed, iterations, seed)
    return Extrapolation(law, intervals, sorted(fitted_runs), table, mean)


def points_from_tables(metrics: pd.DataFrame, parameters: dict[str, int]) -> pd.DataFrame:
    """The final and the lowest-loss checkpoint of every run in a tidy metrics table
    (saturation.tables), with each run's parameter count."""
    from saturation.summary import lowest_step

    rows = []
    for run, frame in metrics[metrics["metric"] == "val_loss"].groupby("run", sort=False):
        frame = frame.sort_values("step")
        best = lowest_step(frame)
        for kind, row in (("final", frame.iloc[-1]), ("best", frame[frame.step == best].iloc[0])):
            rows.append({"run": run, "width": int(row["width"]), "parameters": parameters[run],
                         "kind": kind, "step": int(row["step"]), "tokens": int(row["tokens"]),
                         "loss": float(row["value"])})  # fmt: skip
    return pd.DataFrame(rows)


def fitted_runs(points: pd.DataFrame, min_width: int | None, min_parameters: int | None) -> list:
    """The runs at or above the size thresholds given (None: no threshold of that kind)."""
    runs = points.drop_duplicates("run")
    keep = pd.Series(True, index=runs.index)
    if min_width is not None:
        keep &= runs["width"] >= min_width
    if min_parameters is not None:
        keep &= runs["parameters"] >= min_parameters
    return runs.loc[keep, "run"].tolist()


def extrapolate_workflow(
    metrics: pd.DataFrame, checkpoints: dict[str, str], settings: dict
) -> Extrapolation:
    """The workflow's scaling stage: N counted from each run's final checkpoint (`checkpoints`:
    run -> folder, the text runs only: a synthetic language's losses are of another text), T and
    L from the tidy metrics table, the fit on the runs the `scaling.*` thresholds select (see the
    config schema)."""
    from saturation.checkpoints import count_parameters

    parameters = {run: count_parameters(folder) for run, folder in checkpoints.items()}
    points = points_from_tables(metrics[metrics["run"].isin(parameters)], parameters)
    fitted = fitted_runs(points, settings["min_width"], settings["min_parameters"])
    fixed = FixedTerms(settings["B"], settings["beta"], settings["E"])
    return extrapolate(points, fitted, fixed, settings["bootstrap"], settings["seed"])


def law_columns(result: Extrapolation) -> pd.DataFrame:
    """The comparison table with the fitted law's terms on every row, so the figure (which reads
    one table) can draw the law itself."""
    terms = {"A": result.law.A, "alpha": result.law.alpha} | asdict(result.law.fixed)
    return result.table.assign(**terms)
