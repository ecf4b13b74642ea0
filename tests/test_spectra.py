"""Spectral metrics against an independent float64 computation on random inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from saturation.measure.spectra import (
    centred,
    effective_rank,
    mean_row_share,
    singular_entropy,
    singular_values,
    w_error,
)
from saturation.model.heads import LinearHead


@pytest.mark.parametrize("seed", range(5))
def test_against_the_definition(seed: int) -> None:
    rng = np.random.default_rng(seed)
    head = rng.normal(size=(200, 24)) @ np.diag(rng.uniform(0.01, 3, 24))
    sigma = singular_values(head.astype(np.float32))
    # independent: eigenvalues of WᵀW, then the formulas of SCIENCE-NOTES written out
    reference = np.sqrt(np.clip(np.sort(np.linalg.eigvalsh(head.T @ head))[::-1], 0, None))
    np.testing.assert_allclose(sigma, reference, rtol=1e-5)
    p = reference / reference.sum()
    kl = sum(pi * np.log(len(p) * pi) for pi in p)
    entropy = -sum(pi * np.log(pi) for pi in p)
    assert singular_entropy(sigma) == pytest.approx(kl, rel=1e-6)
    assert effective_rank(sigma) == pytest.approx(np.exp(entropy), rel=1e-6)
    assert effective_rank(sigma) == pytest.approx(len(p) * np.exp(-kl), rel=1e-6)


def test_extremes() -> None:
    d = 16
    assert singular_entropy(np.ones(d)) == pytest.approx(0.0, abs=1e-12)
    assert effective_rank(np.ones(d)) == pytest.approx(d)
    spike = np.zeros(d)
    spike[0] = 5.0
    assert singular_entropy(spike) == pytest.approx(np.log(d))
    assert effective_rank(spike) == pytest.approx(1.0)


def test_scale_invariant_and_rejects_garbage() -> None:
    sigma = np.array([3.0, 2.0, 1.0])
    assert singular_entropy(sigma * 7) == pytest.approx(singular_entropy(sigma))
    with pytest.raises(ValueError):
        singular_entropy(np.zeros(3))
    with pytest.raises(ValueError):
        effective_rank(np.array([1.0, -1.0]))


@pytest.mark.parametrize("rank", [0, 1, 5, 12, 24])
def test_w_error_is_the_best_rank_d_approximation_error(rank: int) -> None:
    rng = np.random.default_rng(rank)
    matrix = rng.normal(size=(60, 24)) @ rng.normal(size=(24, 24))
    u, s, vt = np.linalg.svd(matrix, full_matrices=False)
    best = (u[:, :rank] * s[:rank]) @ vt[:rank]  # Eckart–Young: truncated SVD
    expected = np.linalg.norm(matrix - best, "fro") / np.linalg.norm(matrix, "fro")
    assert w_error(singular_values(matrix), rank) == pytest.approx(expected, abs=1e-10)


def test_w_error_bounds() -> None:
    sigma = np.array([3.0, 2.0, 1.0])
    assert w_error(sigma, 0) == pytest.approx(1.0)
    assert w_error(sigma, 3) == 0.0
    with pytest.raises(ValueError):
        w_error(np.zeros(3), 1)


@pytest.mark.parametrize("bad", [np.inf, np.nan])
def test_non_finite_spectra_are_refused_not_reported_as_collapse(bad: float) -> None:
    # unguarded, one inf gave KL = ln d and effective rank 1 (the collapse signal) and NaN
    # vanished from the sums
    sigma = np.array([bad, 2.0, 1.0])
    for metric in (singular_entropy, effective_rank):
        with pytest.raises(ValueError, match="finite"):
            metric(sigma)
    with pytest.raises(ValueError, match="non-finite"):
        w_error(sigma, 1)
    head = np.random.default_rng(0).normal(size=(40, 8))
    head[3, 5] = bad  # NaN made LAPACK raise LinAlgError, inf gave a rank-one spectrum
    with pytest.raises(ValueError, match="1 non-finite"):
        singular_values(head)


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
def test_reading_the_head_refuses_a_non_finite_one_naming_the_file(
    bad: float, tmp_path: Path
) -> None:
    head = np.random.default_rng(1).normal(size=(12, 4)).astype(np.float32)
    head[10, 2] = bad  # a padded row: sliced away before the check
    save_file({"embed_out.weight": head}, str(tmp_path / "model.safetensors"))
    np.testing.assert_array_equal(LinearHead.read_matrix(tmp_path, n_rows=10), head[:10])
    with pytest.raises(ValueError, match=r"model\.safetensors: LM head embed_out\.weight has 1 "):
        LinearHead.read_matrix(tmp_path)


def test_the_centred_head_is_blind_to_a_vector_added_to_every_row() -> None:
    """W + 1cᵀ gives every logit the same shift c·h, which the softmax ignores: centring removes
    it, so the centred spectrum sees only what the loss constrains."""
    rng = np.random.default_rng(0)
    head = rng.normal(size=(200, 16))
    shifted = head + rng.normal(size=16) * 5
    np.testing.assert_allclose(centred(shifted), centred(head), atol=1e-12)
    assert np.allclose(centred(head).mean(axis=0), 0)
    raw, flat = singular_values(shifted), singular_values(centred(shifted))
    assert singular_entropy(raw) > singular_entropy(flat)  # the shared row dominated the raw one


def test_the_mean_row_share() -> None:
    rng = np.random.default_rng(1)
    row = rng.normal(size=8)
    assert mean_row_share(np.tile(row, (50, 1))) == pytest.approx(1.0)  # every row the same
    assert mean_row_share(np.vstack([np.eye(8), -np.eye(8)])) == 0.0  # mean row zero
    head = rng.normal(size=(300, 8)) + 3 * row
    u = head.mean(axis=0) / np.linalg.norm(head.mean(axis=0))
    expected = np.sum((head @ u) ** 2) / np.sum(head**2)
    assert mean_row_share(head) == pytest.approx(expected, rel=1e-12)
    lower = len(head) * np.sum(head.mean(axis=0) ** 2) / np.sum(head**2)  # V‖m̄‖² / ‖W‖²_F
    assert lower <= mean_row_share(head) <= 1
    with pytest.raises(ValueError, match="zero head"):
        mean_row_share(np.zeros((3, 2)))


def test_the_singular_entropy_of_sigma_squared() -> None:
    """σ² is the spectrum of energies (WᵀW's eigenvalues): more peaked, so a larger KL."""
    sigma = np.array([4.0, 2.0, 1.0, 1.0])
    q = sigma**2 / np.sum(sigma**2)
    assert singular_entropy(sigma, power=2) == pytest.approx(np.log(4) + np.sum(q * np.log(q)))
    assert singular_entropy(sigma, power=2) > singular_entropy(sigma)
    assert singular_entropy(np.ones(5), power=2) == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="power must be 1"):
        singular_entropy(sigma, power=3)
