"""Per-checkpoint measurements: held-out loss and the LM-head spectrum (SCIENCE.md §1–§2)."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from saturation import spectra
from saturation.anisotropy import AnisotropyMeter
from saturation.io import atomic_path, write_json_atomic
from saturation.tokens import open_tokens, read_header

if TYPE_CHECKING:  # torch loads only in the jobs that run a model; tables import this module too
    import torch

    from saturation.fast_neox import FastGPTNeoX

logger = logging.getLogger(__name__)

SIGMA_FILE = "singular_values.npy"  # the raw spectrum, beside each checkpoint's metrics.json


def heldout_windows(tokens: np.ndarray, seq_len: int, n_tokens: int) -> np.ndarray:
    """A fixed sample of `seq_len + 1`-token windows spread evenly over the held-out split.

    Fixed (no RNG) so every checkpoint of every run is scored on exactly the same tokens. The
    sample is whole windows, so every scored token has the same context budget as in training:
    `n_tokens // seq_len` of them, at least one. No two windows score the same token (they may
    share a boundary token, the last target of one being the first input of the next): a split
    too short for the request gives at most `(len − 1) // seq_len` windows instead of repeating
    tokens. Any difference from the request is logged, and `HeldoutPass.scored_tokens` counts
    what was actually scored.
    Window i starts at i · (len − seq_len − 1) / (n − 1), rounded: the first window opens the
    split and the last closes it.
    """
    if seq_len < 1:
        raise ValueError(f"seq_len must be positive, got {seq_len}")
    last_start = len(tokens) - seq_len - 1
    if last_start < 0:
        raise ValueError(f"held-out split has {len(tokens)} tokens, fewer than seq_len + 1")
    wanted = max(1, n_tokens // seq_len)
    n_windows = min(wanted, last_start // seq_len + 1)
    if n_windows * seq_len != n_tokens:
        reason = (
            f"the split's {len(tokens)} tokens hold only {n_windows} non-overlapping windows"
            if n_windows < wanted
            else f"whole windows of seq_len {seq_len}"
        )
        logger.warning(
            "held-out sample: scoring %d tokens, not the %d requested (%s)",
            n_windows * seq_len, n_tokens, reason,
        )  # fmt: skip
    # spacing last_start / (n − 1) ≥ seq_len, so the rounded starts are ≥ seq_len apart
    starts = np.linspace(0, last_start, n_windows).round().astype(np.int64)
    return np.stack([np.asarray(tokens[s : s + seq_len + 1], dtype=np.int64) for s in starts])


@dataclass(frozen=True)
class HeldoutPass:
    loss: float  # mean next-token cross-entropy, nats
    scored_tokens: int  # distinct tokens: windows never overlap (heldout_windows)
    anisotropy: dict[int, float]  # depth 0 = embeddings … L + 1 = final normalised state


def summed_cross_entropy(
    hidden: torch.Tensor, head: torch.nn.Module, targets: torch.Tensor, chunk: int
) -> float:
    """Σ CE(head(hidden_i), target_i) over the N rows of `hidden` (N, d), in fp32 logits.

    Forward only, `chunk` tokens at a time, so the (N, V) logits and the copy cross-entropy makes
    of them never exist at once (at Pythia's V = 50304, T = 2048 and batch 8, 3.3 GB each).
    fast_neox.linear_cross_entropy chunks the same way but forms the gradient in its forward,
    two more (chunk, V) matmuls and a (V, d) buffer that a measurement has no use for.
    """
    import torch.nn.functional as F

    total = 0.0
    for start in range(0, hidden.shape[0], chunk):
        logits = head(hidden[start : start + chunk]).float()  # (chunk, V)
        total += F.cross_entropy(logits, targets[start : start + chunk], reduction="sum").item()
    return total


def heldout_pass(model: FastGPTNeoX, windows: np.ndarray, batch_size: int) -> HeldoutPass:
    """One pass over the held-out sample: fp32 loss at every position, anisotropy at every depth.

    The hidden states of every depth are tapped as the forward computes them, so the loss and the
    anisotropy come from the same pass. The loss runs `model.loss_chunk` tokens at a time (see
    `summed_cross_entropy`).
    """
    import torch

    meter = AnisotropyMeter()

    def tap(depth: int, states: torch.Tensor) -> None:
        meter.add(depth, states.float().cpu().numpy())  # (B, T, d)

    head = model.model.get_output_embeddings()
    total, count = 0.0, 0
    with torch.inference_mode():
        for start in range(0, len(windows), batch_size):
            batch = torch.from_numpy(windows[start : start + batch_size])
            hidden = model.hidden_states(batch[:, :-1], tap).flatten(0, 1)  # (B·T, d)
            targets = batch[:, 1:].flatten()
            total += summed_cross_entropy(hidden, head, targets, model.loss_chunk)
            count += targets.numel()
    if zero_rows := meter.zero_rows():
        logger.warning("all-zero hidden states left out of the anisotropy, by depth: %s", zero_rows)
    return HeldoutPass(total / count, count, meter.values())


def anisotropy_metric(depth: int) -> str:
    """Tidy-table name of the anisotropy at a depth (0 = embeddings, L + 1 = final norm)."""
    return f"anisotropy_d{depth:02d}"


def analyze_checkpoint(
    checkpoint_dir: str | Path,
    val_bin: str | Path,
    seq_len: int,
    val_tokens: int,
    batch_size: int,
    metrics_out: str | Path,
    sigma_out: str | Path,
) -> dict[str, Any]:
    """Held-out loss, anisotropy per depth, singular values (saved raw), singular entropy and
    effective rank of one checkpoint."""
    header = read_header(Path(val_bin).with_suffix(".json"))
    try:
        windows = heldout_windows(open_tokens(Path(val_bin)), seq_len, val_tokens)
    except ValueError as error:
        raise ValueError(f"{val_bin}: {error}") from error
    # the head first: a diverged (non-finite) head fails here, naming its file, before the forward
    head = spectra.load_head(checkpoint_dir, n_rows=header.vocab_size)
    sigma = spectra.singular_values(head)
    from saturation.neox_checkpoint import load_fast_neox  # torch, not transformers (≈ 3 s less)

    measured = heldout_pass(load_fast_neox(checkpoint_dir), windows, batch_size)
    if not math.isfinite(measured.loss):  # e.g. a NaN in the head's padded rows, or a diverged body
        raise ValueError(f"{checkpoint_dir}: held-out loss is {measured.loss} (non-finite weights)")
    last_depth = max(measured.anisotropy)
    with atomic_path(sigma_out) as tmp, open(tmp, "wb") as handle:
        np.save(handle, sigma)
    record = {
        "metrics": {
            "val_loss": measured.loss,
            "val_ppl": math.exp(measured.loss),
            "anisotropy_last": measured.anisotropy[last_depth],
            **{anisotropy_metric(d): a for d, a in measured.anisotropy.items()},
            "singular_entropy": spectra.singular_entropy(sigma),
            "effective_rank": spectra.effective_rank(sigma),
            "sigma_max": float(sigma[0]),
        },
        "info": {
            "scored_tokens": measured.scored_tokens,
            "depths": last_depth + 1,
            "head_rows": int(head.shape[0]),
            "head_dim": int(head.shape[1]),
        },
    }
    write_json_atomic(metrics_out, record)
    return record
