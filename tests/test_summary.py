"""The saturation summary on hand-made curves whose answers are known."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from saturation.summary import (
    SUMMARY_COLUMNS,
    SummaryConfig,
    final_stretch_start,
    saturation_summary,
    to_markdown,
)

STEPS = [0, 10, 20, 30, 40, 50]
LN_64 = math.log(64)


def curves(
    run: str, width: int, loss: list, kl: list, aniso: list, n_sigma: int | None = None
) -> pd.DataFrame:
    """One run's tidy rows; the head has `n_sigma` singular values (min(V, width); default width)."""
    rank = [(n_sigma or width) * math.exp(-value) for value in kl]
    rows = []
    for metric, values in (
        ("val_loss", loss),
        ("singular_entropy", kl),
        ("effective_rank", rank),
        ("singular_entropy_centred", [value / 2 for value in kl]),
        ("mean_row_share", [0.1 * i for i in range(len(STEPS))]),
        ("anisotropy_last", aniso),
    ):
        for step, value in zip(STEPS, values, strict=True):
            rows.append({"run": run, "width": width, "seed": 0, "step": step, "tokens": step * 10,
                         "metric": metric, "value": value})  # fmt: skip
    return pd.DataFrame(rows)


def test_a_saturating_and_a_healthy_run() -> None:
    """Shaped like Pythia's (paper Figs. 3 and 5): a random head is flat (KL ≈ 0) and the last
    layer briefly anisotropic early on. The small run ends collapsed (KL 3.9 of ln 64 = 4.16) and
    anisotropic; the large one's curves go through the same early phase and recover."""
    table = pd.concat([
        curves("w64-s0", 64, [9, 6, 5, 4.0, 4.2, 4.4], [0.001, 0.6, 0.3, 1.5, 2.5, 3.9],
               [0.1, 0.9, 0.3, 0.4, 0.7, 0.95]),
        curves("w512-s0", 512, [9, 6, 5, 4.0, 3.8, 3.7], [0.002, 0.6, 0.3, 0.35, 0.4, 0.45],
               [0.1, 0.9, 0.3, 0.25, 0.22, 0.2]),
    ])  # fmt: skip
    summary = saturation_summary(table, SummaryConfig(collapse_kl_fraction=0.5))
    assert list(summary.columns) == SUMMARY_COLUMNS
    small, large = summary.iloc[0], summary.iloc[1]
    assert (small.best_step, small.best_loss, small.final_loss) == (30, 4.0, 4.4)
    assert small.final_minus_best == pytest.approx(0.4)
    assert small.relative_excess == pytest.approx(0.1)
    assert small.final_singular_entropy == 3.9
    assert small.final_singular_entropy_centred == 1.95 and small.final_mean_row_share == 0.5
    assert small.final_effective_rank == pytest.approx(64 * math.exp(-3.9))  # ≈ 1.3 directions
    assert small.collapse_step == 40  # 2.5 > 0.5 · ln 64 = 2.08 from step 40 on; 1.5 is below
    # as the paper reads it: after the early peak (step 10), the minimum 0.3 (step 20), then
    # above 2 × 0.3 for good from step 30: the loss's best step, where the fixed level lags by 10
    assert (small.kl_minimum_step, small.kl_onset_step, small.kl_onset_minus_best) == (20, 30, 0)
    assert large.kl_minimum_step == 20 and math.isnan(large.kl_onset_step)  # ends at 0.45 < 0.6
    assert (
        small.anisotropy_onset_step == 40
    )  # above 0.5 from 40 on; the 0.9 at step 10 is transient
    assert small.final_anisotropy_last == 0.95
    assert (large.best_step, large.final_minus_best) == (50, 0.0)
    assert math.isnan(large.collapse_step) and math.isnan(large.anisotropy_onset_step)
    markdown = to_markdown(summary)
    assert markdown.splitlines()[0].startswith("| run | width | seed | best_step |")
    assert "| w512-s0 | 512 |" in markdown and "–" in markdown


def test_the_near_zero_kl_of_a_random_head_is_no_reference() -> None:
    """A rule relative to the KL minimum (the first one this project used) put the collapse at
    the first steps of every run, because a random head's KL is ≈ 1e-3; the level does not."""
    kl = [0.001, 0.01, 0.05, 0.2, 0.3, 0.4]  # rises 400-fold, stays far below 0.5 · ln 64
    table = curves("w64-s0", 64, [9, 8, 7, 6, 5, 4], kl, [0.1] * 6)
    assert math.isnan(saturation_summary(table, SummaryConfig()).iloc[0].collapse_step)


def test_the_threshold_counts_the_heads_singular_values_not_its_width() -> None:
    """A head with fewer rows than its width (V < d) has V singular values: ln V is the most its
    KL can reach, and the threshold is half of that."""
    kl = [0.001, 0.5, 1.0, 1.5, 2.0, 2.2]  # above 0.5 · ln 32 = 1.73 from step 40, never ln 1024's
    table = curves("w1024-s0", 1024, [9, 8, 7, 6, 5, 4], kl, [0.1] * 6, n_sigma=32)
    summary = saturation_summary(table, SummaryConfig()).iloc[0]
    assert summary.collapse_step == 40
    assert summary.final_effective_rank == pytest.approx(32 * math.exp(-2.2))


def test_final_stretch_start() -> None:
    series = pd.Series([0.1, 0.9, 0.2, 0.6, 0.7], index=[0, 1, 2, 3, 4])
    assert final_stretch_start(series, 0.5) == 3  # step 1 is above too, but not for good
    assert final_stretch_start(series, 0.1) == 1  # step 0 equals the threshold: not above it
    assert final_stretch_start(series, -1.0) == 0
    assert math.isnan(final_stretch_start(series, 0.7))  # ends at the threshold, not above it


def test_missing_metric_is_named() -> None:
    table = curves("w8-s0", 8, [1] * 6, [1] * 6, [1] * 6)
    with pytest.raises(ValueError, match="anisotropy_last"):
        saturation_summary(table[table.metric != "anisotropy_last"], SummaryConfig())


def test_best_is_the_earliest_checkpoint_within_one_standard_error_of_the_lowest() -> None:
    """A noisy tail: the raw argmin (step 40) is 0.01 below step 20, well inside the loss's
    standard error, so "best" is step 20 and the argmin is kept as `lowest_step`."""
    from saturation.summary import best_step, lowest_step

    table = curves("w64-s0", 64, [9, 6, 4.02, 4.03, 4.01, 4.2], [0.1] * 6, [0.1] * 6)
    table["stderr"] = math.nan
    loss = table["metric"] == "val_loss"
    table.loc[loss, "stderr"] = 0.02
    assert (best_step(table), lowest_step(table)) == (20, 40)
    row = saturation_summary(table, SummaryConfig()).iloc[0]
    assert (row.best_step, row.lowest_step, row.best_loss) == (20, 40, 4.01)
    table.loc[loss, "stderr"] = 0.005  # now step 20 is 0.01 = 2 SE above the lowest
    assert best_step(table) == 40
    table.loc[loss, "stderr"] = math.nan  # no error recorded: the raw argmin
    assert best_step(table) == lowest_step(table) == 40


def test_the_onset_is_relative_to_the_minimum_after_the_transient() -> None:
    """Shaped like Pythia-14M's Fig. 5 curve: flat at initialisation, an early peak, a minimum,
    a late climb with a noisy dip; the onset is the first step above 2× the minimum that lasts."""
    from saturation.summary import relative_onset, transient_end

    steps = [0, 1, 2, 4, 8, 16, 32, 64, 128, 256]
    kl = pd.Series([0.001, 0.002, 0.3, 0.1, 0.05, 0.06, 0.12, 0.09, 0.2, 0.4], index=steps)
    assert transient_end(kl, 0.1) == 2  # the first local maximum
    assert relative_onset(kl, 2.0, 0.1) == (8, 128)  # 0.12 at 32 dips back to 0.09 at 64
    assert relative_onset(kl, 5.0, 0.1) == (8, 256)  # above 0.25: 0.4 only
    falling = pd.Series([0.5, 0.4, 0.3, 0.2], index=[0, 10, 20, 30])  # no peak, ends at its minimum
    assert transient_end(falling, 0.1) == 3.0
    low, onset = relative_onset(falling, 2.0, 0.1)
    assert low == 30 and math.isnan(onset)
    rising = pd.Series([0.001, 0.01, 0.02, 0.05, 0.2], index=[0, 100, 200, 300, 400])
    # no early peak: the transient is the first 10 % (40 steps), the minimum 0.01 at step 100
    assert relative_onset(rising, 2.0, 0.1) == (100, 300)
    assert math.isnan(relative_onset(pd.Series([0.0, 0.0]), 2.0, 0.1)[0])  # no positive minimum


def _with(table: pd.DataFrame, metric: str, values: list, stderr: float = math.nan) -> pd.DataFrame:
    """The run's rows plus one more metric at its steps."""
    rows = table[table.metric == "val_loss"].assign(metric=metric, value=values, stderr=stderr)
    return pd.concat([table, rows], ignore_index=True)


def test_a_late_rise_is_told_apart_from_overfitting() -> None:
    """The held-out loss bottoms out at step 30 and rises. With the train-sample loss still
    falling past one epoch that is overfitting; with it rising too, or on data never repeated,
    saturation."""
    from saturation.summary import late_rise

    base = curves("w64-s0", 64, [9, 6, 5, 4.0, 4.2, 4.4], [0.1] * 6, [0.1] * 6)
    epochs = [0, 0.5, 1.0, 1.5, 2.0, 2.5]
    falling = _with(_with(base, "epochs", epochs), "train_loss", [9, 6, 5, 3.9, 3.7, 3.5], 0.05)
    assert late_rise(falling, 30, 50) == "overfitting"
    row = saturation_summary(falling, SummaryConfig()).iloc[0]
    assert (row.late_rise, row.final_epochs, row.final_train_loss) == ("overfitting", 2.5, 3.5)
    rising = _with(_with(base, "epochs", epochs), "train_loss", [9, 6, 5, 3.9, 4.0, 4.1], 0.05)
    assert late_rise(rising, 30, 50) == "saturation"
    within_error = _with(
        _with(base, "epochs", epochs), "train_loss", [9, 6, 5, 3.9, 3.89, 3.88], 0.05
    )
    assert late_rise(within_error, 30, 50) == "saturation"  # stalls: 0.02 is inside 1 s.e.
    fresh = _with(base, "epochs", [0, 0.1, 0.2, 0.3, 0.4, 0.5])  # no train sample, one pass
    assert late_rise(fresh, 30, 50) == "saturation"
    assert late_rise(base, 30, 50) == "undetermined"  # a published suite: neither is known
    assert late_rise(base, 50, 50) == "none"
    early = _with(_with(base, "epochs", [0, 0.1, 0.2, 0.3, 0.4, 0.5]), "train_loss",
                  [9, 6, 5, 3.9, 3.7, 3.5], 0.05)  # fmt: skip
    assert late_rise(early, 30, 50) == "undetermined"  # train falls but nothing repeated yet


def test_the_kl_convention_is_a_setting_recorded_in_the_summary() -> None:
    """`kl_of: sigma2` reads the KL of σ² (its own tidy metric) for the collapse and the
    onset, and says so; d still comes from the σ statistics."""
    table = curves("w64-s0", 64, [9, 6, 5, 4.0, 4.2, 4.4], [0.001, 0.6, 0.3, 1.5, 2.5, 3.9],
                   [0.1] * 6)  # fmt: skip
    sq = table[table.metric == "singular_entropy"].assign(
        metric="singular_entropy_sq", value=[0.002, 1.0, 0.5, 2.5, 3.0, 3.5]
    )
    table = pd.concat([table, sq], ignore_index=True)
    sigma = saturation_summary(table, SummaryConfig()).iloc[0]
    squared = saturation_summary(table, SummaryConfig(kl_of="sigma2")).iloc[0]
    assert (sigma.kl_of, squared.kl_of) == ("sigma", "sigma2")
    assert (sigma.final_singular_entropy, squared.final_singular_entropy) == (3.9, 3.5)
    assert squared.collapse_step == 30  # 2.5 > 0.5 · ln 64 = 2.08 from step 30 on
    assert squared.final_effective_rank == sigma.final_effective_rank  # of σ, always
