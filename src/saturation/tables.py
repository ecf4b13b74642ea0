"""The tidy tables, the only thing figures and summaries read.

Rows are keyed by `run` (unique); `width` and `seed` ride along as attributes. `metrics`: one row
per run × checkpoint × metric (benchmarks as `task/metric`, with lm-eval's stderr; NaN for
measurements without one). `spectra`: one row per run × checkpoint × singular value of the LM
head (rank 1 = largest) and of the row-centred head, so spectrum figures need no model files.
`windows`: one row per run × checkpoint × split (val, and train where sampled) × held-out window,
its mean loss: the summary's bootstrap resamples them. `runs`: one row per run, its source (where
its checkpoints come from) and every attribute (family, width, layers, seed, …). `heads`: one row
per swept run × checkpoint × head trained on its frozen states (saturation.measure.head_sweep:
low-rank or full-rank, rank, init, learning rate, `chosen` where that learning rate won its
(rank, init)), and the checkpoint's own head; `head_curves`: every such head's training curve.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from saturation.checkpoints import read_manifest
from saturation.io import atomic_path
from saturation.measure.analysis import SIGMA_ARRAY, SIGMA_CENTRED_ARRAY, WINDOW_ARRAYS

RUN_COLUMNS = ["run", "width", "seed", "step", "tokens"]
TIDY_COLUMNS = [*RUN_COLUMNS, "metric", "value", "stderr"]
SPECTRUM_COLUMNS = [*RUN_COLUMNS, "rank", "sigma", "sigma_centred"]
WINDOW_COLUMNS = [*RUN_COLUMNS, "split", "window", "loss"]
RUNS_COLUMNS = ["run", "source", "family", "width", "layers", "seed"]  # then other attributes
# the arrays beside each checkpoint's analysis record (saturation.measure.analysis)
SPECTRUM_FILES = {"sigma": f"{SIGMA_ARRAY}.npy", "sigma_centred": f"{SIGMA_CENTRED_ARRAY}.npy"}
HEAD_KEYS = ["head", "rank", "init", "lr"]
# no wall time: a head's training seconds are in its record and the job's log, so tables rebuilt
# by a rerun stay byte-identical
HEADS_COLUMNS = [
    "run", "width", "seed", "step", *HEAD_KEYS, "chosen", "select_loss", "loss", "accuracy",
    "train_loss", "w_error", "tail_norm",
]  # fmt: skip
HEAD_CURVES_COLUMNS = ["run", "width", "seed", "step", *HEAD_KEYS, "update", "train_loss",
                       "select_loss"]  # fmt: skip
# the key columns of each table after run and step, which order its rows
ROW_KEYS = {
    "metrics": ["metric"],
    "spectra": ["rank"],
    "windows": ["split", "window"],
    "heads": HEAD_KEYS,
    "head_curves": [*HEAD_KEYS, "update"],
}
# the columns of a table no run has rows of (no run is swept)
EMPTY_COLUMNS = {"heads": HEADS_COLUMNS, "head_curves": HEAD_CURVES_COLUMNS}


@dataclass(frozen=True)
class RunMeasurements:
    """Where one run's measurements are: its manifest and each step's analysis record (a JSON
    file with `metrics`, the raw spectrum beside it)."""

    run: str
    width: int
    seed: int
    manifest: str
    metrics: Mapping[int, str]
    # the train split's tokens, where the run trained on it: then `epochs` = tokens seen / these
    epoch_tokens: int | None = None

    def checkpoints(self) -> list[tuple[dict, Path]]:
        """(the run/step columns, the step's record) for every harvested checkpoint."""
        run = {"run": self.run, "width": self.width, "seed": self.seed}
        return [
            (run | {"step": entry.step, "tokens": entry.tokens}, Path(self.metrics[entry.step]))
            for entry in read_manifest(self.manifest)
        ]


def _sorted(table: pd.DataFrame, kind: str) -> pd.DataFrame:
    return table.sort_values(["width", "seed", "run", "step", *ROW_KEYS[kind]], ignore_index=True)


def run_metrics(run: RunMeasurements) -> pd.DataFrame:
    """Every analysis metric of every checkpoint, with its standard error where the record has
    one (the losses', over windows), else NaN; and the epochs over the train split the run had
    seen there, where it trained on one."""
    rows = []
    for key, path in run.checkpoints():
        record = json.loads(path.read_text())
        errors = record.get("stderr", {})
        rows += [
            key | {"metric": metric, "value": float(value),
                   "stderr": float(errors.get(metric, math.nan))}
            for metric, value in record["metrics"].items()
        ]  # fmt: skip
        if run.epoch_tokens:
            epochs = key["tokens"] / run.epoch_tokens
            rows.append(key | {"metric": "epochs", "value": epochs, "stderr": math.nan})
    return _sorted(pd.DataFrame(rows, columns=TIDY_COLUMNS), "metrics")


def run_spectra(run: RunMeasurements) -> pd.DataFrame:
    frames = []
    for key, path in run.checkpoints():
        arrays = {column: np.load(path.with_name(name)) for column, name in SPECTRUM_FILES.items()}
        ranks = np.arange(1, len(arrays["sigma"]) + 1)
        frames.append(pd.DataFrame(key | {"rank": ranks} | arrays))
    return _sorted(pd.concat(frames, ignore_index=True)[SPECTRUM_COLUMNS], "spectra")


def run_windows(run: RunMeasurements) -> pd.DataFrame:
    """Each held-out window's mean loss at every checkpoint (and each train-sample window's,
    where the analysis scored one)."""
    frames = []
    for key, path in run.checkpoints():
        for split, name in WINDOW_ARRAYS.items():
            if (file := path.with_name(f"{name}.npy")).exists():
                loss = np.load(file)
                window = np.arange(len(loss))
                frames.append(pd.DataFrame(key | {"split": split, "window": window, "loss": loss}))
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return _sorted(table.reindex(columns=WINDOW_COLUMNS), "windows")


def evaluation_rows(results: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
    """Tidy rows `{"metric": "task/metric", "value", "stderr"}` (stderr NaN when absent)."""
    return [
        {
            "metric": f"{task}/{metric}",
            "value": value,
            "stderr": metrics.get(f"{metric}_stderr", math.nan),
        }
        for task, metrics in sorted(results.items())
        for metric, value in sorted(metrics.items())
        if not metric.endswith("_stderr")
    ]


def run_benchmarks(
    run: str, width: int, seed: int, manifest: str, results: Mapping[int, Mapping[str, str]]
) -> pd.DataFrame:
    """One run's benchmark results as tidy rows: `results` maps each evaluated step to each
    task's record (a JSON file with lm-eval's tidied `results`)."""
    tokens = {entry.step: entry.tokens for entry in read_manifest(manifest)}
    rows = []
    for step, records in results.items():
        key = {"run": run, "width": width, "seed": seed, "step": step, "tokens": tokens[step]}
        merged = {}
        for path in records.values():
            merged |= json.loads(Path(path).read_text())["results"]
        rows += [key | row for row in evaluation_rows(merged)]
    return _sorted(pd.DataFrame(rows, columns=TIDY_COLUMNS), "metrics")


BOTTLENECK_COLUMNS = [
    "language", "rank", "entropy", "d", "kind", "head", "tag", "width", "run", "seed", "loss",
]  # fmt: skip
# the oracle table's columns (saturation.synthetic.oracles.oracle_table), by the bottleneck table's kind
ORACLE_KINDS = {
    "best_rank": "best_rank_loss",
    "head_family": "head_family_loss",
    "svd_bound": "svd_bound_loss",
}


def bottleneck_table(
    metrics: pd.DataFrame, runs: pd.DataFrame, oracles: Mapping[str, Mapping[str, Any]]
) -> pd.DataFrame:
    """Per synthetic language and d: each run's final held-out loss (`trained`, with its head's
    label, its width and its `tag`, "" where untagged) beside the oracle's best losses at d
    (`best_rank`, `head_family`, `svd_bound`), with the language's rank r* and entropy rate H*.
    A run's d is the rank its head's logits can have (the runs table's `logit_rank`: the width,
    a low-rank head's rank); `oracles`: `{language: {"table": oracle.csv, "rank": r*}}`. Empty
    (with its columns) where no language is configured."""
    rows = []
    for language, oracle in sorted(oracles.items()):
        table = pd.read_csv(oracle["table"])
        entropy, rank = float(table["entropy"].iloc[0]), oracle["rank"]
        common = {"language": language, "rank": rank, "entropy": entropy}
        for kind, column in ORACLE_KINDS.items():
            curve = {"kind": kind, "head": "", "tag": "", "width": math.nan, "run": "",
                     "seed": math.nan}  # fmt: skip
            rows += [
                common | curve | {"d": int(d), "loss": float(loss)}
                for d, loss in zip(table["d"], table[column], strict=True)
            ]
        named = runs[runs.get("language", pd.Series(dtype=object)) == language].set_index("run")
        loss = metrics[(metrics["metric"] == "val_loss") & metrics["run"].isin(named.index)]
        for run, series in loss.groupby("run"):
            final, of = series.loc[series["step"].idxmax()], named.loc[run]
            head, bound = of.get("head", "linear"), of.get("logit_rank", math.nan)
            tag = of.get("tag", "")
            rows.append(common | {
                "d": int(bound if pd.notna(bound) else final["width"]), "kind": "trained",
                "head": head if isinstance(head, str) else "linear",
                "tag": tag if isinstance(tag, str) else "", "width": int(final["width"]),
                "run": run, "seed": float(final["seed"]), "loss": float(final["value"]),
            })  # fmt: skip
    table = pd.DataFrame(rows, columns=BOTTLENECK_COLUMNS)
    return table.sort_values(["language", "kind", "head", "tag", "d", "run"], ignore_index=True)


def runs_table(runs: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """One row per run from the tables stage's recipe: `{run: {"source", "attributes"}}`."""
    rows = [{"run": name, "source": run["source"]} | dict(run["attributes"])
            for name, run in runs.items()]  # fmt: skip
    extra = sorted({key for row in rows for key in row} - set(RUNS_COLUMNS))
    table = pd.DataFrame(rows, columns=[*RUNS_COLUMNS, *extra])
    return table.sort_values(["width", "seed", "run"], ignore_index=True)


def combine_run_tables(paths: Sequence[str | Path], kind: str) -> pd.DataFrame:
    """A workflow table of `kind` (metrics, spectra, windows, heads, head_curves): every run's
    table stacked (each run is measured on its own)."""
    if not paths:
        return pd.DataFrame(columns=EMPTY_COLUMNS[kind])
    return _sorted(pd.concat([read_tidy_table(p) for p in paths], ignore_index=True), kind)


def write_csv(table: pd.DataFrame, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        table.to_csv(tmp, index=False)


def write_tidy_table(table: pd.DataFrame, csv_path: str | Path, parquet_path: str | Path) -> None:
    write_csv(table, csv_path)
    with atomic_path(parquet_path) as tmp:
        table.to_parquet(tmp, index=False)


def read_tidy_table(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
