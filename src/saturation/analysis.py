"""Per-checkpoint measurements: held-out loss and the LM-head spectrum (SCIENCE.md §1–§2)."""

from __future__ import annotations

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
    from saturation.fast_neox import FastGPTNeoX

SIGMA_FILE = "singular_values.npy"  # the raw spectrum, beside each checkpoint's metrics.json


def heldout_windows(tokens: np.ndarray, seq_len: int, n_tokens: int) -> np.ndarray:
    """A fixed sample of `seq_len + 1`-token windows spread evenly over the held-out split.

    Fixed (no RNG) so every checkpoint of every run is scored on exactly the same tokens.
    """
    n_windows = max(1, n_tokens // seq_len)
    last_start = len(tokens) - seq_len - 1
    if last_start < 0:
        raise ValueError(f"held-out split has {len(tokens)} tokens, fewer than seq_len + 1")
    starts = np.unique(np.linspace(0, last_start, n_windows).round().astype(np.int64))
    return np.stack([np.asarray(tokens[s : s + seq_len + 1], dtype=np.int64) for s in starts])


@dataclass(frozen=True)
class HeldoutPass:
    loss: float  # mean next-token cross-entropy, nats
    scored_tokens: int
    anisotropy: dict[int, float]  # depth 0 = embeddings … L + 1 = final normalised state


def heldout_pass(model: FastGPTNeoX, windows: np.ndarray, batch_size: int) -> HeldoutPass:
    """One pass over the held-out sample: fp32 loss at every position, anisotropy at every depth.

    The hidden states of every depth are tapped as the forward computes them, so the loss and the
    anisotropy come from the same pass.
    """
    import torch
    import torch.nn.functional as F

    meter = AnisotropyMeter()

    def tap(depth: int, states: torch.Tensor) -> None:
        meter.add(depth, states.float().cpu().numpy())  # (B, T, d)

    total, count = 0.0, 0
    with torch.inference_mode():
        for start in range(0, len(windows), batch_size):
            batch = torch.from_numpy(windows[start : start + batch_size])
            logits = model.logits(batch[:, :-1], tap).float()  # (B, T, V)
            targets = batch[:, 1:]
            loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="sum")
            total += loss.item()
            count += targets.numel()
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
    windows = heldout_windows(open_tokens(Path(val_bin)), seq_len, val_tokens)
    from saturation.neox_checkpoint import load_fast_neox  # torch, not transformers (≈ 3 s less)

    measured = heldout_pass(load_fast_neox(checkpoint_dir), windows, batch_size)
    last_depth = max(measured.anisotropy)
    head = spectra.load_head(checkpoint_dir, n_rows=header.vocab_size)
    sigma = spectra.singular_values(head)
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
