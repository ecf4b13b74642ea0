"""Resuming a run: where it keeps its checkpoints and resume state, how they are written so a
kill anywhere leaves a resumable run, and how the newest intact one is found and restored.

The resume state (optimizer moments, RNG, the open log window, the resolved precision) is kept
for the newest checkpoint only, beside the checkpoints and not inside them: checkpoints stay
plain `save_pretrained` folders that `from_pretrained` and lm-eval load.
"""

from __future__ import annotations

import logging
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from saturation import checkpoints as ckpt
from saturation.io import atomic_path
from saturation.train.recipe import TrainConfig
from saturation.train.step import make_optimizer

log = logging.getLogger(__name__)

STATE_DIR = "state"
CHECKPOINTS_DIR = "checkpoints"
STATE_KEYS = {"step", "tokens_seen", "optimizer", "torch_rng", "cuda_rng"}


class PrecisionMismatchError(RuntimeError):
    """A run would continue in another precision than it started in (fp32 and bf16 steps mixed)."""


@dataclass(frozen=True)
class ResumePoint:
    """A checkpoint to resume from: its step, its verified folder and its loaded resume state."""

    step: int
    folder: Path
    state: dict[str, Any]


def read_state(path: Path, step: int) -> dict[str, Any] | None:
    """The resume state saved with checkpoint `step`, or None (with a warning) if unreadable.

    It is written atomically, but a disk fault or a bad copy can still truncate it, and then
    torch.load would fail on every retry: the run resumes as if that checkpoint had no state.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError) as err:
        first_line = (str(err).splitlines() or [""])[0].split(". ")[0]  # torch's run on for lines
        reason = f"{type(err).__name__}: {first_line}"
    else:
        if isinstance(state, dict) and state.get("step") == step and set(state) >= STATE_KEYS:
            return state
        reason = f"not the resume state of step {step}"
    log.warning(
        "ignoring the resume state %s (%s): resuming from an older checkpoint with a state, "
        "or from step 0",
        path,
        reason,
    )
    return None


class RunFolder:
    """Where a run keeps its checkpoints, its resume state and its in-progress metrics."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.checkpoints = root / CHECKPOINTS_DIR
        self.state = root / STATE_DIR
        self.live_metrics = self.state / "metrics.jsonl"

    def state_file(self, step: int) -> Path:
        return self.state / f"step{step}.pt"

    def resume_point(self) -> ResumePoint | None:
        """The newest checkpoint that has intact weights and a readable resume state."""
        for step, folder in reversed(ckpt.list_checkpoint_dirs(self.checkpoints)):
            if not self.state_file(step).is_file():
                continue
            try:
                ckpt.verify_checkpoint(folder)
            except ckpt.CorruptCheckpointError as err:
                log.warning("not resuming from %s: %s", folder, err)
                continue
            if (state := read_state(self.state_file(step), step)) is not None:
                return ResumePoint(step, folder, state)
        return None


def save_checkpoint(
    run: RunFolder,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    tokenizer: Any,
    step: int,
    tokens_seen: int,
    extra: dict[str, Any],
) -> None:
    """State first, then the weights folder by atomic rename; older states go last.

    If the process dies anywhere in here, the newest checkpoint folder still has its state.
    A folder already at this step (a run retrained from an older point) is kept, untouched, if
    it holds these very weights, and moved aside (`ckpt.move_aside`, never deleted) if it is
    corrupt or holds others (another precision, a nondeterministic GPU): a run's checkpoints all
    come from one training history. The state is written either way, so a stop here resumes
    here. `extra` (the precision, the open log window) goes into the state as it is.
    """
    folder = run.checkpoints / ckpt.step_dir_name(step)
    state = {
        "step": step,
        "tokens_seen": tokens_seen,
        "optimizer": optimizer.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    } | extra
    with atomic_path(run.state_file(step)) as tmp:
        torch.save(state, tmp)
    try:
        with atomic_path(folder) as tmp:
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
            record = ckpt.write_checkpoint_record(tmp, step, tokens_seen)
            if folder.exists():
                _make_way(folder, record)
    except _SameWeights:
        log.info("checkpoint %s already exists with these weights: kept as it is", folder)
    for old in run.state.glob("step*.pt"):
        if old != run.state_file(step):
            old.unlink()


class _SameWeights(Exception):
    """The folder at this step already holds the weights just written: keep it, drop the copy."""


def _make_way(folder: Path, record: dict[str, Any]) -> None:
    """Move an existing checkpoint folder aside unless it is intact and holds `record`'s weights
    (then raise _SameWeights)."""
    try:
        ckpt.verify_checkpoint(folder)
    except ckpt.CorruptCheckpointError as err:
        log.warning("%s; moved the checkpoint to %s and writing it anew", err,
                    ckpt.move_aside(folder, "corrupt"))  # fmt: skip
        return
    if ckpt.read_checkpoint_record(folder)["sha256"] == record["sha256"]:
        raise _SameWeights
    log.warning("%s holds other weights than this run's at that step (another precision or a "
                "nondeterministic device); moved it to %s and writing it anew", folder,
                ckpt.move_aside(folder, "superseded"))  # fmt: skip


def restore(point: ResumePoint, cfg: TrainConfig) -> tuple[torch.nn.Module, torch.optim.AdamW, int]:
    """The model, optimizer and RNG exactly as they were when checkpoint `step` was written."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(point.folder, dtype=torch.float32)
    optimizer = make_optimizer(model, cfg, fused=False)
    state = point.state
    optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["torch_rng"])
    if state["cuda_rng"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    return model, optimizer, int(state["tokens_seen"])


def check_precision(run: RunFolder, state: dict[str, Any], precision: str) -> None:
    """Refuse to resume in another resolved precision: one run's steps are all fp32 or all bf16.

    `auto` resolves by device, so the same recipe (the same id) resumed on CPU after a GPU start
    would otherwise mix them. A state from before precision was recorded is not checked.
    """
    started = state.get("precision")
    if started is not None and started != precision:
        raise PrecisionMismatchError(
            f"{run.root}: started in {started}, would resume in {precision}; a run must not mix "
            f"precisions: resume it where train.precision resolves to {started} "
            "(auto: bf16 on a GPU, fp32 elsewhere)"
        )
