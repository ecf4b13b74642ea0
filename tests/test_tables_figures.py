"""The tidy table from real per-checkpoint records, and every figure drawn from it alone."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from saturation.checkpoints import CheckpointEntry, write_manifest
from saturation.figures import FIGURES, anisotropy_depth, loss_curve, spectrum_heatmap
from saturation.tables import (
    SPECTRUM_COLUMNS,
    TIDY_COLUMNS,
    RunMeasurements,
    combine_run_tables,
    read_tidy_table,
    run_metrics,
    run_spectra,
    write_tidy_table,
)


def fake_run(root: Path, width: int, losses: list[float]) -> RunMeasurements:
    steps = [0, 1, 2, 4, 8][: len(losses)]
    entries = [CheckpointEntry(s, s * 100, f"ckpt/step{s}", "0" * 64) for s in steps]
    write_manifest(root / f"manifest{width}.csv", entries)
    metrics = {}
    for step, loss in zip(steps, losses, strict=True):
        path = root / f"w{width}-step{step}" / "metrics.json"
        path.parent.mkdir()
        record = {
            "metrics": {"val_loss": loss, "singular_entropy": 0.1 + loss / 100}
            | {f"anisotropy_d{d:02d}": 0.1 * d + step / 100 for d in range(4)},
            "info": {},
        }
        path.write_text(json.dumps(record))
        np.save(path.with_name("singular_values.npy"), np.linspace(width, 1, width) / (step + 1))
        metrics[step] = str(path)
    return RunMeasurements(f"w{width}-s0", width, 0, str(root / f"manifest{width}.csv"), metrics)


@pytest.fixture
def runs(tmp_path: Path) -> list[RunMeasurements]:
    return [fake_run(tmp_path, 64, [6.0, 4.0]), fake_run(tmp_path, 32, [6.0, 5.0, 4.5, 4.6, 4.7])]


def combined(runs: list[RunMeasurements], tables, root: Path) -> pd.DataFrame:
    paths = []
    for run in runs:
        paths.append(root / f"{run.run}-{tables.__name__}.csv")
        tables(run).to_csv(paths[-1], index=False)
    return combine_run_tables(paths)


@pytest.fixture
def table(runs: list[RunMeasurements], tmp_path: Path) -> pd.DataFrame:
    return combined(runs, run_metrics, tmp_path)


@pytest.fixture
def spectra(runs: list[RunMeasurements], tmp_path: Path) -> pd.DataFrame:
    return combined(runs, run_spectra, tmp_path)


def test_tidy_shape(table: pd.DataFrame, tmp_path: Path) -> None:
    assert list(table.columns) == TIDY_COLUMNS
    assert len(table) == (5 + 2) * 6
    assert table.width.is_monotonic_increasing
    row = table[(table.run == "w32-s0") & (table.step == 4) & (table.metric == "val_loss")]
    assert row.value.item() == 4.6 and row.tokens.item() == 400
    write_tidy_table(table, tmp_path / "t.csv", tmp_path / "t.parquet")
    pd.testing.assert_frame_equal(read_tidy_table(tmp_path / "t.parquet"), table)
    assert read_tidy_table(tmp_path / "t.csv").shape == table.shape


def test_spectra_table(spectra: pd.DataFrame) -> None:
    assert list(spectra.columns) == SPECTRUM_COLUMNS
    assert len(spectra) == 2 * 64 + 5 * 32
    first = spectra[(spectra.run == "w32-s0") & (spectra.step == 4)]
    assert list(first["rank"]) == list(range(1, 33))
    assert first.sigma.iloc[0] == pytest.approx(32 / 5)
    ratios = spectrum_heatmap.ratios(spectra, top_k=10)
    assert ratios["rank"].max() == 10 and ratios.ratio.max() == pytest.approx(1.0)


def test_anisotropy_depth_uses_each_final_checkpoint(table: pd.DataFrame) -> None:
    frame = anisotropy_depth.by_depth(table)
    assert dict(frame.groupby("run")["step"].unique().map(list)) == {"w32-s0": [8], "w64-s0": [1]}
    assert sorted(frame.normalised_depth.unique()) == pytest.approx([0, 1 / 3, 2 / 3, 1])


@pytest.mark.parametrize("name", sorted(FIGURES))
def test_figures_render_png_and_pdf(
    name: str, table: pd.DataFrame, spectra: pd.DataFrame, tmp_path: Path
) -> None:
    figure = importlib.import_module(f"saturation.figures.{name}")
    figure.plot(
        spectra if FIGURES[name] == "spectra" else table, tmp_path / "f.png", tmp_path / "f.pdf"
    )
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "f.pdf").read_bytes()[:4] == b"%PDF"


def test_figure_refuses_a_table_without_its_metric(table: pd.DataFrame, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="val_loss"):
        loss_curve.plot(table[table.metric != "val_loss"], tmp_path / "f.png", tmp_path / "f.pdf")
