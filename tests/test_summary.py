"""The saturation summary on hand-made curves whose answers are known."""

from __future__ import annotations

import math

import numpy as np
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
    assert late_rise(falling, 50) == "overfitting"
    row = saturation_summary(falling, SummaryConfig()).iloc[0]
    assert (row.late_rise, row.final_epochs, row.final_train_loss) == ("overfitting", 2.5, 3.5)
    rising = _with(_with(base, "epochs", epochs), "train_loss", [9, 6, 5, 3.9, 4.0, 4.1], 0.05)
    assert late_rise(rising, 50) == "saturation"
    within_error = _with(
        _with(base, "epochs", epochs), "train_loss", [9, 6, 5, 3.9, 3.89, 3.88], 0.05
    )
    assert late_rise(within_error, 50) == "saturation"  # stalls: 0.02 is inside 1 s.e.
    fresh = _with(base, "epochs", [0, 0.1, 0.2, 0.3, 0.4, 0.5])  # no train sample, one pass
    assert late_rise(fresh, 50) == "saturation"
    assert late_rise(base, 50) == "undetermined"  # a published suite: neither is known
    improving = curves("w64-s0", 64, [9, 6, 5, 4.0, 3.9, 3.8], [0.1] * 6, [0.1] * 6)
    assert late_rise(improving, 50) == "none"  # the final checkpoint is the lowest
    noisy = _with(base.assign(value=base.value.where(base.metric != "val_loss", 4.0)), "epochs",
                  epochs)  # fmt: skip
    noisy.loc[(noisy.metric == "val_loss") & (noisy.step == 50), "value"] = 4.01
    noisy.loc[noisy.metric == "val_loss", "stderr"] = 0.02
    assert late_rise(noisy, 50) == "none"  # 0.01 above the lowest: inside its error
    early = _with(_with(base, "epochs", [0, 0.1, 0.2, 0.3, 0.4, 0.5]), "train_loss",
                  [9, 6, 5, 3.9, 3.7, 3.5], 0.05)  # fmt: skip
    assert late_rise(early, 50) == "undetermined"  # train falls but nothing repeated yet


def test_late_rise_pairs_each_window_with_itself() -> None:
    """Window difficulty spread ±1 nat makes the level's standard error ≈ 0.16, while every
    train window falls by 0.03 from the lowest to the final checkpoint: paired, that fall is
    certain (overfitting); against the level's error it would read as a stall (saturation).
    Likewise a held-out rise of 0.02 on every window is a rise, though inside the level's error."""
    from saturation.summary import WindowLosses, late_rise

    rng = np.random.default_rng(3)
    difficulty = rng.normal(0, 1, 40) + rng.normal(0, 0.005, (6, 40))
    val = WindowLosses(np.array(STEPS), np.array([9, 6, 5, 4.0, 4.01, 4.02])[:, None] + difficulty)
    train = WindowLosses(
        np.array(STEPS), np.array([9, 6, 5, 3.9, 3.88, 3.87])[:, None] + difficulty
    )
    means = [float(row.mean()) for row in val.losses]
    table = curves("w64-s0", 64, means, [0.1] * 6, [0.1] * 6)
    table = _with(_with(table, "epochs", [0, 0.5, 1.0, 1.5, 2.0, 2.5]), "train_loss",
                  [float(row.mean()) for row in train.losses], 0.16)  # fmt: skip
    table.loc[table.metric == "val_loss", "stderr"] = 0.16
    assert late_rise(table, 50, val, train) == "overfitting"
    assert late_rise(table, 50, val, train, min_rise=0.05) == "none"  # certain, but too small
    assert late_rise(table, 50) == "none"  # the level's error hides the rise itself
    change, error = train.change(30, 50)
    assert change == pytest.approx(-0.03, abs=0.003) and error < 0.002


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


# ---------------------------------------------------------------------------- uncertainty


def windows_of(run: str, losses: list[list[float]]) -> pd.DataFrame:
    """A windows table: `losses[i][w]` is window w's mean loss at STEPS[i]."""
    return pd.DataFrame([
        {"run": run, "width": 64, "seed": 0, "step": step, "tokens": step * 10, "split": "val",
         "window": w, "loss": loss}
        for step, row in zip(STEPS, losses, strict=True) for w, loss in enumerate(row)
    ])  # fmt: skip


def with_window_means(table: pd.DataFrame, windows: pd.DataFrame) -> pd.DataFrame:
    """The tidy val_loss and its stderr as the analysis computes them from the windows."""
    by_step = windows.groupby("step")["loss"]
    loss = table["metric"] == "val_loss"
    table = table.copy()
    table.loc[loss, "value"] = table.loc[loss, "step"].map(by_step.mean())
    table.loc[loss, "stderr"] = table.loc[loss, "step"].map(
        by_step.std(ddof=1) / by_step.count() ** 0.5
    )
    return table


def test_bootstrap_resamples_every_checkpoint_with_one_draw() -> None:
    """Windows differ a lot in difficulty (±1 nat) while step 30 is 0.05 below its neighbours on
    every window: resampling windows jointly keeps the lowest step at 30 in every resample (an
    independent draw per checkpoint would move it); the best step, within one (large) standard
    error of the lowest level, ranges over the checkpoints that error cannot tell apart."""
    rng = np.random.default_rng(1)
    difficulty = rng.normal(0, 1, 40)
    levels = [9, 6, 4.1, 4.0, 4.05, 4.1]
    windows = windows_of("w64-s0", [list(level + difficulty) for level in levels])
    table = with_window_means(curves("w64-s0", 64, levels, [0.1] * 6, [0.1] * 6), windows)
    row = saturation_summary(table, SummaryConfig(bootstrap=400), windows).iloc[0]
    assert (row.lowest_step_low, row.lowest_step_high) == (30, 30)
    assert row.best_step_low <= row.best_step <= row.best_step_high
    assert row.best_step == 20  # 4.1 is within one s.e. (≈ 0.16) of 4.0
    assert row.final_minus_best_low == pytest.approx(0.1) == row.final_minus_best_high
    # the KL has no onset here: its distance from the best step has no interval
    assert math.isnan(row.kl_onset_minus_best_low) and math.isnan(row.kl_onset_minus_best_high)
    again = saturation_summary(table, SummaryConfig(bootstrap=400), windows).iloc[0]
    assert again.equals(row)  # seeded: the same intervals
    off = saturation_summary(table, SummaryConfig(bootstrap=0), windows).iloc[0]
    assert math.isnan(off.best_step_low) and off.best_step == row.best_step


def test_bootstrap_interval_covers_a_near_tie() -> None:
    """Two checkpoints 0.005 apart with independent window noise of 0.05: resamples pick either
    as the lowest, so the interval of `lowest_step` spans both; the onsets move with the best."""
    rng = np.random.default_rng(2)
    losses = [list(level + rng.normal(0, 0.05, 30)) for level in (9, 6, 4.2, 4.0, 4.005, 4.3)]
    windows = windows_of("w64-s0", losses)
    kl = [0.001, 0.6, 0.3, 0.2, 0.6, 1.0]  # onset (2 × 0.2) at step 40
    table = with_window_means(curves("w64-s0", 64, [9] * 6, kl, [0.1] * 6), windows)
    row = saturation_summary(table, SummaryConfig(), windows).iloc[0]
    assert row.kl_onset_step == 40
    assert (row.lowest_step_low, row.lowest_step_high) == (30, 40)
    assert row.kl_onset_minus_best_low == 40 - row.best_step_high
    assert row.kl_onset_minus_best_high == 40 - row.best_step_low


def test_windows_of_different_samples_are_refused() -> None:
    windows = windows_of("w64-s0", [[1.0, 2.0]] * 5 + [[1.0]])
    table = with_window_means(curves("w64-s0", 64, [9] * 6, [0.1] * 6, [0.1] * 6), windows)
    with pytest.raises(ValueError, match="w64-s0: its checkpoints were scored on different"):
        saturation_summary(table, SummaryConfig(), windows)


def test_across_seeds_pools_each_models_seeds() -> None:
    """Two seeds of width 64 (mean, sd and the t interval of the mean), one of width 128 (no
    interval); an onset one seed never reaches is pooled over the seed that has it (n = 1)."""
    from saturation.summary import across_seeds

    table = pd.concat([
        curves("w64-s0", 64, [9, 6, 5, 4.0, 4.2, 4.4], [0.001, 0.6, 0.3, 0.2, 0.5, 0.9], [0.1] * 6),
        curves("w64-s1", 64, [9, 6, 5, 4.2, 4.1, 4.0], [0.001, 0.6, 0.3, 0.25, 0.3, 0.35], [0.1] * 6)
        .assign(seed=1),
        curves("w128-s0", 128, [9, 6, 5, 4.0, 3.9, 3.8], [0.1] * 6, [0.1] * 6),
    ])  # fmt: skip
    summary = saturation_summary(table, SummaryConfig())
    seeds = across_seeds(summary, 0.95).set_index(["model", "quantity"])
    final = seeds.loc[("w64", "final_loss")]
    assert (final.width, final.seeds, final.n) == (64, 2, 2)
    assert final["mean"] == pytest.approx(4.2) and final["std"] == pytest.approx(0.2 * 2**0.5)
    assert final.ci_high - final["mean"] == pytest.approx(12.706204736 * 0.2)  # t(0.975, 1) · sd/√2
    onset = seeds.loc[("w64", "kl_onset_step")]
    assert (onset.n, onset["mean"]) == (1, 40) and math.isnan(onset.ci_low)
    single = seeds.loc[("w128", "final_loss")]
    assert (single.seeds, single.n, single["mean"]) == (1, 1, 3.8) and math.isnan(single.ci_high)
    assert {"run", "seed", "late_rise", "best_step_low"}.isdisjoint(seeds.index.get_level_values(1))
