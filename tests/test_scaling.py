"""The scaling-law extrapolation (paper Fig. 1b) against points drawn from a known law."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from saturation.figures import scaling_law
from saturation.scaling import (
    FixedTerms,
    Law,
    extrapolate,
    fit,
    fitted_runs,
    law_columns,
    points_from_tables,
)

PAPER = Law(A=119.09, alpha=0.246, fixed=FixedTerms())  # the paper's fit on Pythia ≥ 410M
LARGE = np.array([4.1e8, 1.0e9, 1.4e9, 2.8e9, 6.9e9, 1.2e10])  # Pythia 410M … 12B
SMALL = np.array([1.4e7, 3.1e7, 7.0e7, 1.6e8])  # Pythia 14M … 160M
TOKENS = 3.0e11


def points(sizes: np.ndarray, losses: np.ndarray, prefix: str, kind: str = "final") -> pd.DataFrame:
    return pd.DataFrame({"run": [f"{prefix}{i}" for i in range(len(sizes))], "parameters": sizes,
                         "kind": kind, "tokens": TOKENS, "loss": losses})  # fmt: skip


def test_exact_points_give_the_law_back() -> None:
    law = fit(points(LARGE, PAPER.predict(LARGE, TOKENS), "large"))
    np.testing.assert_allclose([law.A, law.alpha], [PAPER.A, PAPER.alpha], rtol=1e-6)


def test_noisy_points_recover_the_law_within_its_stated_tolerance() -> None:
    """0.5 % noise on six large models (seed 0). Over 200 seeds the extrapolation to Pythia's
    small sizes was off by 1.1 % (median) and 3.2 % (95th percentile), α by 0.014 (95th): A and
    α trade off, the prediction is what the data pin down."""
    noise = np.exp(np.random.default_rng(0).normal(0, 0.005, len(LARGE)))
    law = fit(points(LARGE, PAPER.predict(LARGE, TOKENS) * noise, "large"))
    assert law.alpha == pytest.approx(0.246, abs=0.02)
    np.testing.assert_allclose(law.predict(SMALL, TOKENS), PAPER.predict(SMALL, TOKENS), rtol=0.05)


def test_smaller_runs_excess_and_its_interval() -> None:
    """Small models 8 % above the law at their final checkpoint and 4 % at their best (the
    paper's figures) read back as such; the bootstrap interval over the fitted runs holds the
    true α."""
    noise = np.exp(np.random.default_rng(1).normal(0, 0.003, len(LARGE)))
    table = pd.concat([
        points(LARGE, PAPER.predict(LARGE, TOKENS) * noise, "large"),
        points(SMALL, 1.08 * PAPER.predict(SMALL, TOKENS), "small"),
        points(SMALL, 1.04 * PAPER.predict(SMALL, TOKENS), "small", kind="best"),
    ], ignore_index=True)  # fmt: skip
    large = [f"large{i}" for i in range(len(LARGE))]
    result = extrapolate(table, large, iterations=200, seed=0)
    assert result.mean_excess["final"] == pytest.approx(0.08, abs=0.02)
    assert result.mean_excess["best"] == pytest.approx(0.04, abs=0.02)
    low, high = result.intervals["alpha"]
    assert low < 0.246 < high and result.intervals["resamples"] > 150
    assert result.intervals["distinct_samples"] > 100
    two = extrapolate(table, large[:2], iterations=50, seed=0).intervals  # one set of two runs
    assert two["distinct_samples"] == 1 and two["alpha"][0] == pytest.approx(two["alpha"][1])
    assert not result.table.loc[result.table.run.str.startswith("small"), "in_fit"].any()
    assert result.record()["fitted_runs"] == sorted(large)


def test_what_no_law_can_describe_is_refused() -> None:
    with pytest.raises(ValueError, match="at least two model sizes"):
        fit(points(LARGE[:1], PAPER.predict(LARGE[:1], TOKENS), "large"))
    below = PAPER.predict(LARGE, TOKENS)
    below[2] = PAPER.fixed.rest(TOKENS) - 0.1  # under B/T^β + E: no positive A reaches it
    with pytest.raises(ValueError, match=r"run large2: loss .* is not above the law's fixed part"):
        fit(points(LARGE, below, "large"))
    with pytest.raises(ValueError, match="lack columns"):
        fit(points(LARGE, below, "large").drop(columns="tokens"))


def test_points_from_the_workflow_tables() -> None:
    """Final and lowest-loss checkpoint of each run, T from the table, N as counted."""
    rows = [
        {"run": run, "width": width, "seed": 0, "step": step, "tokens": 100 * step,
         "metric": "val_loss", "value": loss, "stderr": np.nan}
        for run, width, losses in (("w8-s0", 8, [6.0, 5.0, 5.2]), ("w16-s0", 16, [6.0, 4.8, 4.5]))
        for step, loss in zip((0, 10, 20), losses, strict=True)
    ]  # fmt: skip
    table = points_from_tables(pd.DataFrame(rows), {"w8-s0": 1000, "w16-s0": 3000})
    got = {(r.run, r.kind): (r.step, r.tokens, r.loss, r.parameters) for r in table.itertuples()}
    assert got == {
        ("w8-s0", "final"): (20, 2000, 5.2, 1000), ("w8-s0", "best"): (10, 1000, 5.0, 1000),
        ("w16-s0", "final"): (20, 2000, 4.5, 3000), ("w16-s0", "best"): (20, 2000, 4.5, 3000),
    }  # fmt: skip
    assert fitted_runs(table, min_width=16, min_parameters=None) == ["w16-s0"]
    assert fitted_runs(table, min_width=None, min_parameters=1000) == ["w8-s0", "w16-s0"]


def test_the_figure_draws_the_law_and_the_gaps(tmp_path: Path) -> None:
    table = pd.concat([
        points(LARGE, PAPER.predict(LARGE, TOKENS), "large"),
        points(SMALL, 1.08 * PAPER.predict(SMALL, TOKENS), "small"),
    ], ignore_index=True).assign(width=128)  # fmt: skip
    result = extrapolate(table, [f"large{i}" for i in range(len(LARGE))], iterations=0)
    fig = scaling_law.plot(law_columns(result), tmp_path / "f.png", tmp_path / "f.pdf")
    ax = fig.axes[0]
    (curve,) = ax.lines
    x, y = curve.get_xdata(), curve.get_ydata()
    np.testing.assert_allclose(y, PAPER.predict(x / (6 * TOKENS), TOKENS), rtol=1e-6)
    assert sorted(text.get_text() for text in ax.texts) == ["+8.0 %"] * len(SMALL)
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "f.pdf").read_bytes()[:4] == b"%PDF"
