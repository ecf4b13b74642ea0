"""A run's checkpoints measured in one process, each (checkpoint, recipe) pair once.

The job of a run's analysis or evaluation walks the checkpoints its manifest lists. For each it
derives the records' keys from the checkpoint's fingerprint (no weights read), reuses the stored
ones (saturation.measure.store) and measures only what is missing, verifying the checkpoint's
weights against the manifest first. Every checkpoint's outcome is one JSON line in the job's
event log (step, keys, reused or measured, seconds), beside a tqdm bar on stderr.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from saturation.checkpoints import CheckpointEntry, read_manifest, verify_entry
from saturation.measure.store import MeasurementStore, checkpoint_fingerprint

logger = logging.getLogger(__name__)

# one measurement of a checkpoint: the record's fields, and its arrays (saved as `<name>.npy`)
Measured = tuple[dict[str, Any], dict[str, np.ndarray]]
# what a job runs on a checkpoint folder that misses records: {recipe name: its measurement}
Measure = Callable[[Path, list[str]], Mapping[str, Measured]]


def manifest_entries(
    manifest: str | Path, steps: Collection[int] | None = None
) -> list[CheckpointEntry]:
    """The manifest's checkpoints at `steps` (all when None), in step order; a step it does not
    list is an error naming both."""
    entries = {entry.step: entry for entry in read_manifest(manifest)}
    wanted = sorted(entries if steps is None else steps)
    if missing := [step for step in wanted if step not in entries]:
        raise ValueError(f"{manifest}: no checkpoint at steps {missing}")
    return [entries[step] for step in wanted]


def measure_series(
    manifest: str | Path,
    entries: list[CheckpointEntry],
    store: MeasurementStore,
    recipes: Mapping[str, Mapping[str, Any]],
    measure: Measure,
    events: str | Path,
    label: str,
) -> dict[int, dict[str, Path]]:
    """`{step: {recipe name: its record's folder}}` for every entry and recipe, measuring the
    missing ones with `measure(folder, names)`, checkpoint by checkpoint."""
    store.remove_leftovers()
    found: dict[int, dict[str, Path]] = {}
    measured = 0
    with open(events, "a") as log, tqdm(entries, desc=label, unit="ckpt", mininterval=1.0) as bar:
        for entry in bar:
            started = time.perf_counter()
            fingerprint = checkpoint_fingerprint(entry.path, entry.sha256)
            keys = {name: store.key(fingerprint, recipe) for name, recipe in recipes.items()}
            stored = {name: store.find(key) for name, key in keys.items()}
            missing = [name for name, folder in stored.items() if folder is None]
            if missing:
                folder = verify_entry(entry, manifest)
                results = measure(folder, missing)
                if absent := sorted(set(missing) - set(results)):
                    raise RuntimeError(f"{folder}: no measurement of {absent}")
                measured += 1
                for name in missing:
                    fields, arrays = results[name]
                    record = {"key": keys[name], "checkpoint": fingerprint,
                              "recipe": dict(recipes[name])} | fields  # fmt: skip
                    stored[name] = store.write(keys[name], record, arrays)
            found[entry.step] = stored  # every name has its record now
            event = {
                "step": entry.step,
                "measured": sorted(missing),
                "reused": sorted(set(keys) - set(missing)),
                "keys": keys,
                "seconds": round(time.perf_counter() - started, 3),
            }
            log.write(json.dumps(event, sort_keys=True) + "\n")
            log.flush()
    logger.info("%s: %d checkpoints, %d measured", label, len(entries), measured)
    return found
