"""The tidy table from real per-checkpoint records, and every figure drawn from it alone."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from saturation.checkpoints import CheckpointEntry, write_manifest
from saturation.figures import loss_curve, singular_entropy
from saturation.tables import (
    TIDY_COLUMNS,
    RunMeasurements,
    combine_run_tables,
    read_tidy_table,
    run_table,
    write_tidy_table,
)


def fake_run(root: Path, width: int, losses: list[float]) -> RunMeasurements:
    steps = [0, 1, 2, 4, 8][: len(losses)]
    entries = [CheckpointEntry(s, s * 100, f"ckpt/step{s}", "0" * 64) for s in steps]
    write_manifest(root / f"manifest{width}.csv", entries)
    metrics = {}
    for step, loss in zip(steps, losses, strict=True):
        path = root / f"w{width}-step{step}.json"
        record = {"metrics": {"val_loss": loss, "singular_entropy": 0.1 + loss / 100}, "info": {}}
        path.write_text(json.dumps(record))
        metrics[step] = str(path)
    return RunMeasurements(f"w{width}-s0", width, 0, str(root / f"manifest{width}.csv"), metrics)


@pytest.fixture
def table(tmp_path: Path) -> pd.DataFrame:
    runs = [fake_run(tmp_path, 64, [6.0, 4.0]), fake_run(tmp_path, 32, [6.0, 5.0, 4.5, 4.6, 4.7])]
    paths = []
    for run in runs:
        paths.append(tmp_path / f"{run.run}.csv")
        run_table(run).to_csv(paths[-1], index=False)
    return combine_run_tables(paths)


def test_tidy_shape(table: pd.DataFrame, tmp_path: Path) -> None:
    assert list(table.columns) == TIDY_COLUMNS
    assert len(table) == (5 + 2) * 2
    assert table.width.is_monotonic_increasing
    row = table[(table.run == "w32-s0") & (table.step == 4) & (table.metric == "val_loss")]
    assert row.value.item() == 4.6 and row.tokens.item() == 400
    write_tidy_table(table, tmp_path / "t.csv", tmp_path / "t.parquet")
    pd.testing.assert_frame_equal(read_tidy_table(tmp_path / "t.parquet"), table)
    assert read_tidy_table(tmp_path / "t.csv").shape == table.shape


@pytest.mark.parametrize("figure", [loss_curve, singular_entropy])
def test_figures_render_png_and_pdf(figure, table: pd.DataFrame, tmp_path: Path) -> None:
    figure.plot(table, tmp_path / "f.png", tmp_path / "f.pdf")
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "f.pdf").read_bytes()[:4] == b"%PDF"


def test_figure_refuses_a_table_without_its_metric(table: pd.DataFrame, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="val_loss"):
        loss_curve.plot(table[table.metric != "val_loss"], tmp_path / "f.png", tmp_path / "f.pdf")
