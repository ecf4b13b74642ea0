"""The tidy table from real per-checkpoint records, and every figure drawn from it alone."""

from __future__ import annotations

import importlib
import json
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PolyCollection

from saturation.checkpoints import CheckpointEntry, write_manifest
from saturation.figures import (
    FIGURES,
    FigureOptions,
    anisotropy_depth,
    loss_curve,
    singular_entropy,
    spectrum_heatmap,
)
from saturation.summary import best_vs_final
from saturation.tables import (
    RUNS_COLUMNS,
    SPECTRUM_COLUMNS,
    TIDY_COLUMNS,
    WINDOW_COLUMNS,
    RunMeasurements,
    combine_run_tables,
    read_tidy_table,
    run_benchmarks,
    run_metrics,
    run_spectra,
    run_windows,
    runs_table,
    write_tidy_table,
)
from tests.conftest import DRAWN_FIGURES


def fake_run(
    root: Path, width: int, losses: list[float], seed: int = 0, prefix: str = "", suffix: str = ""
) -> RunMeasurements:
    steps = [0, 1, 2, 4, 8][: len(losses)]
    entries = [CheckpointEntry(s, s * 100, f"ckpt/step{s}", "0" * 64) for s in steps]
    name = f"{prefix}w{width}{suffix}-s{seed}"
    write_manifest(root / f"manifest-{name}.csv", entries)
    metrics = {}
    for step, loss in zip(steps, losses, strict=True):
        path = root / f"{name}-step{step}" / "metrics.json"
        path.parent.mkdir()
        record = {
            "metrics": {
                "val_loss": loss,
                "singular_entropy": 0.1 + loss / 100,
                "singular_entropy_centred": loss / 200,
                "mean_row_share": 0.5,
            }
            | {f"anisotropy_d{d:02d}": 0.1 * d + step / 100 for d in range(4)}
            | {"anisotropy_last": 0.3 + step / 100},
            "info": {},
        }
        path.write_text(json.dumps(record))
        np.save(path.with_name("singular_values.npy"), np.linspace(width, 1, width) / (step + 1))
        np.save(path.with_name("singular_values_centred.npy"), np.geomspace(width, 1, width))
        np.save(path.with_name("window_losses_val.npy"), loss + np.array([-0.1, 0.1, 0.0]))
        metrics[step] = str(path)
    return RunMeasurements(name, width, seed, str(root / f"manifest-{name}.csv"), metrics)


@pytest.fixture
def runs(tmp_path: Path) -> list[RunMeasurements]:
    return [fake_run(tmp_path, 64, [6.0, 4.0]), fake_run(tmp_path, 32, [6.0, 5.0, 4.5, 4.6, 4.7])]


def combined(runs: list[RunMeasurements], tables, root: Path) -> pd.DataFrame:
    paths = []
    for run in runs:
        paths.append(root / f"{run.run}-{tables.__name__}.csv")
        tables(run).to_csv(paths[-1], index=False)
    return combine_run_tables(paths, tables.__name__.removeprefix("run_"))


def fake_benchmarks(run: RunMeasurements, root: Path) -> pd.DataFrame:
    """Evaluation records as evaluate_run stores them, one per task at every step of the run."""
    records = {}
    for step, metrics in run.metrics.items():
        loss = json.loads(Path(metrics).read_text())["metrics"]["val_loss"]
        results = {
            "sat_cloze": {"acc": 1 / loss, "acc_stderr": 0.01},
            "sat_wordperplexity": {"word_perplexity": loss**3},
        }
        records[step] = {}
        for task, metrics in results.items():
            path = root / f"{run.run}-{task}-step{step}.json"
            path.write_text(json.dumps({"results": {task: metrics}}))
            records[step][task] = str(path)
    return run_benchmarks(run.run, run.width, run.seed, run.manifest, records)


@pytest.fixture
def table(runs: list[RunMeasurements], tmp_path: Path) -> pd.DataFrame:
    paths = [tmp_path / "benchmarks.csv"]
    pd.concat([fake_benchmarks(run, tmp_path) for run in runs]).to_csv(paths[0], index=False)
    for run in runs:
        paths.append(tmp_path / f"{run.run}-metrics.csv")
        run_metrics(run).to_csv(paths[-1], index=False)
    return combine_run_tables(paths, "metrics")


@pytest.fixture
def spectra(runs: list[RunMeasurements], tmp_path: Path) -> pd.DataFrame:
    return combined(runs, run_spectra, tmp_path)


def test_tidy_shape(table: pd.DataFrame, tmp_path: Path) -> None:
    assert list(table.columns) == TIDY_COLUMNS
    assert len(table) == (5 + 2) * 9 + (5 + 2) * 2  # 9 measurements, 2 benchmark metrics
    assert table[table.metric == "val_loss"].stderr.isna().all()
    acc = table[(table.metric == "sat_cloze/acc") & (table.run == "w64-s0")]
    assert list(acc.value) == pytest.approx([1 / 6, 1 / 4]) and (acc.stderr == 0.01).all()
    assert table.width.is_monotonic_increasing
    row = table[(table.run == "w32-s0") & (table.step == 4) & (table.metric == "val_loss")]
    assert row.value.item() == 4.6 and row.tokens.item() == 400
    write_tidy_table(table, tmp_path / "t.csv", tmp_path / "t.parquet")
    pd.testing.assert_frame_equal(read_tidy_table(tmp_path / "t.parquet"), table)
    assert read_tidy_table(tmp_path / "t.csv").shape == table.shape


def test_best_vs_final_is_table_1(table: pd.DataFrame) -> None:
    rows = best_vs_final(table).set_index(["run", "metric"])
    acc = rows.loc[("w32-s0", "sat_cloze/acc")]
    assert (acc.best_step, acc.final_step) == (2, 8)
    assert acc.best == pytest.approx(1 / 4.5) and acc.final == pytest.approx(1 / 4.7)
    assert acc.final_minus_best == pytest.approx(1 / 4.7 - 1 / 4.5)
    assert acc.best_stderr == 0.01
    assert np.isnan(rows.loc[("w32-s0", "sat_wordperplexity/word_perplexity")].final_stderr)


def test_spectra_table(spectra: pd.DataFrame) -> None:
    assert list(spectra.columns) == SPECTRUM_COLUMNS
    assert len(spectra) == 2 * 64 + 5 * 32
    first = spectra[(spectra.run == "w32-s0") & (spectra.step == 4)]
    assert list(first["rank"]) == list(range(1, 33))
    assert first.sigma.iloc[0] == pytest.approx(32 / 5)
    ratios = spectrum_heatmap.ratios(spectra, top_k=10)
    assert ratios["rank"].max() == 10 and ratios.ratio.max() == pytest.approx(1.0)
    # below the top too: σ_i / σ_1 of that very checkpoint (a max-normalisation alone is not enough)
    ratio = ratios[(ratios.width == 32) & (ratios.step == 4)].set_index("rank").ratio
    assert ratio[7] == pytest.approx(first.sigma.iloc[6] / first.sigma.iloc[0])
    assert ratio[7] == pytest.approx(np.linspace(32, 1, 32)[6] / 32)


def test_windows_table(runs: list[RunMeasurements], tmp_path: Path) -> None:
    """Each checkpoint's held-out window losses, in window order, for the summary's bootstrap."""
    windows = combined(runs, run_windows, tmp_path)
    assert list(windows.columns) == WINDOW_COLUMNS
    assert len(windows) == (2 + 5) * 3 and set(windows.split) == {"val"}
    at = windows[(windows.run == "w32-s0") & (windows.step == 4)]
    np.testing.assert_allclose(at.loss, [4.5, 4.7, 4.6])
    assert list(at.window) == [0, 1, 2]


def test_spectrum_heatmap_draws_sigma_ratios(spectra: pd.DataFrame, tmp_path: Path) -> None:
    raw = FigureOptions(head="raw")
    fig = spectrum_heatmap.plot(spectra, tmp_path / "f.png", tmp_path / "f.pdf", raw)
    axes = [ax for ax in fig.axes if ax.get_title()]  # the panels, not the colour bar
    titles = [ax.get_title() for ax in axes]
    assert titles == ["w32-s0: width 32\nhead W, all 32 σ", "w64-s0: width 64\nhead W, all 64 σ"]
    assert "top 100" not in fig.get_suptitle()  # no width here has more than 100 values
    cells = axes[0].collections[0].get_array().reshape(32, 5)  # rank 1 first (top), then steps
    sigma = np.linspace(32, 1, 32)
    np.testing.assert_allclose(cells[:, 3], sigma / sigma[0])  # steps 0 1 2 4 8: scale-free
    # each column at its step on the symlog axis, not at its index: its inner edges halfway (in
    # the axis's coordinates) between neighbouring steps
    edges = axes[0].collections[0].get_coordinates()[0, :, 0]
    transform = axes[0].xaxis.get_transform()
    at = transform.transform(np.array([0.0, 1, 2, 4, 8]))
    np.testing.assert_allclose(transform.transform(edges[1:-1]), (at[:-1] + at[1:]) / 2)
    assert all(edges[:-1] < [0, 1, 2, 4, 8]) and all(edges[1:] > [0, 1, 2, 4, 8])
    wide = spectra.assign(rank=spectra["rank"] * 4)  # 256 ranks for width 64
    assert spectrum_heatmap.shown_ranks(wide[wide.run == "w64-s0"]) == "top 100 of 256 σ"


@pytest.mark.parametrize("head", ["raw", "centred", "both"])
def test_spectrum_figures_show_the_configured_head(
    head: str, spectra: pd.DataFrame, table: pd.DataFrame, tmp_path: Path
) -> None:
    """figures.head: the raw head, the row-centred head (its own spectrum: here geometric,
    so σ_i / σ_1 = (1/32)^((i−1)/31)), or both, one row (Fig. 4) or panel (Fig. 5) each."""
    options = FigureOptions(head=head)
    fig = spectrum_heatmap.plot(spectra, tmp_path / "f.png", tmp_path / "f.pdf", options)
    panels = [ax for ax in fig.axes if ax.get_title()]
    centred = [ax for ax in panels if "row-centred" in ax.get_title()]
    assert len(panels) == 2 * len(options.heads) and len(centred) == 2 * (head != "raw")
    if centred:
        cells = centred[0].collections[0].get_array().reshape(32, 5)
        np.testing.assert_allclose(cells[:, 0], np.geomspace(32, 1, 32) / 32)
    fig = singular_entropy.plot(table, tmp_path / "g.png", tmp_path / "g.pdf", options)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == [
        {"raw": "head W", "centred": "row-centred head W − 1m̄ᵀ"}[h] for h in options.heads
    ]


def test_loss_curve_draws_each_width_and_its_minimum(table: pd.DataFrame, tmp_path: Path) -> None:
    fig = loss_curve.plot(table, tmp_path / "f.png", tmp_path / "f.pdf")
    ax = fig.axes[0]
    lines = {tuple(line.get_xdata()): list(line.get_ydata()) for line in ax.lines}
    assert lines[(0, 1, 2, 4, 8)] == [6.0, 5.0, 4.5, 4.6, 4.7]  # w32
    assert lines[(0, 1)] == [6.0, 4.0]  # w64
    stars = sorted(tuple(xy) for c in ax.collections for xy in c.get_offsets().tolist())
    assert stars == [(1.0, 4.0), (2.0, 4.5)]  # each width's minimum (w32's is not its end)


def test_loss_curve_bands_are_one_standard_error(table: pd.DataFrame, tmp_path: Path) -> None:
    loss = table["metric"] == "val_loss"
    banded = table.assign(stderr=np.where(loss, 0.1, np.nan))
    ax = loss_curve.plot(banded, tmp_path / "f.png", tmp_path / "f.pdf").axes[0]
    bands = [c for c in ax.collections if isinstance(c, PolyCollection)]  # not the stars
    assert len(bands) == 2
    (w64,) = [b for b in bands if b.get_paths()[0].vertices[:, 0].max() == 1]
    vertices = w64.get_paths()[0].vertices
    assert vertices[:, 1].min() == pytest.approx(4.0 - 0.1) and vertices[
        :, 1
    ].max() == pytest.approx(6.1)


def test_anisotropy_depth_uses_each_final_checkpoint(table: pd.DataFrame) -> None:
    frame = anisotropy_depth.by_depth(table)
    assert dict(frame.groupby("run")["step"].unique().map(list)) == {"w32-s0": [8], "w64-s0": [1]}
    assert sorted(frame.normalised_depth.unique()) == pytest.approx([0, 1 / 3, 2 / 3, 1])
    # the runs end at steps 8 and 1: a title naming only step 8 would be wrong for w64
    assert anisotropy_depth.title(frame).endswith("each run's final checkpoint (steps 1–8)")
    same_end = anisotropy_depth.by_depth(table[table.step <= 1])
    assert anisotropy_depth.title(same_end).endswith("the final checkpoint (step 1)")


@pytest.fixture(scope="module")
def wcurve(tiny_data: dict[str, Path]) -> pd.DataFrame:
    """The ngram stage's table of the tiny corpus (saturation.measure.ngram.dimensionality)."""
    from saturation.measure.ngram import dimensionality

    return dimensionality(tiny_data["train"], 3, 1, 0.01, [1, 2, 4, 8, 16, 32])[0]


def heads_table() -> pd.DataFrame:
    """A heads table of two swept checkpoints, shaped as saturation.measure.head_sweep writes it:
    the loss falls with the rank to the full-rank head's, the W-error with it."""
    rows = []
    for run, width in (("w8-s0", 8), ("w16-s0", 16)):
        base = {"run": run, "width": width, "seed": 0, "step": 100}
        rows.append(base | {"head": "own", "rank": width, "chosen": True, "loss": 3.0,
                            "accuracy": 0.3})  # fmt: skip
        for rank in [r for r in (2, 4, 8, 16) if r <= width]:
            for init in ("normal", "scaled"):
                for lr in (1e-3, 1e-2):
                    loss = 3.0 + 1 / rank + (lr == 1e-3) * 0.1 + (init == "normal") * 0.2
                    rows.append(base | {
                        "head": "low_rank", "rank": rank, "init": init, "lr": lr,
                        "chosen": lr == 1e-2, "select_loss": loss, "loss": loss,
                        "accuracy": 0.3 - 0.1 / rank, "w_error": 1 - rank / width,
                        "tail_norm": float(width - rank),
                    })  # fmt: skip
        for init in ("normal", "scaled"):
            for lr in (1e-3, 1e-2):
                rows.append(base | {
                    "head": "full_rank", "rank": width, "init": init, "lr": lr,
                    "chosen": lr == 1e-2, "select_loss": 3.0 + 1 / width + (init == "normal"),
                    "loss": 3.0 + 1 / width, "accuracy": 0.3, "w_error": 0.0, "tail_norm": 0.0,
                })  # fmt: skip
    return pd.DataFrame(rows)


def test_the_head_sweep_figures_read_the_chosen_heads(tmp_path: Path) -> None:
    from saturation.figures import head_learning_rates, loss_vs_w_error, rank_heads

    table = heads_table()
    loss_axis = rank_heads.plot(table, tmp_path / "a.png", tmp_path / "a.pdf").axes[0]
    lines = {line.get_label(): line for line in loss_axis.get_lines()}
    scaled = lines["w8-s0@100, scaled init"]
    assert list(scaled.get_xdata()) == [2, 4, 8]
    assert list(scaled.get_ydata()) == pytest.approx([3.5, 3.25, 3.125])
    assert list(lines["w8-s0@100: own head"].get_ydata()) == [3.0, 3.0]
    assert list(lines["w16-s0@100: full rank, retrained"].get_ydata()) == [3.0625] * 2
    left = loss_vs_w_error.plot(table, tmp_path / "b.png", tmp_path / "b.pdf").axes
    (w8,) = [line for line in left[0].get_lines() if line.get_label() == "w8-s0@100"]
    assert list(w8.get_xdata()) == [0.75, 0.5, 0.0]  # the better (scaled) init's heads
    (gap,) = [line for line in left[1].get_lines() if line.get_label() == "w8-s0@100"]
    assert list(gap.get_xdata()) == [6.0, 4.0]  # rank 8 = d has no tail: left out of the log axis
    assert list(gap.get_ydata()) == pytest.approx([0.5 - 0.125, 0.25 - 0.125])
    rates = head_learning_rates.plot(table, tmp_path / "c.png", tmp_path / "c.pdf").axes[0]
    chosen = {line.get_label(): list(line.get_ydata()) for line in rates.get_lines()}
    assert chosen["w16-s0@100, normal init"] == [1e-2] * 4
    with pytest.raises(ValueError, match="no run is swept"):
        rank_heads.plot(table.iloc[:0], tmp_path / "d.png", tmp_path / "d.pdf")


@pytest.mark.parametrize("name", sorted(DRAWN_FIGURES))  # the scaling figure: test_scaling.py
def test_figures_render_png_and_pdf(
    name: str, table: pd.DataFrame, spectra: pd.DataFrame, wcurve: pd.DataFrame, tmp_path: Path
) -> None:
    figure = importlib.import_module(f"saturation.figures.{name}")
    drawn = {"spectra": spectra, "ngram": wcurve, "heads": heads_table()}.get(FIGURES[name], table)
    figure.plot(drawn, tmp_path / "f.png", tmp_path / "f.pdf")
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "f.pdf").read_bytes()[:4] == b"%PDF"
    first = {kind: (tmp_path / f"f.{kind}").read_bytes() for kind in ("png", "pdf")}
    time.sleep(1.1)  # a PDF's creation date has one-second resolution
    figure.plot(drawn, tmp_path / "f.png", tmp_path / "f.pdf")
    assert {kind: (tmp_path / f"f.{kind}").read_bytes() for kind in first} == first  # redrawn: same


def test_figure_refuses_a_table_without_its_metric(table: pd.DataFrame, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="val_loss"):
        loss_curve.plot(table[table.metric != "val_loss"], tmp_path / "f.png", tmp_path / "f.pdf")


def test_seeds_of_one_model_are_pooled_into_a_mean_and_its_interval(tmp_path: Path) -> None:
    """Two seeds of one width are one model: their mean, a band of its 95 % Student-t interval
    across seeds, the seeds themselves as thin lines, and the minimum of the mean marked."""
    runs = [fake_run(tmp_path, 32, [6.0, 5.0, 4.5]), fake_run(tmp_path, 32, [7.0, 5.5, 5.8], 1)]
    paths = []
    for run in runs:
        paths.append(tmp_path / f"{run.run}.csv")
        run_metrics(run).to_csv(paths[-1], index=False)
    table = combine_run_tables(paths, "metrics")
    assert list(table.drop_duplicates("run").run) == ["w32-s0", "w32-s1"]  # ordered, not mixed
    ax = loss_curve.plot(table, tmp_path / "f.png", tmp_path / "f.pdf").axes[0]
    lines = sorted(list(line.get_ydata()) for line in ax.lines if len(line.get_xdata()) == 3)
    np.testing.assert_allclose(lines, [[6.0, 5.0, 4.5], [6.5, 5.25, 5.15], [7.0, 5.5, 5.8]])
    (band,) = [c for c in ax.collections if isinstance(c, PolyCollection)]
    vertices = band.get_paths()[0].vertices
    top = vertices[vertices[:, 0] == 0, 1].max()  # step 0: seeds at 6 and 7, sd / √2 = 0.5
    assert top == pytest.approx(6.5 + 12.706204736 * 0.5)  # t(0.975, 1 degree of freedom)
    stars = [tuple(xy) for c in ax.collections for xy in c.get_offsets().tolist()
             if not isinstance(c, PolyCollection)]  # fmt: skip
    assert stars == [(2.0, 5.15)]
    assert "95% CI of the mean" in ax.get_title()


def test_a_sweep_s_models_are_named_once_not_by_seed(tmp_path: Path) -> None:
    """Two models of one width (a tagged run of a sweep beside the plain one), two seeds each:
    the plain one's band is labelled by its width, the tagged one's by its model name, which
    is also written once at the end of its mean, not at each seed's last point."""
    runs = [fake_run(tmp_path, 32, [6.0, 5.0], seed, suffix=suffix)
            for suffix in ("", "-wd0") for seed in (0, 1)]  # fmt: skip
    paths = []
    for run in runs:
        paths.append(tmp_path / f"{run.run}.csv")
        run_metrics(run).to_csv(paths[-1], index=False)
    table = combine_run_tables(paths, "metrics")
    ax = loss_curve.plot(table, tmp_path / "f.png", tmp_path / "f.pdf").axes[0]
    labels = [line.get_label() for line in ax.lines if not line.get_label().startswith("_")]
    assert sorted(labels) == ["32 (mean of 2 seeds)", "w32-wd0 (mean of 2 seeds)"]
    assert [text.get_text() for text in ax.texts] == ["w32-wd0"]
    assert ax.get_legend().get_title().get_text() == "width or model"


def test_runs_table_lists_each_run_and_its_attributes() -> None:
    recipe = {
        "w64-s0": {"source": "pretrain", "attributes": {"family": "gpt_neox", "width": 64,
                                                        "layers": 2, "seed": 0}},
        "pythia-70m": {"source": "hub", "attributes": {"family": "gpt_neox", "width": 512,
                                                       "layers": 6, "seed": 0, "revision": "x"}},
    }  # fmt: skip
    table = runs_table(recipe)
    assert list(table.columns) == [*RUNS_COLUMNS, "revision"]
    assert list(table.run) == ["w64-s0", "pythia-70m"]  # by width
    assert table.set_index("run").loc["pythia-70m", "source"] == "hub"


def test_bottleneck_table_and_figure(tmp_path: Path) -> None:
    """Each synthetic run's final loss at d = its width beside the oracle's curves; the figure
    draws the mean over seeds with its interval, the curves, H* and r*."""
    from saturation.figures import bottleneck
    from saturation.tables import BOTTLENECK_COLUMNS, bottleneck_table

    oracle = tmp_path / "oracle.csv"
    pd.DataFrame({
        "d": [2, 4, 8], "entropy": [2.0] * 3, "best_rank_loss": [2.5, 2.0, 2.0],
        "head_family_loss": [2.7, 2.1, 2.0], "svd_bound_loss": [3.0, 2.0, 2.0],
    }).to_csv(oracle, index=False)  # fmt: skip
    runs = [fake_run(tmp_path, 4, [5.0, 2.3], seed, prefix="r4-") for seed in (0, 1)]
    runs.append(fake_run(tmp_path, 8, [5.0, 2.6], prefix="r4-", suffix="-lowrank2"))
    runs.append(fake_run(tmp_path, 2, [5.0, 2.2], prefix="r4-", suffix="-mos3"))
    runs.append(fake_run(tmp_path, 4, [5.0, 2.1], prefix="r4-", suffix="-wd0"))
    metrics = pd.concat([run_metrics(run) for run in runs], ignore_index=True)
    metrics.loc[(metrics.run == "r4-w4-s1") & (metrics.step == 1) & (metrics.metric == "val_loss"),
                "value"] = 2.5  # fmt: skip
    text_run = run_metrics(fake_run(tmp_path, 32, [6.0, 5.0]))
    synthetic = {"language": "r4", "head": "linear"}
    table_runs = runs_table({
        "r4-w4-s0": {"source": "pretrain",
                     "attributes": {"width": 4, "seed": 0, "logit_rank": 4} | synthetic},
        "r4-w4-s1": {"source": "pretrain",
                     "attributes": {"width": 4, "seed": 1, "logit_rank": 4} | synthetic},
        "r4-w8-lowrank2-s0": {"source": "pretrain", "attributes": {
            "width": 8, "seed": 0, "logit_rank": 2, "language": "r4", "head": "low-rank r=2"}},
        "r4-w2-mos3-s0": {"source": "pretrain", "attributes": {
            "width": 2, "seed": 0, "logit_rank": 2, "language": "r4", "head": "MoS k=3"}},
        "r4-w4-wd0-s0": {"source": "pretrain",
                         "attributes": {"width": 4, "seed": 0, "logit_rank": 4, "tag": "wd0"}
                         | synthetic},
        "w32-s0": {"source": "pretrain", "attributes": {"width": 32, "seed": 0}},
    })  # fmt: skip
    table = bottleneck_table(
        pd.concat([metrics, text_run]), table_runs, {"r4": {"table": str(oracle), "rank": 4}}
    )
    assert list(table.columns) == BOTTLENECK_COLUMNS
    trained = table[table.kind == "trained"].set_index("run")
    assert trained.loc[["r4-w4-s0", "r4-w4-s1"], "loss"].tolist() == [2.3, 2.5]
    assert trained["d"].to_dict() == {
        "r4-w4-s0": 4, "r4-w4-s1": 4, "r4-w8-lowrank2-s0": 2, "r4-w2-mos3-s0": 2,
        "r4-w4-wd0-s0": 4,
    }  # fmt: skip  # a low-rank head at its rank, the others at their width
    assert trained["tag"].to_dict() == {
        "r4-w4-s0": "", "r4-w4-s1": "", "r4-w8-lowrank2-s0": "", "r4-w2-mos3-s0": "",
        "r4-w4-wd0-s0": "wd0",
    }  # fmt: skip
    assert trained.loc["r4-w8-lowrank2-s0", ["head", "width"]].tolist() == ["low-rank r=2", 8]
    assert (table.entropy == 2.0).all() and (table["rank"] == 4).all()
    assert list(table[table.kind == "head_family"].loss) == [2.7, 2.1, 2.0]
    assert bottleneck_table(text_run, table_runs, {}).empty
    csv = tmp_path / "bottleneck.csv"  # as the figure job reads it: "" comes back as NaN
    table.to_csv(csv, index=False)
    ax = bottleneck.plot(pd.read_csv(csv), tmp_path / "b.png", tmp_path / "b.pdf").axes[0]
    lines = {line.get_label(): list(line.get_ydata()) for line in ax.lines}
    assert lines["linear head, trained (final; mean of seeds)"] == pytest.approx([2.4])
    assert lines["linear head, wd0, trained (final; mean of seeds)"] == [2.1]  # not a third seed
    assert lines["MoS k=3 head, trained (final; mean of seeds)"] == [2.2]
    assert lines["low-rank r=2 head, trained (final; mean of seeds)"] == [2.6]
    assert lines["best GPT-NeoX head (LayerNorm + W)"] == [2.7, 2.1, 2.0]
    assert lines["H* = 2"] == [2.0, 2.0] and list(lines["r* = 4"]) == [0, 1]
    with pytest.raises(ValueError, match="no synthetic language"):
        bottleneck.plot(table.iloc[0:0], tmp_path / "b.png", tmp_path / "b.pdf")


def test_the_bottleneck_figure_draws_every_series_of_a_sweep(tmp_path: Path) -> None:
    """A sweep of more (head, tag) series than the head palette has colours: each its own line
    and colour (configs/rank-drivers.yaml has seven)."""
    from saturation.figures import bottleneck
    from saturation.tables import BOTTLENECK_COLUMNS

    common = {"language": "r8", "rank": 8, "entropy": 2.0, "head": "linear", "seed": 0.0}
    tags = ["", "wd0", "wd1", "bs8", "bs128", "bs8tok", "bs128tok", "lr1"]
    rows = [common | {"d": 8, "kind": "head_family", "head": "", "tag": "", "width": math.nan,
                      "run": "", "seed": math.nan, "loss": 2.0}]  # fmt: skip
    rows += [common | {"d": d, "kind": "trained", "tag": tag, "width": d, "run": f"{d}{tag}",
                       "loss": 2.0 + i / 100 + 1 / d} for i, tag in enumerate(tags) for d in (6, 16)]  # fmt: skip
    table = pd.DataFrame(rows, columns=BOTTLENECK_COLUMNS)
    ax = bottleneck.plot(table, tmp_path / "b.png", tmp_path / "b.pdf").axes[0]
    trained = [line for line in ax.lines if "trained" in line.get_label()]
    assert len(trained) == len(tags)
    assert len({line.get_color() if isinstance(line.get_color(), str) else tuple(line.get_color())
                for line in trained}) == len(tags)  # fmt: skip
    wd1 = next(line for line in trained if line.get_label().startswith("linear head, wd1,"))
    assert list(wd1.get_ydata()) == pytest.approx([2.02 + 1 / 6, 2.02 + 1 / 16])


def test_the_data_dimensionality_table_and_figure(
    tiny_data: dict[str, Path], tmp_path: Path
) -> None:
    """The ngram stage's table: both kinds' W-error curves, as saturation.measure.ngram computes
    them from the token file, decreasing in d; the figure draws them."""
    from saturation.figures import data_dimensionality
    from saturation.measure import ngram

    dims = [1, 2, 4, 8, 16, 32]
    table, info = ngram.dimensionality(tiny_data["train"], 3, 2, 0.01, dims)
    counts = ngram.context_matrix_from_file(tiny_data["train"], 3, 2)
    probabilities = ngram.probability_matrix(counts)
    expected = ngram.w_error_curve(probabilities, ngram.squared_frobenius(probabilities), dims)
    curve = table[table.kind == "probabilities"].set_index("d")["w_error"]
    assert curve.to_dict() == pytest.approx(expected, abs=1e-12)
    assert set(table.kind) == {"probabilities", "logits"} and list(curve.index) == dims
    assert all((np.diff(group.w_error) <= 1e-12).all() for _, group in table.groupby("kind"))
    assert info["contexts"] == counts.contexts_kept == table.contexts.iloc[0]
    assert info["contexts_dropped"] > 0 and info["min_count"] == 2
    assert set(info["seconds"]) == {"count", "probabilities", "logits"}
    ax = data_dimensionality.plot(table, tmp_path / "d.png", tmp_path / "d.pdf").axes[0]
    lines = {line.get_label(): list(line.get_ydata()) for line in ax.lines}
    assert lines["next-token probabilities (paper)"] == pytest.approx(list(curve))
