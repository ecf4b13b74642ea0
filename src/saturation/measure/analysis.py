"""Per-checkpoint measurements (docs/SCIENCE-NOTES.md): held-out loss, anisotropy at every
depth, and the LM head's spectrum, into one record and the raw singular values."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from saturation.io import atomic_path, write_json_atomic
from saturation.measure import spectra
from saturation.measure.heldout import heldout_windows, measure_loss_and_anisotropy
from saturation.tokenizer import vocabulary_fingerprint
from saturation.tokens import TokenHeader, open_tokens, read_header


def anisotropy_metric(depth: int) -> str:
    """Tidy-table name of the anisotropy at a depth (0 = embeddings; the last = final norm: L + 1
    for GPT-NeoX, L for a transformers family, saturation.model.hf_forward)."""
    return f"anisotropy_d{depth:02d}"


def check_tokenizer(header: TokenHeader, val_bin: str | Path, checkpoint_dir: str | Path) -> None:
    """Refuse to score a checkpoint on ids its own tokenizer does not give these tokens: the
    loss would be of another text. Known only where both sides say (a header written before
    `tokenizer` was recorded, or a checkpoint folder without tokenizer files, passes)."""
    theirs = vocabulary_fingerprint(checkpoint_dir)
    if header.tokenizer is not None and theirs is not None and theirs != header.tokenizer:
        raise ValueError(
            f"{val_bin} was tokenized with a different tokenizer than {checkpoint_dir} "
            f"(vocabulary {header.tokenizer[:12]}… ≠ {theirs[:12]}…)"
        )


def analyze_checkpoint(
    checkpoint_dir: str | Path,
    val_bin: str | Path,
    seq_len: int,
    val_tokens: int,
    batch_size: int,
    metrics_out: str | Path,
    sigma_out: str | Path,
    device: str = "cpu",
) -> dict[str, Any]:
    """Held-out loss, anisotropy per depth, singular values (saved raw), singular entropy and
    effective rank of one checkpoint of any family (saturation.model.hf_forward), its model run
    on `device` (the numbers accumulate on the CPU)."""
    from saturation.model.heads import read_head_matrix
    from saturation.model.hf_forward import load_measured_model  # GPT-NeoX: no transformers

    header = read_header(Path(val_bin).with_suffix(".json"))
    check_tokenizer(header, val_bin, checkpoint_dir)
    tokens = open_tokens(Path(val_bin), verify=True)  # a held-out split: hashed in milliseconds
    try:
        windows = heldout_windows(tokens, seq_len, val_tokens)
    except ValueError as error:
        raise ValueError(f"{val_bin}: {error}") from error
    # the head first: a diverged (non-finite) head fails here, naming its file, before the forward
    head = read_head_matrix(checkpoint_dir, n_rows=header.vocab_size)
    if head.shape[0] < header.vocab_size:
        raise ValueError(
            f"{val_bin}: a vocabulary of {header.vocab_size} ids, more than the "
            f"{head.shape[0]} rows of the head of {checkpoint_dir}"
        )
    sigma = spectra.singular_values(head)
    model = load_measured_model(checkpoint_dir, device)
    measured = measure_loss_and_anisotropy(model, windows, batch_size)
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
