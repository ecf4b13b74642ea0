"""A run's checkpoints measured in one process: the same numbers as one checkpoint at a time, and
each (checkpoint, recipe) pair measured once, whatever job, run or stage asks for it."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from saturation.checkpoints import CorruptCheckpointError, verify_checkpoint, write_manifest
from saturation.measure.analysis import (
    SIGMA_ARRAY,
    analysis_recipe,
    analyze_checkpoint,
    analyze_run,
)
from saturation.measure.store import (
    _WRITER,
    MEASUREMENTS,
    MeasurementStore,
    checkpoint_fingerprint,
)

RECIPE = {"harvest": "h0", "tokens": "t0", "seq_len": 16, "val_tokens": 256, "batch_size": 8}


def copy_checkpoints(run_dir: Path, root: Path, steps: list[int]) -> dict[int, Path]:
    """The run's checkpoints at `steps`, copied where a test may modify them."""
    return {s: Path(shutil.copytree(run_dir / "checkpoints" / f"step{s}", root / f"step{s}"))
            for s in steps}  # fmt: skip


def manifest(results: Path, folders: dict[int, Path], name: str = "h0") -> Path:
    path = results / "harvest" / name / "manifest.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_manifest(path, [verify_checkpoint(folder) for _, folder in sorted(folders.items())])
    return path


def events(path: Path) -> dict[int, dict]:
    return {e["step"]: e for e in map(json.loads, path.read_text().splitlines())}


def analyze(results: Path, manifest_path: Path, tiny_data: dict, log: Path, **kw) -> dict:
    return analyze_run(manifest_path, tiny_data["val"], RECIPE, results, log, **kw)


def test_a_run_measured_in_one_process_equals_each_checkpoint_alone(
    tiny_run: Path, tiny_data: dict, tmp_path: Path
) -> None:
    folders = {s: tiny_run / "checkpoints" / f"step{s}" for s in (0, 4, 12)}
    results = tmp_path / "results"
    records = analyze(results, manifest(results, folders), tiny_data, tmp_path / "a.jsonl")
    assert sorted(records) == [0, 4, 12]
    for step, folder in folders.items():
        alone = analyze_checkpoint(
            folder, tiny_data["val"], RECIPE["seq_len"], RECIPE["val_tokens"],
            RECIPE["batch_size"], tmp_path / f"{step}.json", tmp_path / f"{step}.npy",
        )  # fmt: skip
        stored = json.loads(records[step].read_text())
        assert stored["metrics"] == alone["metrics"] and stored["info"] == alone["info"]
        assert stored["recipe"] == analysis_recipe(RECIPE)  # the harvest id is not in the key
        sigma = np.load(records[step].with_name(f"{SIGMA_ARRAY}.npy"))
        assert np.array_equal(sigma, np.load(tmp_path / f"{step}.npy"))


def test_an_added_checkpoint_is_the_only_one_measured(
    tiny_run: Path, tiny_data: dict, tmp_path: Path
) -> None:
    """A suite's new revision gives a new harvest (and analyze) id: the records stay valid."""
    results, log = tmp_path / "results", tmp_path / "events.jsonl"
    folders = {s: tiny_run / "checkpoints" / f"step{s}" for s in (0, 4, 8)}
    first = analyze(results, manifest(results, {s: folders[s] for s in (0, 4)}), tiny_data, log)
    made = {step: path.stat().st_mtime_ns for step, path in first.items()}
    second = analyze(results, manifest(results, folders, "h1"), tiny_data, log)
    lines = log.read_text().splitlines()[2:]
    assert {e["step"]: e["measured"] for e in map(json.loads, lines)} == {
        0: [],
        4: [],
        8: ["analysis"],
    }
    assert {s: second[s].stat().st_mtime_ns for s in (0, 4)} == made  # never rewritten
    assert len(list((results / MEASUREMENTS / "analysis").iterdir())) == 3


def test_a_failure_keeps_what_was_measured_before_it(
    tiny_run: Path, tiny_data: dict, tmp_path: Path
) -> None:
    """A job stopped at one checkpoint (here a corrupt one) loses that checkpoint only."""
    results, log = tmp_path / "results", tmp_path / "events.jsonl"
    folders = copy_checkpoints(tiny_run, tmp_path / "ckpt", [0, 4, 8])
    path = manifest(results, folders)
    weights = folders[8] / "model.safetensors"
    good = weights.read_bytes()
    weights.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    with pytest.raises(CorruptCheckpointError, match=r"step8/model\.safetensors: sha256"):
        analyze(results, path, tiny_data, log)
    assert sorted(events(log)) == [0, 4]
    weights.write_bytes(good)  # restored: the rerun measures step 8 alone
    analyze(results, path, tiny_data, log)
    assert events(log)[8]["measured"] == ["analysis"]
    assert [e["measured"] for e in map(json.loads, log.read_text().splitlines()[2:4])] == [[], []]


def test_a_stored_record_is_reused_without_reading_the_weights(
    tiny_run: Path, tiny_data: dict, tmp_path: Path
) -> None:
    """Verification is for what is about to be measured: a corrupted file whose measurement
    was stored while it was intact keeps that measurement."""
    results, log = tmp_path / "results", tmp_path / "events.jsonl"
    folders = copy_checkpoints(tiny_run, tmp_path / "ckpt", [4])
    path = manifest(results, folders)
    before = analyze(results, path, tiny_data, log)[4].read_text()
    weights = folders[4] / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 1
    weights.write_bytes(bytes(data))
    assert analyze(results, path, tiny_data, log)[4].read_text() == before


def test_reuse_off_measures_anew_and_replaces(
    tiny_run: Path, tiny_data: dict, tmp_path: Path
) -> None:
    results, log = tmp_path / "results", tmp_path / "events.jsonl"
    path = manifest(results, {4: tiny_run / "checkpoints" / "step4"})
    first = analyze(results, path, tiny_data, log)[4]
    again = analyze(results, path, tiny_data, log, reuse=False)[4]
    assert again == first and events(log)[4]["measured"] == ["analysis"]
    assert json.loads(again.read_text())["metrics"]["val_loss"] > 0
    assert sorted(p.name for p in again.parent.parent.iterdir()) == [first.parent.name]


def test_the_fingerprint_is_the_content_not_the_step(tiny_run: Path, tmp_path: Path) -> None:
    """Two folders with the same files measure the same (whatever step their record names);
    any other file (the config, the tokenizer) changes the fingerprint."""
    (a,) = copy_checkpoints(tiny_run, tmp_path / "a", [4]).values()
    b = Path(shutil.copytree(a, tmp_path / "b" / "step5"))
    record = json.loads((b / "checkpoint.json").read_text())
    (b / "checkpoint.json").write_text(json.dumps(record | {"step": 5, "tokens": 1}))
    sha = verify_checkpoint(a).sha256
    assert checkpoint_fingerprint(a, sha) == checkpoint_fingerprint(b, sha)
    config = json.loads((b / "config.json").read_text())
    (b / "config.json").write_text(json.dumps(config | {"rotary_pct": 0.5}))
    assert checkpoint_fingerprint(a, sha) != checkpoint_fingerprint(b, sha)
    assert checkpoint_fingerprint(a, sha) != checkpoint_fingerprint(a, "0" * 64)


def test_a_killed_writers_leftover_is_removed_and_a_live_ones_kept(tmp_path: Path) -> None:
    store = MeasurementStore(tmp_path, "analysis")
    host = _WRITER.rsplit("-", 1)[0]
    gone = store.root / f".k1.{host}-{2**22 + 12345}.tmp"  # above Linux's default pid_max
    alive = store.root / f".k2.{host}-{os.getpid()}.tmp"
    for folder in (gone, alive):
        folder.mkdir(parents=True)
    assert store.remove_leftovers() == [gone]
    assert alive.exists() and not gone.exists()
    record = store.write("k3", {"x": 1}, {"a": np.arange(3)})
    assert json.loads((record / "record.json").read_text()) == {"x": 1}
    assert (
        store.find("k3") == record
        and MeasurementStore(tmp_path, "analysis", False).find("k3") is None
    )


def test_the_train_sample_is_scored_like_the_held_out_one(
    tiny_run: Path, tiny_data: dict, tmp_path: Path
) -> None:
    """`train_tokens` windows of the train split, the same loss meter: its loss equals the
    held-out loss of an analysis whose held-out split is that train split."""
    results = tmp_path / "results"
    path = manifest(results, {12: tiny_run / "checkpoints" / "step12"})
    recipe = RECIPE | {"train_tokens": 128}
    (record,) = analyze_run(path, tiny_data["val"], recipe, results, tmp_path / "e.jsonl",
                            train_bin=tiny_data["train"]).values()  # fmt: skip
    stored = json.loads(record.read_text())
    on_train = analyze_checkpoint(
        tiny_run / "checkpoints" / "step12", tiny_data["train"], 16, 128, 8,
        tmp_path / "t.json", tmp_path / "t.npy",
    )  # fmt: skip
    assert stored["metrics"]["train_loss"] == on_train["metrics"]["val_loss"]
    assert stored["stderr"]["train_loss"] == on_train["stderr"]["val_loss"] > 0
    assert stored["metrics"]["val_loss"] != stored["metrics"]["train_loss"]
    with pytest.raises(ValueError, match="asks for 128 train tokens"):
        analyze_run(path, tiny_data["val"], recipe, tmp_path / "r2", tmp_path / "e2.jsonl")
