"""The synthetic language against its definition, its sampler against P* (χ² tests that can
fail), and the oracles against what the construction guarantees."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import replace

import numpy as np
import pytest
import torch
from scipy import stats

from saturation.synthetic import (
    LanguageSpec,
    build_language,
    context_index,
    context_tokens,
    head_family_loss,
    oracle_table,
    sample_documents,
    svd_bound_loss,
    unconstrained_rank_loss,
)
from saturation.synthetic.language import Language, advance, profile_sigma
from saturation.synthetic.oracles import LN_EPS, _layer_norm

SMALL = LanguageSpec(vocab=64, rank=4, entropy=2.5, seed=1)
TINY_ORDER_2 = LanguageSpec(vocab=8, rank=3, order=2, entropy=1.5, seed=2)
P_PASS = 1e-3  # a correct sampler fails a χ² test at this level once in a thousand seeds
P_REJECT = 1e-6


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """The oracles here work on 64 × 64 matrices: a second thread only adds overhead, and on a
    busy machine it waits for a core (several times slower)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def small() -> Language:
    return build_language(SMALL)


@pytest.fixture(scope="module")
def mixture() -> Language:
    return build_language(replace(SMALL, kind="mixture"))


@pytest.fixture(scope="module")
def order_two() -> Language:
    return build_language(TINY_ORDER_2)


@pytest.fixture(scope="module")
def small_table(small: Language) -> dict[int, dict[str, object]]:
    return {row["d"]: row for row in oracle_table(small, [1, 2, 3, 4, 5, 6])}


def double_centred(logits: np.ndarray) -> np.ndarray:
    """Logits less their row means and column means: what neither the softmax nor a bias sees."""
    rows = logits - logits.mean(axis=1, keepdims=True)
    return rows - rows.mean(axis=0, keepdims=True)


def transition_matrix(language: Language) -> np.ndarray:
    """The full contexts × contexts chain, written out from the definition."""
    spec = language.spec
    contexts = spec.contexts
    matrix = np.zeros((contexts, contexts))
    for c in range(contexts):
        tokens = context_tokens(np.array(c), spec.order, spec.vocab)
        for v in range(spec.vocab):
            successor = context_index(np.append(tokens[1:], v), spec.order, spec.vocab)
            matrix[c, successor] += language.probs[c, v]
    return matrix


def merged_chisquare(observed: np.ndarray, expected: np.ndarray) -> float:
    """p-value of Σ (O − E)²/E over the rows of a contexts × V table, conditional on each row's
    total (E = n_c P(·|c)), with each row's cells of expected count < 5 merged into one (and
    more cells added to it until it reaches 5); df = Σ_c (cells_c − 1)."""
    obs_cells: list[float] = []
    exp_cells: list[float] = []
    rows = 0
    for o, e in zip(observed, expected, strict=True):
        if e.sum() == 0:
            continue
        order = np.argsort(e, kind="stable")
        o, e = o[order], e[order]
        i, pooled_o, pooled_e = 0, 0.0, 0.0
        while i < len(e) and (e[i] < 5 or 0 < pooled_e < 5):
            pooled_o, pooled_e, i = pooled_o + o[i], pooled_e + e[i], i + 1
        assert i == 0 or pooled_e >= 5, "a context too rare for the test"
        obs_cells += ([pooled_o] if i else []) + list(o[i:])
        exp_cells += ([pooled_e] if i else []) + list(e[i:])
        rows += 1
    return stats.chisquare(obs_cells, exp_cells, ddof=rows - 1).pvalue


def transition_counts(language: Language, tokens: np.ndarray) -> np.ndarray:
    k, vocab = language.spec.order, language.spec.vocab
    windows = np.lib.stride_tricks.sliding_window_view(tokens, k + 1, axis=1).reshape(-1, k + 1)
    cells = context_index(windows[:, :k], k, vocab) * vocab + windows[:, k]
    return np.bincount(cells, minlength=language.spec.contexts * vocab).reshape(-1, vocab)


# ---- the process ---------------------------------------------------------------------------


def test_the_process_is_what_it_says(small: Language) -> None:
    assert small.logits.shape == small.probs.shape == (64, 64)
    assert small.logits.dtype == small.probs.dtype == small.stationary.dtype == np.float64
    np.testing.assert_allclose(small.probs.sum(axis=1), 1.0, atol=1e-13)
    np.testing.assert_allclose(np.exp(small.logits), small.probs, rtol=1e-13)
    assert small.stationary.sum() == pytest.approx(1.0, abs=1e-14)
    np.testing.assert_allclose(small.stationary @ small.probs, small.stationary, atol=1e-13)
    # H* from the definition, to the target
    entropy = small.stationary @ -(small.probs * np.log(small.probs)).sum(axis=1)
    assert abs(entropy - SMALL.entropy) < 1e-8
    assert abs(small.entropy - SMALL.entropy) < 1e-8
    # the logit kind: what a head with a bias must express has rank exactly r*
    assert np.linalg.matrix_rank(double_centred(small.logits), tol=1e-8) == SMALL.rank
    assert small.scale > 0


def test_building_is_deterministic(small: Language) -> None:
    again = build_language(SMALL)
    assert np.array_equal(again.logits, small.logits)
    assert again.scale == small.scale
    other = build_language(replace(SMALL, seed=2))
    assert not np.allclose(other.logits, small.logits)


def test_profiles() -> None:
    np.testing.assert_allclose(profile_sigma("flat", 3), [1, 1, 1])
    np.testing.assert_allclose(profile_sigma("geometric:0.5", 3), [1, 0.5, 0.25])
    np.testing.assert_allclose(profile_sigma("power:1", 3), [1, 1 / 2, 1 / 3])
    spec = replace(SMALL, profile="geometric:0.3")
    sigma = np.linalg.svd(double_centred(build_language(spec).logits), compute_uv=False)
    assert sigma[3] / sigma[0] < 0.1  # the spectrum decays (roughly 0.3³, blurred by centring)
    assert sigma[4] / sigma[0] < 1e-10


def test_order_two_chain(order_two: Language) -> None:
    pi = order_two.stationary
    assert pi.shape == (64,) and order_two.probs.shape == (64, 8)
    assert pi.sum() == pytest.approx(1.0, abs=1e-14)
    np.testing.assert_allclose(pi @ transition_matrix(order_two), pi, atol=1e-10)
    np.testing.assert_allclose(advance(order_two.probs, pi, 2), pi, atol=1e-12)
    assert abs(order_two.entropy - TINY_ORDER_2.entropy) < 1e-8
    every = np.arange(64)
    assert np.array_equal(context_index(context_tokens(every, 2, 8), 2, 8), every)
    assert context_index(np.array([3, 5]), 2, 8) == 3 * 8 + 5


def test_mixture_is_low_rank_in_probability_not_in_logits(mixture: Language) -> None:
    assert abs(mixture.entropy - SMALL.entropy) < 1e-8
    assert np.linalg.matrix_rank(mixture.probs, tol=1e-10) == SMALL.rank
    assert np.linalg.matrix_rank(double_centred(mixture.logits), tol=1e-8) > 4 * SMALL.rank


@pytest.mark.parametrize(
    ("field", "change"),
    [
        ("vocab", {"vocab": 1}),
        ("order", {"order": 0}),
        ("rank", {"rank": 65}),
        ("rank", {"rank": 0}),
        ("kind", {"kind": "softmax"}),
        ("profile", {"profile": "geometric:1.5"}),
        ("profile", {"profile": "power"}),
        ("profile", {"profile": "steep"}),
        ("zipf", {"zipf": -1.0}),
        ("entropy", {"entropy": math.log(64)}),
        ("entropy", {"entropy": 0.0}),
        ("seed", {"seed": -1}),
        ("entries", {"vocab": 512, "order": 3}),
    ],
)
def test_validation_names_the_field(field: str, change: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=field):
        replace(SMALL, **change).validate()
    with pytest.raises(ValueError, match=field):
        build_language(replace(SMALL, **change))


def test_unreachable_entropy_is_refused() -> None:
    with pytest.raises(ValueError, match="zipf"):  # the bias alone is already too peaked
        build_language(replace(SMALL, zipf=3.0, entropy=4.0))
    with pytest.raises(ValueError, match="cannot reach"):  # the Dirichlet weights' own entropy
        build_language(replace(SMALL, kind="mixture", rank=2, entropy=0.05))


# ---- sampling ------------------------------------------------------------------------------


def test_sampling_is_deterministic(small: Language) -> None:
    tokens = sample_documents(small, 50, 200, seed=3)
    assert tokens.shape == (50, 200) and tokens.dtype == np.uint16
    assert tokens.max() < 64
    assert tokens.tobytes() == sample_documents(small, 50, 200, seed=3).tobytes()
    assert not np.array_equal(tokens, sample_documents(small, 50, 200, seed=4))
    assert sample_documents(small, 0, 10, seed=3).shape == (0, 10)
    assert sample_documents(small, 3, 0, seed=3).shape == (3, 0)


@pytest.mark.parametrize("name", ["small", "order_two"])
def test_transitions_match_p_star(name: str, request: pytest.FixtureRequest) -> None:
    language: Language = request.getfixturevalue(name)
    tokens = sample_documents(language, documents=200, length=1001, seed=5)
    counts = transition_counts(language, tokens)  # 200 × 1000 − k·200 ≈ 200k transitions
    totals = counts.sum(axis=1, keepdims=True)
    assert counts.sum() == 200 * (1001 - language.spec.order)
    assert merged_chisquare(counts, totals * language.probs) > P_PASS
    # the test has power: the uniform distribution, or P* with its rows shuffled, is rejected
    uniform = np.full_like(language.probs, 1 / language.spec.vocab)
    assert merged_chisquare(counts, totals * uniform) < P_REJECT
    shuffled = language.probs[np.roll(np.arange(language.spec.contexts), 1)]
    assert merged_chisquare(counts, totals * shuffled) < P_REJECT


@pytest.mark.parametrize("name", ["small", "order_two"])
def test_documents_start_from_pi(name: str, request: pytest.FixtureRequest) -> None:
    language: Language = request.getfixturevalue(name)
    k = language.spec.order
    starts = sample_documents(language, documents=20_000, length=k, seed=6)
    contexts = context_index(starts, k, language.spec.vocab)
    counts = np.bincount(contexts, minlength=language.spec.contexts)[None, :]
    assert merged_chisquare(counts, 20_000 * language.stationary[None, :]) > P_PASS
    # …and not from the first context's successor distribution, say
    if k == 1:
        assert merged_chisquare(counts, 20_000 * language.probs[:1]) < P_REJECT


# ---- oracles -------------------------------------------------------------------------------


def test_rank_loss_reaches_entropy_from_r_star(
    small: Language, small_table: dict[int, dict[str, object]]
) -> None:
    entropy = small.entropy
    for d in (5, 6):  # d ≥ r* + 1
        assert abs(small_table[d]["best_rank_loss"] - entropy) < 1e-4
    # d = r* already suffices for the logit kind, exactly: the free bias carries the Zipf bias
    # and the factors carry s·UΣBᵀ (the SVD start is the answer, 0 iterations)
    assert abs(small_table[4]["best_rank_loss"] - entropy) < 1e-10
    for d in (1, 2):  # d ≤ r* − 2
        assert small_table[d]["best_rank_loss"] > entropy + 1e-3
    assert small_table[3]["best_rank_loss"] > entropy + 1e-4


def test_oracle_orderings(small: Language, small_table: dict[int, dict[str, object]]) -> None:
    losses = [small_table[d]["best_rank_loss"] for d in sorted(small_table)]
    assert all(a >= b - 1e-12 for a, b in itertools.pairwise(losses))
    for d, row in small_table.items():
        assert row["entropy"] == small.entropy
        assert row["best_rank_loss"] >= small.entropy - 1e-12
        assert row["head_family_loss"] >= row["best_rank_loss"] - 1e-9
        assert row["svd_bound_loss"] >= row["best_rank_loss"] - 1e-9
        assert row["best_rank_converged"] and row["head_family_converged"]
        if d - 1 in small_table:  # the head family at d is exactly the rank-(d − 1) family
            assert row["head_family_loss"] == pytest.approx(
                small_table[d - 1]["best_rank_loss"], abs=1e-9
            )


def test_svd_bound_is_exact_only_from_the_rank(small: Language) -> None:
    assert svd_bound_loss(small, 4) == pytest.approx(small.entropy, abs=1e-12)
    assert svd_bound_loss(small, 2) > unconstrained_rank_loss(small, 2).loss + 1e-3


def test_head_family_has_rank_d_minus_one_plus_a_bias() -> None:
    """Any W · LN(h_c) is a rank ≤ d − 1 matrix plus one shared row (the bias Wβ)."""
    generator = torch.Generator().manual_seed(0)
    d, contexts, vocab = 5, 40, 30
    h = torch.randn(contexts, d, generator=generator, dtype=torch.float64)
    h[:10] *= 1e-3  # var ~ eps: inside the sphere
    gamma, beta = (torch.randn(d, generator=generator, dtype=torch.float64) for _ in range(2))
    w = torch.randn(vocab, d, generator=generator, dtype=torch.float64)
    logits = (_layer_norm(h, gamma, beta, LN_EPS) @ w.T).numpy()
    shared = logits - (w @ beta).numpy()
    assert np.linalg.matrix_rank(shared, tol=1e-10) == d - 1


def test_head_family_never_beats_the_bound(small: Language) -> None:
    below = unconstrained_rank_loss(small, 2)
    # a random restart (cut short) and the sphere-only family (eps = 0) stay above rank d − 1
    restarted = head_family_loss(small, 3, start=below, restarts=1, max_rounds=3)
    assert restarted.starts == 2 and restarted.loss >= below.loss - 1e-9
    sphere = head_family_loss(small, 3, start=below, eps=0.0, max_rounds=5)
    assert below.loss - 1e-9 <= sphere.loss < math.inf
    with_bias = head_family_loss(small, 3, head_bias=True, start=below)
    assert with_bias.loss == pytest.approx(below.loss, abs=1e-9)


def test_mixture_needs_more_than_its_rank(mixture: Language) -> None:
    """The control: P* has rank r*, but a rank-r* logit head does not reach H*."""
    result = unconstrained_rank_loss(mixture, SMALL.rank)
    assert result.loss > mixture.entropy + 1e-4
    assert result.loss <= svd_bound_loss(mixture, SMALL.rank) + 1e-9
    assert result.converged
