"""Checkpoint folders on disk: naming, integrity records, the resume point and the manifest.

A checkpoint is a `save_pretrained` folder `step{N}/` (safetensors, config, tokenizer) plus
`checkpoint.json`, which records the step, the tokens seen and the sha256 of every weight file.
The folder appears by an atomic rename, so a folder that exists is complete; a later
corruption (a truncated file) is caught by the sha256 check.
"""

from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from saturation.io import sha256_file, write_text_atomic

CHECKPOINT_RECORD = "checkpoint.json"
# Buffers older transformers saved beside the weights (the causal mask, rotary frequencies): not
# parameters; recomputed by the model, and skipped when loading, as from_pretrained skips them.
BUFFER_KEYS = re.compile(r"\.attention\.(bias|masked_bias|rotary_emb\.inv_freq)$")
MANIFEST_FIELDS = ("step", "tokens", "path", "sha256")
_STEP_DIR = re.compile(r"^step(\d+)$")


class CorruptCheckpointError(RuntimeError):
    """A checkpoint's weights no longer match the sha256 recorded when it was written."""


@dataclass(frozen=True)
class CheckpointEntry:
    step: int
    tokens: int
    path: str
    sha256: str


def step_dir_name(step: int) -> str:
    return f"step{step}"


def list_checkpoint_dirs(checkpoints_dir: Path) -> list[tuple[int, Path]]:
    """Complete checkpoint folders (temporaries excluded), oldest first."""
    if not checkpoints_dir.is_dir():
        return []
    found = []
    for child in checkpoints_dir.iterdir():
        match = _STEP_DIR.match(child.name)
        if match and (child / CHECKPOINT_RECORD).is_file():
            found.append((int(match.group(1)), child))
    return sorted(found)


def weight_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.safetensors"))


def write_checkpoint_record(folder: Path, step: int, tokens: int) -> dict:
    """Hash the weights just written and record them; called before the folder is renamed."""
    record = {
        "step": step,
        "tokens": tokens,
        "sha256": {f.name: sha256_file(f) for f in weight_files(folder)},
    }
    write_text_atomic(folder / CHECKPOINT_RECORD, json.dumps(record, indent=2) + "\n")
    return record


def read_checkpoint_record(folder: Path) -> dict:
    """The folder's record; a missing or unreadable one is a corrupt checkpoint, named as such."""
    path = folder / CHECKPOINT_RECORD
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise CorruptCheckpointError(f"{path}: unreadable checkpoint record ({err})") from err


def verify_checkpoint(folder: Path) -> CheckpointEntry:
    """Recompute every weight file's sha256; raise naming the file that differs."""
    record = read_checkpoint_record(folder)
    if not record["sha256"]:
        raise CorruptCheckpointError(f"{folder}: no weight files recorded")
    for name, expected in sorted(record["sha256"].items()):
        path = folder / name
        if not path.is_file():
            raise CorruptCheckpointError(f"{path}: weight file is missing")
        actual = sha256_file(path)
        if actual != expected:
            raise CorruptCheckpointError(
                f"{path}: sha256 {actual[:12]}… does not match the recorded {expected[:12]}… "
                "(truncated or modified after it was written)"
            )
    digest = record["sha256"].get("model.safetensors") or next(iter(record["sha256"].values()))
    return CheckpointEntry(record["step"], record["tokens"], str(folder), digest)


def move_aside(folder: Path, reason: str) -> Path:
    """Rename a checkpoint folder to `step{N}.{reason}[K]` so it can be written anew.

    Renamed, not deleted: what corrupted or replaced it may be worth a look, and the name no
    longer matches `step{N}`, so neither the resume point nor harvest sees it.
    """
    attempt = 0
    while (aside := folder.with_name(f"{folder.name}.{reason}{attempt or ''}")).exists():
        attempt += 1
    folder.rename(aside)
    return aside


def harvest(checkpoints_dir: Path, expected_steps: list[int]) -> list[CheckpointEntry]:
    """Verify every expected checkpoint of a finished run; a missing or corrupt one is an error."""
    present = dict(list_checkpoint_dirs(checkpoints_dir))
    missing = [s for s in expected_steps if s not in present]
    if missing:
        raise CorruptCheckpointError(
            f"{checkpoints_dir}: checkpoints for steps {missing} are missing"
        )
    return [verify_checkpoint(present[step]) for step in expected_steps]


def write_manifest(path: Path, entries: list[CheckpointEntry]) -> None:
    lines = [",".join(MANIFEST_FIELDS)]
    lines += [",".join(str(asdict(e)[k]) for k in MANIFEST_FIELDS) for e in entries]
    write_text_atomic(path, "\n".join(lines) + "\n")


def read_manifest(path: str | Path) -> list[CheckpointEntry]:
    with open(path, newline="") as handle:
        return [
            CheckpointEntry(int(r["step"]), int(r["tokens"]), r["path"], r["sha256"])
            for r in csv.DictReader(handle)
        ]


def count_parameters(folder: str | Path) -> int:
    """Every parameter of a saved checkpoint, embeddings and padded head rows included (the N of
    the scaling law), from the safetensors headers alone: no tensor is read."""
    from safetensors import safe_open

    files = weight_files(Path(folder))
    if not files:
        raise FileNotFoundError(f"{folder}: no *.safetensors weights")
    total = 0
    for file in files:
        with safe_open(file, framework="np") as handle:
            for key in handle.keys():  # noqa: SIM118 - safe_open is not a dict
                if not BUFFER_KEYS.search(key):
                    total += math.prod(handle.get_slice(key).get_shape())
    return total
