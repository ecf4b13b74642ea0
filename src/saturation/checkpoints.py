"""Checkpoint folders on disk: naming, integrity records, the resume point and the manifest.

A checkpoint is a `save_pretrained` folder `step{N}/` (safetensors, config, tokenizer) plus
`checkpoint.json`, which records the step, the tokens seen and the sha256 of every weight file.
The folder appears by an atomic rename, so a folder that exists is complete; a later
corruption (a truncated file) is caught by the sha256 check.

The weights of any `save_pretrained` folder, ours or a published one (a HF cache snapshot), are
found by `weight_files` and read by `weight_shapes` / `read_tensors`, whatever their format:
safetensors or PyTorch pickles (`pytorch_model.bin`, as Pythia's `stepN` revisions), one file or
shards. torch and safetensors are imported inside them: Snakemake imports this module when it
parses the workflow.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Collection
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from saturation.io import sha256_file, write_text_atomic

if TYPE_CHECKING:
    import torch

CHECKPOINT_RECORD = "checkpoint.json"
# Buffers older transformers saved beside the weights (the causal mask of GPT-NeoX `attention`
# and GPT-2/GPT-J `attn`, rotary frequencies, e.g. early Llama files' `self_attn.rotary_emb`):
# not parameters; recomputed by the model, and skipped when loading, as from_pretrained skips them.
BUFFER_KEYS = re.compile(r"\.(attention|attn)\.(bias|masked_bias)$|\.rotary_emb\.inv_freq$")
# transformers' weight formats in its order of preference: (single file, its shards' pattern)
WEIGHT_FORMATS = (
    ("model.safetensors", "*.safetensors"),
    ("pytorch_model.bin", "pytorch_model*.bin"),
)
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


def read_config(folder: str | Path) -> dict[str, Any]:
    """A checkpoint's config.json (a missing one: FileNotFoundError); unparsable: an error
    naming it."""
    path = Path(folder) / "config.json"
    try:
        return json.loads(path.read_text())
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from error


def weight_files(folder: str | Path) -> list[Path]:
    """The files holding a checkpoint's weights, as `from_pretrained` would pick them.

    safetensors before PyTorch pickles; of a format, the shards its index lists
    (`model.safetensors.index.json`, `pytorch_model.bin.index.json`), else its single file, else
    every file of its pattern (sorted). A folder with none is a FileNotFoundError naming it.
    """
    folder = Path(folder)
    for single, pattern in WEIGHT_FORMATS:
        index = folder / f"{single}.index.json"
        if index.is_file():
            return _indexed_shards(index)
        if (folder / single).is_file():
            return [folder / single]
        if files := sorted(folder.glob(pattern)):
            return files
    raise FileNotFoundError(f"{folder}: no *.safetensors or pytorch_model*.bin weights")


def _indexed_shards(index: Path) -> list[Path]:
    """The shards a weight index maps tensors to, each checked to exist."""
    try:
        names = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    except (OSError, ValueError, KeyError) as error:
        raise ValueError(f"{index}: unreadable weight index ({error})") from error
    shards = [index.parent / name for name in names]
    if missing := [shard.name for shard in shards if not shard.is_file()]:
        raise FileNotFoundError(f"{index}: lists shards that are missing: {missing}")
    return shards


def _load_pickle(file: Path) -> dict[str, torch.Tensor]:
    """A `pytorch_model*.bin` memory-mapped: tensors are read only when used; tensors only
    (weights_only), so a pickle cannot run code."""
    import torch

    return torch.load(file, map_location="cpu", mmap=True, weights_only=True)


def weight_shapes(folder: str | Path) -> dict[str, tuple[Path, tuple[int, ...]]]:
    """Every tensor of the checkpoint, buffers included: the file holding it and its shape, from
    the safetensors headers or the pickles' memory maps, without reading any tensor's data."""
    shapes: dict[str, tuple[Path, tuple[int, ...]]] = {}
    for file in weight_files(folder):
        if file.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(file, framework="np") as handle:  # headers only: any dtype works
                for key in handle.keys():  # noqa: SIM118 - safe_open is not a dict
                    shapes[key] = (file, tuple(handle.get_slice(key).get_shape()))
        else:
            shapes |= {key: (file, tuple(value.shape)) for key, value in _load_pickle(file).items()}
    return shapes


def read_tensors(file: Path, keys: Collection[str] | None = None) -> dict[str, torch.Tensor]:
    """The tensors `keys` (None: all) of one weight file, as stored (fp16/bf16 stay so: numpy has
    no bf16, so a caller converts with `.float()` before any numpy use)."""
    if file.suffix != ".safetensors":
        state = _load_pickle(file)
        return {key: state[key] for key in (state if keys is None else keys)}
    from safetensors import safe_open

    with safe_open(file, framework="pt") as handle:  # "np" cannot read bf16
        return {key: handle.get_tensor(key) for key in (handle.keys() if keys is None else keys)}


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


def results_root(manifest: str | Path) -> Path:
    """The results folder a manifest belongs to: it lies at `<results>/harvest/<id>/manifest.csv`."""
    return Path(manifest).parent.parent.parent


def write_manifest(path: Path, entries: list[CheckpointEntry]) -> None:
    """The manifest, a checkpoint inside the results folder named relative to it (so a copied or
    moved results folder reads its own checkpoints), one outside (a HF cache) absolutely."""
    root = results_root(path).resolve()
    lines = [",".join(MANIFEST_FIELDS)]
    for entry in entries:
        folder = Path(entry.path).resolve()
        stored = folder.relative_to(root).as_posix() if folder.is_relative_to(root) else folder
        row = asdict(entry) | {"path": stored}
        lines.append(",".join(str(row[k]) for k in MANIFEST_FIELDS))
    write_text_atomic(path, "\n".join(lines) + "\n")


def read_manifest(path: str | Path) -> list[CheckpointEntry]:
    """Its entries, each checkpoint's path as the current working directory reaches it."""
    root = results_root(path)
    with open(path, newline="") as handle:
        return [
            CheckpointEntry(int(r["step"]), int(r["tokens"]), str(root / r["path"]), r["sha256"])
            for r in csv.DictReader(handle)
        ]


def verified_checkpoint(manifest: str | Path, step: int) -> Path:
    """The folder of the manifest's checkpoint at `step`, verified (`verify_entry`)."""
    entries = {entry.step: entry for entry in read_manifest(manifest)}
    if step not in entries:
        raise CorruptCheckpointError(f"{manifest}: no checkpoint at step {step}")
    return verify_entry(entries[step], manifest)


def verify_entry(entry: CheckpointEntry, manifest: str | Path) -> Path:
    """The entry's folder, after checking that its first weight file still has the sha256
    harvest recorded (for every source, the manifest's digest is that file's): a job measures
    the weights that were harvested, or fails naming the file."""
    folder = Path(entry.path)
    first = weight_files(folder)[0]
    if (actual := sha256_file(first)) != entry.sha256:
        raise CorruptCheckpointError(
            f"{first}: sha256 {actual[:12]}… does not match the {entry.sha256[:12]}… its "
            f"harvest recorded in {manifest} (modified after harvest); restore it, or rerun the "
            "run's harvest (`--forcerun harvest` / `harvest_suite`) to verify it anew"
        )
    return folder


def count_parameters(folder: str | Path) -> int:
    """Every parameter of a saved checkpoint, embeddings and padded head rows included (the N of
    the scaling law), from the files' headers (safetensors) or memory maps (pickles): no tensor
    is read. Buffers (`BUFFER_KEYS`) are not parameters. What the files hold is counted: a head
    tied to the input embedding is saved once, so it counts once, as in `model.parameters()`."""
    shapes = weight_shapes(folder)
    return sum(
        math.prod(shape) for key, (_, shape) in shapes.items() if not BUFFER_KEYS.search(key)
    )
