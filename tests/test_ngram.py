"""The data's next-token matrices and their W-error against plain Python counts and dense SVDs."""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.sparse.linalg import LinearOperator, aslinearoperator

from saturation.measure import ngram
from saturation.measure.ngram import (
    centred_log_probability_matrix,
    context_matrix,
    context_matrix_from_file,
    probability_matrix,
    singular_values,
    squared_frobenius,
    w_error_curve,
)
from saturation.measure.spectra import w_error


def stream(seed: int, vocab: int = 12, size: int = 3000, eos: int | None = None) -> np.ndarray:
    """Random ids with some structure (a biased next token), EOS now and then if asked."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, vocab, size=size)
    ids[1::3] = (ids[0::3][: ids[1::3].size] * 5 + 1) % vocab  # low-entropy transitions
    if eos is not None:
        ids[ids == eos] = (eos + 1) % vocab
        ids[rng.random(size) < 0.03] = eos
    return ids.astype(np.uint16)


def python_counts(
    ids: np.ndarray, n: int, eos: int | None = None
) -> dict[tuple[int, ...], Counter[int]]:
    """The definition, one n-gram at a time."""
    table: dict[tuple[int, ...], Counter[int]] = defaultdict(Counter)
    ids = [int(i) for i in ids]
    for start in range(len(ids) - n + 1):
        context = tuple(ids[start : start + n - 1])
        if eos is not None and eos in context:
            continue
        table[context][ids[start + n - 1]] += 1
    return table


def assert_matches(m: ngram.NgramMatrix, table: dict, min_count: int = 1) -> None:
    kept = sorted(c for c, following in table.items() if sum(following.values()) >= min_count)
    assert m.contexts_kept == len(kept)
    assert m.contexts_dropped == len(table) - len(kept)
    assert [tuple(int(t) for t in row) for row in m.contexts] == kept  # lexicographic rows
    counts = m.counts
    for i, context in enumerate(kept):
        row = slice(counts.indptr[i], counts.indptr[i + 1])
        found = dict(zip(counts.indices[row].tolist(), counts.data[row].tolist(), strict=True))
        assert found == dict(table[context])
        assert m.totals[i] == sum(table[context].values())
    assert m.nnz == sum(len(table[c]) for c in kept)
    assert m.tokens_used == sum(sum(table[c].values()) for c in kept)
    assert m.counts.has_canonical_format and m.counts.dtype == np.int64


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_counts_are_the_definition(n: int) -> None:
    ids = stream(n)
    m = context_matrix(ids, n, 12)
    assert_matches(m, python_counts(ids, n))
    assert m.tokens_used == ids.size - n + 1 and m.ngrams_skipped_eos == 0


def test_keys_without_int64_room() -> None:
    """V^(n−1) beyond int64: the prefix-rank keys give the same rows in the same order."""
    ids = stream(7, vocab=9)
    huge = 1 << 31  # V³ = 2⁹³; ids stay below 9
    m = context_matrix(ids, 4, huge)
    assert_matches(m, python_counts(ids, 4))
    small = context_matrix(ids, 4, 9)
    np.testing.assert_array_equal(m.contexts, small.contexts)
    np.testing.assert_array_equal(m.counts[:, :9].toarray(), small.counts.toarray())


@pytest.mark.parametrize("min_count", [10, 20, 30])
def test_min_count_drops_rare_contexts(min_count: int) -> None:
    ids = stream(3)
    table = python_counts(ids, 3)
    m = context_matrix(ids, 3, 12, min_count=min_count)
    assert m.contexts_dropped > 0
    assert_matches(m, table, min_count)
    assert (m.totals >= min_count).all()


def test_contexts_holding_eos_are_skipped() -> None:
    ids = stream(4, eos=0)
    table = python_counts(ids, 3, eos=0)
    m = context_matrix(ids, 3, 12, eos_id=0, min_count=2)
    assert_matches(m, table, 2)
    assert not (m.contexts == 0).any()
    assert m.counts[:, 0].sum() > 0  # EOS is still predicted
    windows = np.lib.stride_tricks.sliding_window_view(ids[:-1], 2)
    assert m.ngrams_skipped_eos == int((windows == 0).any(axis=1).sum())


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="outside"):
        context_matrix(np.array([0, 12, 1]), 2, 12)
    with pytest.raises(ValueError, match="n must be"):
        context_matrix(np.array([0, 1]), 0, 12)
    with pytest.raises(ValueError, match="min_count"):
        context_matrix(np.array([0, 1]), 2, 12, min_count=0)
    empty = context_matrix(np.array([3], dtype=np.uint16), 2, 12)
    assert empty.counts.shape == (0, 12) and empty.tokens_used == 0


def test_from_a_token_file(tmp_path: Path) -> None:
    ids = stream(5, eos=0)
    bin_path = tmp_path / "train.bin"
    bin_path.write_bytes(ids.tobytes())
    header = {
        "tokens": ids.size,
        "dtype": "uint16",
        "vocab_size": 12,
        "eos_id": 0,
        "documents": int((ids == 0).sum()),
        "sha256": hashlib.sha256(ids.tobytes()).hexdigest(),
        "format_version": 1,
    }
    (tmp_path / "train.json").write_text(json.dumps(header))
    m = context_matrix_from_file(bin_path, 3)
    assert_matches(m, python_counts(ids, 3, eos=0))


def dense_w_errors(dense: np.ndarray, dims: range) -> dict[int, float]:
    sigma = np.linalg.svd(dense, compute_uv=False)
    return {d: w_error(sigma, d) for d in dims}


@pytest.mark.parametrize(("seed", "n", "min_count"), [(0, 3, 1), (1, 2, 1), (2, 4, 3), (3, 3, 90)])
def test_probability_w_error_is_the_dense_svd(seed: int, n: int, min_count: int) -> None:
    """(3, 3, 90) leaves fewer contexts than V: the Gram matrix is then formed on the row side."""
    m = context_matrix(stream(seed), n, 12, min_count=min_count)
    w = probability_matrix(m)
    dense = w.toarray()
    assert (dense.shape[0] < 12) == (min_count == 90)
    np.testing.assert_allclose(dense.sum(axis=1), 1.0, rtol=1e-14)
    np.testing.assert_allclose(dense * m.totals[:, None], m.counts.toarray(), rtol=1e-12)
    assert squared_frobenius(w) == pytest.approx(np.sum(dense**2), rel=1e-14)
    dims = range(min(dense.shape) + 2)
    curve = w_error_curve(w, squared_frobenius(w), list(dims))
    reference = dense_w_errors(dense, dims)
    for d in dims:
        assert curve[d] == pytest.approx(reference[d], abs=1e-8), d


def test_eckart_young() -> None:
    """W-error(d) is the relative error of the truncated SVD, the best rank-d fit."""
    w = probability_matrix(context_matrix(stream(11), 3, 12))
    dense = w.toarray()
    u, sigma, vt = np.linalg.svd(dense, full_matrices=False)
    dims = list(range(sigma.size + 1))
    curve = w_error_curve(w, squared_frobenius(w), dims)
    for d in dims:
        truncated = (u[:, :d] * sigma[:d]) @ vt[:d]
        relative = np.linalg.norm(dense - truncated) / np.linalg.norm(dense)
        assert curve[d] == pytest.approx(relative, abs=1e-8), d


def plain(op: LinearOperator) -> LinearOperator:
    """The operator's products alone: no `gram`, `max_rank` or `frobenius_sq` to lean on."""
    return LinearOperator(op.shape, op.matvec, op.rmatvec, op.matmat, op.dtype, op.rmatmat)


def dense_centred_log(m: ngram.NgramMatrix, alpha: float) -> np.ndarray:
    """Straight from the definition: log((count + α)/(total + αV)), minus each row's mean."""
    counts = m.counts.toarray().astype(np.float64)
    logp = np.log((counts + alpha) / (m.totals[:, None] + alpha * m.vocab_size))
    return logp - logp.mean(axis=1, keepdims=True)


@pytest.mark.parametrize(("seed", "alpha", "min_count"), [(0, 0.5, 1), (1, 1e-3, 2), (2, 2.0, 90)])
def test_centred_log_probability_operator(seed: int, alpha: float, min_count: int) -> None:
    m = context_matrix(stream(seed), 3, 12, min_count=min_count)
    op = centred_log_probability_matrix(m, alpha)
    dense = dense_centred_log(m, alpha)
    assert op.shape == dense.shape
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=dense.shape[1]), rng.normal(size=dense.shape[0])
    xs, ys = rng.normal(size=(dense.shape[1], 4)), rng.normal(size=(dense.shape[0], 3))
    tol = {"rtol": 1e-10, "atol": 1e-10}
    np.testing.assert_allclose(op.matvec(x), dense @ x, **tol)
    np.testing.assert_allclose(op.rmatvec(y), dense.T @ y, **tol)
    np.testing.assert_allclose(op.matmat(xs), dense @ xs, **tol)
    np.testing.assert_allclose(op.rmatmat(ys), dense.T @ ys, **tol)
    np.testing.assert_allclose(op.H @ y, dense.T @ y, **tol)
    np.testing.assert_allclose(op @ np.eye(dense.shape[1]), dense, **tol)
    assert op.frobenius_sq == pytest.approx(np.sum(dense**2), rel=1e-12)
    assert squared_frobenius(op) == op.frobenius_sq

    dims = range(min(dense.shape) + 2)
    reference = dense_w_errors(dense, dims)
    curve = w_error_curve(op, op.frobenius_sq, list(dims))
    for d in dims:
        assert curve[d] == pytest.approx(reference[d], abs=1e-8), d
    # the generic block Gram; not told that rows sum to zero, it reads the W-error at rank
    # V − 1 (truly 0) through √(‖W‖² − Σσ²), good to ~√ε only
    generic = w_error_curve(plain(op), op.frobenius_sq, list(dims))
    for d in dims:
        tol = 1e-8 if d < op.max_rank else 1e-7
        assert generic[d] == pytest.approx(reference[d], abs=tol), d


def test_gram_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """The generic operator Gram, built a few identity columns at a time."""
    m = context_matrix(stream(8), 3, 12)
    op = centred_log_probability_matrix(m, 0.1)
    monkeypatch.setattr(ngram, "_GRAM_BLOCK_FLOATS", 5 * op.shape[0])
    sigma = np.linalg.svd(dense_centred_log(m, 0.1), compute_uv=False)
    blocks = singular_values(plain(op), 11)
    np.testing.assert_allclose(blocks, sigma[:11], rtol=1e-10)


@pytest.mark.parametrize("kind", ["probability", "centred log"])
def test_svds_top_k_is_the_dense_svd(kind: str) -> None:
    vocab = 40
    m = context_matrix(stream(9, vocab=vocab, size=6000), 2, vocab)
    matrix = (
        probability_matrix(m) if kind == "probability" else centred_log_probability_matrix(m, 1)
    )
    dense = matrix.toarray() if kind == "probability" else dense_centred_log(m, 1)
    sigma = np.linalg.svd(dense, compute_uv=False)
    k = 6
    assert k < min(dense.shape)
    top = singular_values(matrix, k, method="svds")
    assert top.dtype == np.float64 and np.all(np.diff(top) <= 0)
    np.testing.assert_allclose(top, sigma[:k], rtol=1e-8, atol=1e-8 * sigma[0])
    np.testing.assert_array_equal(top, singular_values(matrix, k, method="svds"))  # seeded
    # and the auto choice falls back to svds above the Gram limit
    frob = squared_frobenius(matrix)
    auto = w_error_curve(matrix, frob, [0, 1, 3, k], method="svds")
    reference = dense_w_errors(dense, [0, 1, 3, k])
    for d, value in auto.items():
        assert value == pytest.approx(reference[d], abs=1e-8), d


def test_auto_uses_svds_above_the_gram_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    m = context_matrix(stream(10, vocab=30), 2, 30)
    w = probability_matrix(m)
    called = []
    real = ngram.svds
    monkeypatch.setattr(ngram, "svds", lambda *a, **kw: called.append(1) or real(*a, **kw))
    monkeypatch.setattr(ngram, "GRAM_MAX_SIDE", 10)
    sigma = np.linalg.svd(w.toarray(), compute_uv=False)
    np.testing.assert_allclose(singular_values(w, 4), sigma[:4], rtol=1e-8)
    assert called


def test_curve_edges() -> None:
    w = probability_matrix(context_matrix(stream(12), 3, 12))
    frob = squared_frobenius(w)
    assert w_error_curve(w, frob, []) == {}
    assert w_error_curve(w, frob, [0]) == {0: 1.0}
    assert w_error_curve(w, frob, [12, 50]) == {12: 0.0, 50: 0.0}
    with pytest.raises(ValueError, match="undefined"):
        w_error_curve(w, 0.0, [1])
    with pytest.raises(ValueError, match="non-negative"):
        w_error_curve(w, frob, [-1])
    with pytest.raises(ValueError, match="svds needs"):
        singular_values(w, 12, method="svds")
    with pytest.raises(ValueError, match="smoothing"):
        centred_log_probability_matrix(context_matrix(stream(12), 3, 12), 0.0)
    with pytest.raises(TypeError, match="frobenius_sq"):
        squared_frobenius(aslinearoperator(w))
    assert squared_frobenius(sp.csr_matrix(np.eye(3))) == 3.0
