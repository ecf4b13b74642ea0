"""Checkpoint integrity: a truncated weight file is caught by its sha256, and the error names it."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from saturation.checkpoints import (
    CorruptCheckpointError,
    harvest,
    list_checkpoint_dirs,
    move_aside,
    read_manifest,
    verified_checkpoint,
    verify_checkpoint,
    write_manifest,
)


@pytest.fixture
def run_copy(tiny_run: Path, tmp_path: Path) -> Path:
    shutil.copytree(tiny_run / "checkpoints", tmp_path / "checkpoints")
    return tmp_path / "checkpoints"


def test_manifest_round_trip(run_copy: Path, tmp_path: Path) -> None:
    entries = harvest(run_copy, [0, 1, 2, 4, 8, 12])
    assert [e.tokens for e in entries] == [0, 64, 128, 256, 512, 768]
    write_manifest(tmp_path / "manifest.csv", entries)
    assert read_manifest(tmp_path / "manifest.csv") == entries


def test_truncated_safetensors_is_named(run_copy: Path) -> None:
    weights = run_copy / "step4" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(CorruptCheckpointError, match=re.escape(str(weights))):
        verify_checkpoint(run_copy / "step4")
    with pytest.raises(CorruptCheckpointError, match=re.escape("step4/model.safetensors")):
        harvest(run_copy, [0, 1, 2, 4, 8, 12])


def test_missing_checkpoint_is_an_error(run_copy: Path) -> None:
    shutil.rmtree(run_copy / "step8")
    with pytest.raises(CorruptCheckpointError, match=r"steps \[8\] are missing"):
        harvest(run_copy, [0, 1, 2, 4, 8, 12])


def test_unfinished_temporaries_are_ignored(run_copy: Path) -> None:
    (run_copy / ".step16.abc.tmp").mkdir()
    assert [e.step for e in harvest(run_copy, [0, 12])] == [0, 12]


def test_unreadable_record_is_a_corrupt_checkpoint(run_copy: Path) -> None:
    record = run_copy / "step4" / "checkpoint.json"
    record.write_text(record.read_text()[:20])
    with pytest.raises(CorruptCheckpointError, match=re.escape(f"{record}: unreadable")):
        verify_checkpoint(run_copy / "step4")


def test_move_aside_renames_and_never_overwrites(run_copy: Path) -> None:
    """A corrupt folder leaves the `step{N}` names (resume, harvest) but is never deleted."""
    first = move_aside(run_copy / "step4", "corrupt")
    shutil.copytree(run_copy / "step8", run_copy / "step4")
    second = move_aside(run_copy / "step4", "corrupt")
    assert (first.name, second.name) == ("step4.corrupt", "step4.corrupt1")
    assert (first / "checkpoint.json").is_file() and (second / "checkpoint.json").is_file()
    assert [step for step, _ in list_checkpoint_dirs(run_copy)] == [0, 1, 2, 8, 12]


def test_a_job_reads_only_the_weights_harvest_listed(run_copy: Path, tmp_path: Path) -> None:
    """A byte flipped after harvest (same size, so no size check sees it) fails the job that
    would measure it, naming the file, before anything is computed."""
    manifest = tmp_path / "manifest.csv"
    write_manifest(manifest, harvest(run_copy, [0, 4]))
    assert verified_checkpoint(manifest, 4) == run_copy / "step4"
    weights = run_copy / "step4" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01
    weights.write_bytes(bytes(data))
    with pytest.raises(CorruptCheckpointError, match=re.escape(f"{weights}: sha256")) as caught:
        verified_checkpoint(manifest, 4)
    assert "modified after harvest" in str(caught.value) and "\n" not in str(caught.value)
    assert verified_checkpoint(manifest, 0) == run_copy / "step0"
    with pytest.raises(CorruptCheckpointError, match="no checkpoint at step 8"):
        verified_checkpoint(manifest, 8)
