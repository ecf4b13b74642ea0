"""The tidy table: one row per run × checkpoint × metric, the only thing figures read."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from saturation.checkpoints import read_manifest
from saturation.io import atomic_path

TIDY_COLUMNS = ["run", "width", "seed", "step", "tokens", "metric", "value"]


@dataclass(frozen=True)
class RunMeasurements:
    """Where one run's measurements are: its manifest and one metrics.json per step."""

    run: str
    width: int
    seed: int
    manifest: str
    metrics: Mapping[int, str]


def tidy_rows(run: RunMeasurements) -> list[dict]:
    rows = []
    for entry in read_manifest(run.manifest):
        values = json.loads(Path(run.metrics[entry.step]).read_text())["metrics"]
        for metric, value in sorted(values.items()):
            rows.append(
                {
                    "run": run.run,
                    "width": run.width,
                    "seed": run.seed,
                    "step": entry.step,
                    "tokens": entry.tokens,
                    "metric": metric,
                    "value": float(value),
                }
            )
    return rows


def _sorted(table: pd.DataFrame) -> pd.DataFrame:
    return table.sort_values(["width", "seed", "step", "metric"], ignore_index=True)


def run_table(run: RunMeasurements) -> pd.DataFrame:
    return _sorted(pd.DataFrame(tidy_rows(run), columns=TIDY_COLUMNS))


def combine_run_tables(paths: Sequence[str | Path]) -> pd.DataFrame:
    """The workflow's table: every run's table stacked (each run is measured on its own)."""
    return _sorted(pd.concat([read_tidy_table(p) for p in paths], ignore_index=True))


def write_tidy_table(table: pd.DataFrame, csv_path: str | Path, parquet_path: str | Path) -> None:
    with atomic_path(csv_path) as tmp:
        table.to_csv(tmp, index=False)
    with atomic_path(parquet_path) as tmp:
        table.to_parquet(tmp, index=False)


def read_tidy_table(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
