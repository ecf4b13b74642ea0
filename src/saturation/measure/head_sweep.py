"""A run's head sweeps in one job: states cached per checkpoint, then every head of the grid.

The heads stage (one job per run) walks the checkpoints its selection names. For each, the
frozen model runs once over the two token samples (saturation.measure.states, a "states" record
of the measurement store, reused by any later sweep of the same checkpoint and samples); then
every head of the grid (saturation.measure.rank_heads) is trained on those states alone, each
a "heads" record of its own. The job's tables are tidy rows of every head, the checkpoint's own
head among them, and every head's training curve.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from saturation.measure import spectra
from saturation.measure.rank_heads import (
    CURVE_ARRAY,
    OWN,
    HeadConfig,
    HeadTraining,
    SweepData,
    head_record,
    sweep_configs,
    train_head,
)
from saturation.measure.states import OWN_SIGMA, HiddenStates
from saturation.tables import HEAD_CURVES_COLUMNS, HEADS_COLUMNS

logger = logging.getLogger(__name__)


def states_recipe(stage_recipe: Mapping[str, Any]) -> dict[str, Any]:
    """What a checkpoint's cached states depend on, from its heads stage's recipe: the key of
    its "states" record, shared by every sweep of the same samples."""
    return {"tokens": stage_recipe["tokens"], "seq_len": stage_recipe["seq_len"]} | dict(
        stage_recipe["states"]
    )


def sweep_run(
    manifest: str | Path,
    steps: list[int],
    stage_recipe: Mapping[str, Any],
    val_bin: str | Path,
    train_bin: str | Path,
    results: str | Path,
    events: str | Path,
    device: str = "cpu",
    remeasure: Collection[str] = (),
) -> dict[int, tuple[Path, dict[HeadConfig, Path]]]:
    """Every selected checkpoint's states and heads, measured where not stored (or where their
    kind, "states" or "heads", is to be `remeasure`d):
    `{step: (its states record folder, {head: its record folder})}`."""
    import torch

    from saturation.measure.analysis import HeldoutSample
    from saturation.measure.series import manifest_entries, measure_series
    from saturation.measure.states import extract_states
    from saturation.measure.store import MeasurementStore
    from saturation.model.losses import loss_chunk_for

    recipe = states_recipe(stage_recipe)
    samples: dict[str, HeldoutSample] = {}

    def measure(folder: Path, missing: list[str]) -> dict[str, Any]:
        if not samples:
            seq_len = recipe["seq_len"]
            samples["fit"] = HeldoutSample.load(train_bin, seq_len, recipe["fit_tokens"])
            samples["heldout"] = HeldoutSample.load(val_bin, seq_len, recipe["heldout_tokens"])
        return {"states": extract_states(folder, samples, recipe["batch_size"], device)}

    states_store = MeasurementStore(Path(results), "states", "states" not in remeasure)
    found = measure_series(
        manifest, manifest_entries(manifest, steps), states_store, {"states": recipe},
        measure, events, label="states",
    )  # fmt: skip
    heads_store = MeasurementStore(Path(results), "heads", "heads" not in remeasure)
    heads_store.remove_leftovers()
    training = HeadTraining.of(stage_recipe["train"])
    swept: dict[int, tuple[Path, dict[HeadConfig, Path]]] = {}
    torch_device = torch.device(device)
    chunk = loss_chunk_for(torch_device)
    for step, records in found.items():
        folder = records["states"]
        states = HiddenStates.open(folder)
        stored = states.record
        # the ranks as the plan resolved them for the run's width (ranks_for)
        configs = sweep_configs(stage_recipe["ranks"], stage_recipe["inits"], stage_recipe["lrs"])
        data = None
        heads: dict[HeadConfig, Path] = {}
        with open(events, "a") as log:
            for config in tqdm(configs, desc=f"heads step {step}", unit="head", mininterval=1.0):
                head_recipe = {"states": stored["key"], "train": stage_recipe["train"]}
                key = heads_store.key(stored["checkpoint"], head_recipe | config.recipe())
                if (found_head := heads_store.find(key)) is not None:
                    heads[config] = found_head
                    continue
                if data is None:  # the states, read only when a head is to be trained
                    data = SweepData.load(states, torch_device)
                started = time.perf_counter()
                fields, arrays = head_record(train_head(data, config, training, chunk))
                record = {"key": key, "checkpoint": stored["checkpoint"],
                          "recipe": head_recipe | config.recipe()} | fields  # fmt: skip
                heads[config] = heads_store.write(key, record, arrays)
                event = {"step": step, "key": key, **config.recipe(), **fields["metrics"],
                         "seconds": round(time.perf_counter() - started, 3)}  # fmt: skip
                log.write(json.dumps(event, sort_keys=True) + "\n")
                log.flush()
        swept[step] = (folder, heads)
    return swept


def _chosen(rows: pd.DataFrame) -> pd.Series:
    """Per (step, head, rank, init): the learning rate of lowest select-half loss (a diverged
    head, NaN, is never chosen)."""
    keys = ["step", "head", "rank", "init"]
    ranked = rows.sort_values(["select_loss", "lr"], na_position="last")
    first = ranked.drop_duplicates(keys).index
    return rows.index.isin(first) & rows["select_loss"].notna()


def sweep_tables(
    swept: Mapping[int, tuple[Path, Mapping[HeadConfig, Path]]], run: Mapping[str, Any]
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The run's heads table (HEADS_COLUMNS: every trained head, `chosen` marking the learning
    rate kept, and the checkpoint's own head) and its curves table (HEAD_CURVES_COLUMNS)."""
    from saturation.measure.store import RECORD

    rows, curves = [], []
    for step, (folder, heads) in sorted(swept.items()):
        states = HiddenStates.open(folder)
        stored, sigma, width = states.record, states.array(OWN_SIGMA), states.width
        base = {"run": run["run"], "width": run["width"], "seed": run["seed"], "step": step}
        rows.append(base | {"head": OWN, "rank": width} | stored["own"])
        for config, head_folder in heads.items():
            record = json.loads((head_folder / RECORD).read_text())
            rank = width if config.rank is None else config.rank
            metrics = {k: (np.nan if v is None else v) for k, v in record["metrics"].items()}
            rows.append(
                base
                | {"head": config.head, "rank": rank, "init": config.init, "lr": config.lr}
                | metrics
                | {
                    "w_error": spectra.w_error(sigma, rank),
                    "tail_norm": float(np.linalg.norm(sigma[rank:])),
                }
            )
            curve = np.load(head_folder / f"{CURVE_ARRAY}.npy")
            curves.append(
                pd.DataFrame(curve, columns=["update", "train_loss", "select_loss"]).assign(
                    **base, head=config.head, rank=rank, init=config.init, lr=config.lr
                )
            )
    table = pd.DataFrame(rows, columns=HEADS_COLUMNS)
    trained = table["head"] != OWN
    table["chosen"] = ~trained  # the own head, and each (rank, init)'s winning learning rate
    table.loc[trained, "chosen"] = _chosen(table[trained])
    curve_table = (
        pd.concat(curves, ignore_index=True)[HEAD_CURVES_COLUMNS]
        if curves
        else pd.DataFrame(columns=HEAD_CURVES_COLUMNS)
    )
    curve_table["update"] = curve_table["update"].astype(int)
    return table, curve_table
