"""The saturation summary on hand-made curves whose answers are known."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from saturation.summary import (
    SUMMARY_COLUMNS,
    SummaryConfig,
    first_step_after_minimum,
    saturation_summary,
    to_markdown,
)

STEPS = [0, 10, 20, 30, 40, 50]


def curves(run: str, width: int, loss: list, kl: list, aniso: list) -> pd.DataFrame:
    rows = []
    for metric, values in (
        ("val_loss", loss),
        ("singular_entropy", kl),
        ("anisotropy_last", aniso),
    ):
        for step, value in zip(STEPS, values, strict=True):
            rows.append({"run": run, "width": width, "seed": 0, "step": step, "tokens": step * 10,
                         "metric": metric, "value": value})  # fmt: skip
    return pd.DataFrame(rows)


def test_a_saturating_and_a_healthy_run() -> None:
    table = pd.concat([
        curves("w64-s0", 64, [9, 6, 5, 4.0, 4.2, 4.4], [0.5, 0.3, 0.2, 0.3, 0.5, 0.9],
               [0.3, 0.2, 0.25, 0.4, 0.7, 0.95]),
        curves("w512-s0", 512, [9, 6, 5, 4.0, 3.8, 3.7], [0.5, 0.3, 0.2, 0.2, 0.21, 0.22],
               [0.3, 0.2, 0.2, 0.21, 0.22, 0.2]),
    ])  # fmt: skip
    summary = saturation_summary(table, SummaryConfig(collapse_factor=2.0, anisotropy_onset=0.5))
    assert list(summary.columns) == SUMMARY_COLUMNS
    small, large = summary.iloc[0], summary.iloc[1]
    assert (small.best_step, small.best_loss, small.final_loss) == (30, 4.0, 4.4)
    assert small.final_minus_best == pytest.approx(0.4)
    assert small.relative_excess == pytest.approx(0.1)
    assert (small.kl_min_step, small.collapse_step) == (20, 40)  # 0.5 > 2 × 0.2 first at 40
    assert small.anisotropy_onset_step == 40  # 0.7 > 0.5 after the minimum at step 10
    assert small.final_anisotropy_last == 0.95
    assert (large.best_step, large.final_minus_best) == (50, 0.0)
    assert math.isnan(large.collapse_step) and math.isnan(large.anisotropy_onset_step)
    markdown = to_markdown(summary)
    assert markdown.splitlines()[0].startswith("| run | width | seed | best_step |")
    assert "| w512-s0 | 512 |" in markdown and "–" in markdown


def test_first_step_after_minimum_ignores_the_way_down() -> None:
    series = pd.Series([5.0, 1.0, 0.5, 0.6, 2.0], index=[0, 1, 2, 3, 4])
    assert first_step_after_minimum(series, 1.5) == 4  # step 0 is above too, but before the minimum


def test_missing_metric_is_named() -> None:
    table = curves("w8-s0", 8, [1] * 6, [1] * 6, [1] * 6)
    with pytest.raises(ValueError, match="anisotropy_last"):
        saturation_summary(table[table.metric != "anisotropy_last"], SummaryConfig())
