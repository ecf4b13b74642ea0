"""LM-head spectra (docs/SCIENCE-NOTES.md): singular values, singular entropy, effective rank
and the W-error of a truncated spectrum.

Pure numpy in float64, no torch: these run on every checkpoint and must stay cheap.
"""

from __future__ import annotations

import numpy as np


def singular_values(head: np.ndarray) -> np.ndarray:
    """All min(V, d) singular values of the head, descending, in float64.

    A non-finite head is refused here: LAPACK raises an opaque LinAlgError on NaN, and an inf
    would pass as a rank-one spectrum, the very collapse signal this project looks for.
    """
    head = np.asarray(head, dtype=np.float64)
    if not np.isfinite(head).all():
        raise ValueError(f"head has {np.count_nonzero(~np.isfinite(head))} non-finite entries")
    return np.linalg.svd(head, compute_uv=False)


def centred(head: np.ndarray) -> np.ndarray:
    """W − 1 m̄ᵀ in float64, m̄ the mean row. Adding one vector m to every row shifts every
    logit by m·h and leaves the softmax unchanged, so the loss cannot see that component, while
    Adam and weight decay still move it: the centred head is the part the loss constrains
    (docs/SCIENCE-NOTES.md)."""
    head = np.asarray(head, dtype=np.float64)
    return head - head.mean(axis=0, keepdims=True)


def mean_row_share(head: np.ndarray) -> float:
    """‖W u‖² / ‖W‖²_F with u = m̄ / ‖m̄‖: the share of the head's energy along its mean row's
    direction (0 for a zero mean row). At least V‖m̄‖² / ‖W‖²_F, the mean component's own share."""
    head = np.asarray(head, dtype=np.float64)
    mean = head.mean(axis=0)
    norm = np.linalg.norm(mean)
    total = np.sum(head * head)
    if total == 0:
        raise ValueError("the mean-row share of a zero head is undefined")
    if norm == 0:
        return 0.0
    along = head @ (mean / norm)
    return float(along @ along / total)


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


def singular_entropy(sigma: np.ndarray, power: int = 1) -> float:
    """KL(σ̂ ‖ uniform) = ln d − H(σ̂), natural log; 0 for a flat spectrum, ln d for rank one.
    `power=2` normalises σ² instead (the spectrum of energies, WᵀW's eigenvalues): the paper
    does not say which it uses (docs/SCIENCE-NOTES.md)."""
    if power not in (1, 2):
        raise ValueError(f"power must be 1 (σ) or 2 (σ²), got {power}")
    p = _normalised(np.asarray(sigma, dtype=np.float64) ** power)
    nonzero = p[p > 0]
    return float(np.log(p.size) + np.sum(nonzero * np.log(nonzero)))


def effective_rank(sigma: np.ndarray) -> float:
    """exp(H(σ̂)) (Roy & Vetterli) = d · exp(−KL)."""
    p = _normalised(sigma)
    nonzero = p[p > 0]
    return float(np.exp(-np.sum(nonzero * np.log(nonzero))))


def w_error(sigma: np.ndarray, rank: int) -> float:
    """Relative Frobenius error of the best rank-`rank` approximation (Eckart–Young–Mirsky):
    ‖σ_{rank+1:}‖₂ / ‖σ‖₂, with ‖σ‖₂ = ‖M‖_F (docs/SCIENCE-NOTES.md): the paper's measure of
    how much of a head, or of a data distribution, a rank-`rank` head cannot express."""
    sigma = np.sort(np.asarray(sigma, dtype=np.float64))[::-1]
    if not np.isfinite(sigma).all():
        raise ValueError("W-error of non-finite singular values is undefined")
    if rank < 0:
        raise ValueError(f"rank must be non-negative, got {rank}")
    total = np.linalg.norm(sigma)
    if total == 0:
        raise ValueError("W-error of a zero matrix is undefined")
    return float(np.linalg.norm(sigma[rank:]) / total)
