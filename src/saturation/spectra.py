"""LM-head spectra (SCIENCE.md §2): singular values, singular entropy and effective rank.

Pure numpy in float64, no torch: these run on every checkpoint and must stay cheap.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

# GPT-NeoX's untied LM head as saved on disk (Pythia's name), and transformers' module name
HEAD_KEYS = ("embed_out.weight", "lm_head.weight")


def singular_values(head: np.ndarray) -> np.ndarray:
    """All min(V, d) singular values of the head, descending, in float64."""
    return np.linalg.svd(np.asarray(head, dtype=np.float64), compute_uv=False)


def _normalised(sigma: np.ndarray) -> np.ndarray:
    sigma = np.asarray(sigma, dtype=np.float64)
    if sigma.ndim != 1 or sigma.size == 0 or np.any(sigma < 0) or sigma.sum() <= 0:
        raise ValueError("singular values must be a non-empty, non-negative, non-zero vector")
    return sigma / sigma.sum()


def singular_entropy(sigma: np.ndarray) -> float:
    """KL(σ̂ ‖ uniform) = ln d − H(σ̂), natural log; 0 for a flat spectrum, ln d for rank one."""
    p = _normalised(sigma)
    nonzero = p[p > 0]
    return float(np.log(p.size) + np.sum(nonzero * np.log(nonzero)))


def effective_rank(sigma: np.ndarray) -> float:
    """exp(H(σ̂)) (Roy & Vetterli) = d · exp(−KL)."""
    p = _normalised(sigma)
    nonzero = p[p > 0]
    return float(np.exp(-np.sum(nonzero * np.log(nonzero))))


def load_head(checkpoint_dir: str | Path, n_rows: int | None = None) -> np.ndarray:
    """The head matrix of a saved GPT-NeoX checkpoint, padded rows sliced away (SCIENCE.md §1).

    Reads one tensor from the safetensors file without building the model.
    """
    from safetensors import safe_open

    for file in sorted(Path(checkpoint_dir).glob("*.safetensors")):
        with safe_open(file, framework="np") as handle:
            for key in HEAD_KEYS:
                if key in handle.keys():  # noqa: SIM118 - safe_open is not a dict
                    head = handle.get_tensor(key)
                    return head[:n_rows] if n_rows is not None else head
    raise KeyError(f"{checkpoint_dir}: none of {HEAD_KEYS} in its safetensors files")


def w_error(sigma: np.ndarray, rank: int) -> float:
    """Relative Frobenius error of the best rank-`rank` approximation (Eckart–Young–Mirsky):
    ‖σ_{rank+1:}‖₂ / ‖σ‖₂, with ‖σ‖₂ = ‖M‖_F. SCIENCE.md §3."""
    sigma = np.sort(np.asarray(sigma, dtype=np.float64))[::-1]
    if rank < 0:
        raise ValueError(f"rank must be non-negative, got {rank}")
    total = np.linalg.norm(sigma)
    if total == 0:
        raise ValueError("W-error of a zero matrix is undefined")
    return float(np.linalg.norm(sigma[rank:]) / total)
