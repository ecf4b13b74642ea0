"""LM-head spectra (SCIENCE.md §2): singular values, singular entropy and effective rank.

Pure numpy in float64, no torch: these run on every checkpoint and must stay cheap.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

# GPT-NeoX's untied LM head as saved on disk (Pythia's name), and transformers' module name
HEAD_KEYS = ("embed_out.weight", "lm_head.weight")


def singular_values(head: np.ndarray) -> np.ndarray:
    """All min(V, d) singular values of the head, descending, in float64.

    A non-finite head is refused here: LAPACK raises an opaque LinAlgError on NaN, and an inf
    would pass as a rank-one spectrum, the very collapse signal this project looks for.
    """
    head = np.asarray(head, dtype=np.float64)
    if not np.isfinite(head).all():
        raise ValueError(f"head has {np.count_nonzero(~np.isfinite(head))} non-finite entries")
    return np.linalg.svd(head, compute_uv=False)


def _normalised(sigma: np.ndarray) -> np.ndarray:
    """σ / Σσ, refusing what has no spectrum: a NaN would vanish from the entropy sums below
    (p[p > 0] drops it) and an inf would become a spike, i.e. a false report of collapse."""
    sigma = np.asarray(sigma, dtype=np.float64)
    if sigma.ndim != 1 or sigma.size == 0:
        raise ValueError(f"singular values must be a non-empty vector, got shape {sigma.shape}")
    if not np.isfinite(sigma).all():
        raise ValueError(
            f"singular values must be finite, got {np.count_nonzero(~np.isfinite(sigma))} NaN/inf"
        )
    if np.any(sigma < 0) or sigma.sum() <= 0:
        raise ValueError("singular values must be non-negative and not all zero")
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

    Reads one tensor from the safetensors file without building the model. A head with NaN or
    inf entries (a diverged run) is refused with the file's name rather than measured: its
    spectrum would be an error deep in LAPACK or a false collapse.
    """
    from safetensors import safe_open

    for file in sorted(Path(checkpoint_dir).glob("*.safetensors")):
        with safe_open(file, framework="np") as handle:
            for key in HEAD_KEYS:
                if key in handle.keys():  # noqa: SIM118 - safe_open is not a dict
                    head = handle.get_tensor(key)
                    head = head[:n_rows] if n_rows is not None else head
                    bad = np.count_nonzero(~np.isfinite(head))
                    if bad:
                        raise ValueError(
                            f"{file}: LM head {key} has {bad} non-finite (NaN/inf) entries"
                        )
                    return head
    raise KeyError(f"{checkpoint_dir}: none of {HEAD_KEYS} in its safetensors files")


def w_error(sigma: np.ndarray, rank: int) -> float:
    """Relative Frobenius error of the best rank-`rank` approximation (Eckart–Young–Mirsky):
    ‖σ_{rank+1:}‖₂ / ‖σ‖₂, with ‖σ‖₂ = ‖M‖_F. SCIENCE.md §3."""
    sigma = np.sort(np.asarray(sigma, dtype=np.float64))[::-1]
    if not np.isfinite(sigma).all():
        raise ValueError("W-error of non-finite singular values is undefined")
    if rank < 0:
        raise ValueError(f"rank must be non-negative, got {rank}")
    total = np.linalg.norm(sigma)
    if total == 0:
        raise ValueError("W-error of a zero matrix is undefined")
    return float(np.linalg.norm(sigma[rank:]) / total)
