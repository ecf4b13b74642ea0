"""The best cross-entropy a rank-constrained head can reach on a synthetic language, computed
against the known P* and weighted by the stationary distribution:

    loss(Q) = Σ_c π_c Σ_v P*(v|c) (−log Q(v|c)) = H* + Σ_c π_c KL(P*(·|c) ‖ Q(·|c)),

so loss − H* is the price of the bottleneck, with no sampling noise.

Three families, each with a free logit vector per context (the trunk is assumed able to produce
any hidden state):

- `unconstrained_rank_loss`: logits X Yᵀ + 1 biasᵀ, X contexts × d, Y V × d.
- `head_family_loss`: GPT-NeoX's head, logits W · LN(h_c), no bias (optionally one).
- `svd_bound_loss`: the truncated weighted SVD of the true logits, a loose upper bound.

Everything is float64 torch, L-BFGS with a strong-Wolfe line search on the full "batch" of
contexts. The rank-d problem is not convex and has local minima: on V = 512, r* = 16 (flat
profile) at d = 4 the SVD start and the table's continuation end 0.9503 nats above H*, single
Gaussian starts 0.9464–0.9517, and `oracle_table(..., restarts=2)` 0.9438 (at d = 8: 0.38860
vs 0.38851). So every loss here is the best of several starts, an upper estimate of the true
minimum, uncertain by a few 1e-3 nats where d is well below r*; more `restarts` tighten it.

Timing, V = 512, k = 1, r* = 16, H* = 3, `oracle_table` over d ∈ {4, 8, 12, 14, 15, 16, 17, 18,
20, 24, 32}: 184 s with torch.set_num_threads(1) on an idle core, 210–300 s with torch's default
2 threads on 2 cores shared with other work. It is all in the 9 widths below r* (this table
also solves every d − 1): 2–3 starts each, 1000–2000 L-BFGS iterations per start to reach the
1e-10 stopping rule, ≈ 4.5 ms an iteration. Widths ≥ r* are exact at the first start (0 s).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from saturation.synthetic.language import Language

LN_EPS = 1e-5  # GPT-NeoX's layer_norm_eps

_REL_TOL = 1e-10
_MAX_ROUNDS = 200
_INNER_ITERATIONS = 100
_HISTORY = 50
_PI_FLOOR = 1e-150  # π_c is positive, but may underflow in a long, peaked chain
_EXACT = 1e-12  # relative distance to H* below which no other start can do better

Arrays = dict[str, np.ndarray]
Params = dict[str, torch.Tensor]
Evaluate = Callable[[Params], tuple[torch.Tensor, Params]]


@dataclass(frozen=True)
class OracleResult:
    """One optimised loss, the best over `starts` starting points. For that best run:
    `iterations` of L-BFGS; `converged` if an outer round (≤ 100 iterations) changed the loss
    by < 1e-10 relative before the round limit; `grad_norm`, the Euclidean norm of the gradient
    at the end in the optimiser's coordinates, `params` (the unconstrained family's are
    {"x": diag(√π) X, "y": Y, "bias": bias})."""

    loss: float
    iterations: int
    grad_norm: float
    converged: bool
    starts: int = 1
    params: Arrays = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True)
class _Target:
    """The language as float64 tensors; √π rescales the per-context parameters."""

    probs: torch.Tensor
    pi: torch.Tensor
    root_pi: torch.Tensor
    entropy: float

    @classmethod
    def of(cls, language: Language) -> _Target:
        pi = torch.from_numpy(np.ascontiguousarray(language.stationary, dtype=np.float64))
        probs = torch.from_numpy(np.ascontiguousarray(language.probs, dtype=np.float64))
        return cls(probs, pi, pi.clamp_min(_PI_FLOOR).sqrt(), language.entropy)

    def loss(self, logits: torch.Tensor) -> torch.Tensor:
        """Σ_c π_c (logsumexp(z_c) − P*_c · z_c): the cross-entropy, as each P*_c sums to 1."""
        return self.pi @ (torch.logsumexp(logits, dim=1) - (self.probs * logits).sum(dim=1))

    def exact(self, loss: float) -> bool:
        return loss - self.entropy <= _EXACT * self.entropy


def _tensors(arrays: Arrays) -> Params:
    return {
        k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float64)) for k, v in arrays.items()
    }


def _autograd(objective: Callable[[Params], torch.Tensor]) -> Evaluate:
    """An `Evaluate` (loss and gradient) from a differentiable objective."""

    def evaluate(params: Params) -> tuple[torch.Tensor, Params]:
        with torch.enable_grad():
            leaves = {name: t.detach().requires_grad_(True) for name, t in params.items()}
            loss = objective(leaves)
            grads = torch.autograd.grad(loss, list(leaves.values()))
        return loss.detach(), dict(zip(leaves, grads, strict=True))

    return evaluate


def _minimise(arrays: Arrays, evaluate: Evaluate, *, max_rounds: int = _MAX_ROUNDS) -> OracleResult:
    """L-BFGS in rounds of ≤ 100 iterations until a round changes the loss by < 1e-10 relative.
    Returns the start instead if the end is worse or non-finite (strong Wolfe accepts only
    decreasing steps, so that means something broke)."""
    params = {
        name: torch.from_numpy(np.array(a, dtype=np.float64)).requires_grad_(True)
        for name, a in arrays.items()
    }
    optimiser = torch.optim.LBFGS(
        list(params.values()),
        lr=1.0,
        max_iter=_INNER_ITERATIONS,
        history_size=_HISTORY,
        tolerance_grad=1e-14,
        tolerance_change=1e-16,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        loss, grads = evaluate(params)
        for name, p in params.items():
            p.grad = grads[name]
        return loss

    start = closure().item()
    previous, converged = start, False
    for _ in range(max_rounds):
        optimiser.step(closure)
        current = closure().item()
        if abs(previous - current) <= _REL_TOL * abs(current):
            converged = True
            break
        previous = current
    loss = closure().item()
    grad_norm = math.sqrt(sum(p.grad.square().sum().item() for p in params.values()))
    state = optimiser.state[optimiser.param_groups[0]["params"][0]]
    iterations = int(state.get("n_iter", 0))
    if not math.isfinite(loss) or loss > start:
        return OracleResult(start, iterations, math.nan, False, 1, dict(arrays))
    final = {name: p.detach().numpy().copy() for name, p in params.items()}
    return OracleResult(loss, iterations, grad_norm, converged, 1, final)


def _best(results: Sequence[OracleResult]) -> OracleResult:
    return replace(min(results, key=lambda r: r.loss), starts=len(results))


def _check_width(language: Language, d: int, least: int) -> None:
    most = min(language.probs.shape)
    if not least <= d <= most:
        raise ValueError(f"d must be an integer in [{least}, {most}], got {d}")


# ---- the unconstrained family: X Yᵀ + 1 biasᵀ ---------------------------------------------


def _centred_logits(language: Language) -> tuple[np.ndarray, np.ndarray]:
    """(L̃, b̄): the true logits less each row's mean over v (a per-context constant, invisible
    to the softmax), then less the π-weighted mean row b̄ (what a free bias carries)."""
    rows = language.logits - language.logits.mean(axis=1, keepdims=True)
    bias = language.stationary @ rows
    return rows - bias, bias


def _split(weighted: np.ndarray, d: int, bias: np.ndarray) -> Arrays:
    """Rank-d truncation of a row-weighted matrix diag(√π) Z, split evenly between the factors:
    X_w = U_d S_d^½, Y = V_d S_d^½."""
    u, s, vt = np.linalg.svd(weighted, full_matrices=False)
    half = np.sqrt(s[:d])
    return {"x": u[:, :d] * half, "y": vt[:d].T * half, "bias": bias}


def _svd_start(language: Language, d: int) -> Arrays:
    residual, bias = _centred_logits(language)
    root_pi = np.sqrt(np.maximum(language.stationary, _PI_FLOOR))
    return _split(root_pi[:, None] * residual, d, bias)


def _random_start(like: Arrays, rng: np.random.Generator) -> Arrays:
    """Gaussian factors with the Frobenius norms of `like` (the SVD start), its bias kept."""
    out = dict(like)
    for name in ("x", "y"):
        noise = rng.standard_normal(like[name].shape)
        out[name] = noise * np.linalg.norm(like[name]) / max(np.linalg.norm(noise), 1e-300)
    return out


def _resize(target: _Target, params: Arrays, d: int) -> Arrays:
    """A solution of another width moved to width d. Narrower: the truncated SVD of its own
    weighted logits. Wider: zero columns would be a saddle (X's gradient vanishes with Y's and
    vice versa), so the new columns are a small step along the top singular pairs of
    −∂loss/∂X_wYᵀ, which lowers the loss at second order."""
    width = params["x"].shape[1]
    if width >= d:
        return _split(params["x"] @ params["y"].T, d, params["bias"])
    p = _tensors(params)
    logits = ((p["x"] / target.root_pi[:, None]) @ p["y"].T + p["bias"]).requires_grad_(True)
    target.loss(logits).backward()
    u, s, vt = np.linalg.svd(-(logits.grad / target.root_pi[:, None]).numpy(), full_matrices=False)
    size = 1e-3 * np.sqrt(s[: d - width] / max(s[0], 1e-300))
    return {
        "x": np.hstack([params["x"], u[:, : d - width] * size]),
        "y": np.hstack([params["y"], vt[: d - width].T * size]),
        "bias": params["bias"],
    }


def _factor_evaluate(target: _Target) -> Evaluate:
    """Loss and gradient of X Yᵀ + 1 biasᵀ in the coordinates X_w = diag(√π) X, by hand (about
    twice as fast as autograd, and this is the inner loop). In X_w a context's parameters have
    curvature of order one whatever its weight; in X, rare contexts would barely move."""

    def evaluate(p: Params) -> tuple[torch.Tensor, Params]:
        with torch.no_grad():
            x = p["x"] / target.root_pi[:, None]
            logits = torch.addmm(p["bias"], x, p["y"].T)
            lse = torch.logsumexp(logits, dim=1)
            loss = target.pi @ (lse - (target.probs * logits).sum(dim=1))
            # ∂loss/∂logits = π_c (softmax − P*)
            g = torch.exp(logits.sub_(lse[:, None])).sub_(target.probs).mul_(target.pi[:, None])
            grads = {"x": (g @ p["y"]) / target.root_pi[:, None], "y": g.T @ x, "bias": g.sum(0)}
        return loss, grads

    return evaluate


def _solve_factors(
    target: _Target, starts: Sequence[Arrays], max_rounds: int = _MAX_ROUNDS
) -> OracleResult:
    """The best end over `starts`, stopping early once one is exact (nothing goes below H*)."""
    evaluate = _factor_evaluate(target)
    results: list[OracleResult] = []
    for start in starts:
        results.append(_minimise(start, evaluate, max_rounds=max_rounds))
        if target.exact(results[-1].loss):
            break
    return _best(results)


def svd_bound_loss(language: Language, d: int) -> float:
    """Loss of the truncated rank-d SVD of the π-weighted (rows × √π_c), centred true logits
    (`_centred_logits`), un-weighted and softmaxed, with the weighted mean row as the bias.

    An upper bound on `unconstrained_rank_loss` (it is its first start), and a loose one: the SVD
    minimises a squared error of logits, not the KL, so it spends rank on the large logit
    variations of tokens that carry little probability (the far tail of the vocabulary). Exact
    from d = the rank of the centred logits (r* for the logit kind) on.
    """
    _check_width(language, d, 0)
    target = _Target.of(language)
    with torch.no_grad():
        loss, _ = _factor_evaluate(target)(_tensors(_svd_start(language, d)))
    return loss.item()


def unconstrained_rank_loss(
    language: Language,
    d: int,
    *,
    start: OracleResult | None = None,
    restarts: int = 0,
    seed: int = 0,
    max_rounds: int = _MAX_ROUNDS,
) -> OracleResult:
    """min over X, Y, bias of the loss of logits X Yᵀ + 1 biasᵀ (X contexts × d, Y V × d): the
    best any width-d head with an output bias can do, whatever the trunk.

    Starts: the truncated weighted SVD (`svd_bound_loss`, so the result is never above that
    bound); `start`, a result of another width, padded or truncated to d (`_resize`; from d − 1
    this makes the loss non-increasing in d); `restarts` Gaussian ones (seed `seed`). Stops at
    the first start that reaches H* (the SVD start does for d ≥ the rank of the centred logits).
    """
    _check_width(language, d, 0)
    target = _Target.of(language)
    first = _svd_start(language, d)
    starts = [first]
    if start is not None:
        starts.append(_resize(target, start.params, d))
    rng = np.random.Generator(np.random.PCG64([language.spec.seed, seed, 2]))
    starts += [_random_start(first, rng) for _ in range(restarts)]
    return _solve_factors(target, starts, max_rounds)


# ---- the GPT-NeoX head: W · LN(h) ------------------------------------------------------------


def _layer_norm(
    h: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor, eps: float
) -> torch.Tensor:
    centred = h - h.mean(dim=1, keepdim=True)
    variance = centred.square().mean(dim=1, keepdim=True)
    return gamma * centred / torch.sqrt(variance + eps) + beta


def _layer_norm_basis(d: int) -> tuple[np.ndarray, np.ndarray]:
    """(u, E): u = 1/√d, and E (d × (d − 1)) an orthonormal basis of the zero-mean subspace."""
    basis, _ = np.linalg.qr(np.hstack([np.ones((d, 1)), np.eye(d)[:, : d - 1]]))
    return np.abs(basis[:, 0]), basis[:, 1:]


def _unweighted(params: Arrays, pi: np.ndarray) -> np.ndarray:
    return params["x"] / np.sqrt(np.maximum(pi, _PI_FLOOR))[:, None]


def _embed(params: Arrays, pi: np.ndarray, d: int, eps: float) -> Arrays:
    """A head-family point with exactly the logits of a width-(d − 1) factor solution.

    n_c = E x_c / κ, κ such that ‖n_c‖ ≤ √d / 2; h_c = λ_c n_c with λ_c² = eps / (1 − ‖n_c‖²/d),
    for which (h − h̄)/√(var h + eps) = n_c exactly; γ = 1, β = u, W = κ Y Eᵀ + bias uᵀ. Then
    W · LN(h_c) = W (n_c + u) = Y x_c + bias.
    """
    x, y, bias = _unweighted(params, pi), params["y"], params["bias"]
    unit, zero_mean = _layer_norm_basis(d)
    kappa = max(2 * np.linalg.norm(x, axis=1).max(initial=0.0) / math.sqrt(d), 1e-12)
    n = (x / kappa) @ zero_mean.T
    lam = np.sqrt(eps / (1 - np.square(n).sum(axis=1) / d))
    return {
        "h": lam[:, None] * n,
        "gamma": np.ones(d),
        "beta": unit,
        "w": kappa * y @ zero_mean.T + np.outer(bias, unit),
    }


def _sphere_starts(params: Arrays, pi: np.ndarray, d: int) -> list[Arrays]:
    """Two points of the sphere family (eps = 0) from a width-(d − 1) factor solution: its copy
    (`_embed`) pushed radially onto the sphere, and a large sphere through its best rank-(d − 2)
    truncation: a patch of a sphere of radius ρ ≫ ‖x_c‖ is nearly flat, so with
    n_c = √d (F x_c/ρ + e)/ν_c (F, e: d − 2 and 1 columns of E), ν_c = √(1 + ‖x_c‖²/ρ²) and
    W = ρ Y Fᵀ/√d + bias uᵀ the logits are Y x_c / ν_c + bias, within ‖x_c‖²/2ρ² of it."""
    radial = _embed(params, pi, d, 1.0)
    flat = np.linalg.norm(radial["h"], axis=1) == 0  # LN of a constant h is 0/0 at eps = 0
    radial["h"][flat] = np.eye(d)[0] - 1.0 / d
    truncated = _split(params["x"] @ params["y"].T, d - 2, params["bias"])
    x, y = _unweighted(truncated, pi), truncated["y"]
    unit, zero_mean = _layer_norm_basis(d)
    rho = max(100 * np.linalg.norm(x, axis=1).max(initial=0.0), 1e-12)
    nu = np.sqrt(1 + np.square(x).sum(axis=1) / rho**2)
    lifted = {
        "h": math.sqrt(d) * ((x / rho) @ zero_mean[:, :-1].T + zero_mean[:, -1]) / nu[:, None],
        "gamma": np.ones(d),
        "beta": unit,
        "w": rho * y @ zero_mean[:, :-1].T / math.sqrt(d) + np.outer(params["bias"], unit),
    }
    return [radial, lifted]


def head_family_loss(
    language: Language,
    d: int,
    head_bias: bool = False,
    *,
    eps: float = LN_EPS,
    start: OracleResult | None = None,
    restarts: int = 0,
    seed: int = 0,
    max_rounds: int = _MAX_ROUNDS,
) -> OracleResult:
    """min over h_c ∈ R^d (free per context), γ, β ∈ R^d, W ∈ R^{V×d} (and an output bias if
    `head_bias`) of the loss of logits W · LN(h_c), LN(x) = γ ⊙ (x − x̄)/√(var x + eps) + β:
    GPT-NeoX's final LayerNorm and untied, bias-free head.

    What it costs against `unconstrained_rank_loss`: n_c = (h_c − h̄_c)/√(var + eps) lies in the
    (d − 1)-dim zero-mean subspace, so W diag(γ) n_c has rank ≤ d − 1, and Wβ is a single shared
    vector: a bias, which takes the d-th direction of W's column space. So
    head(d) ≥ unconstrained(d − 1) (also with `head_bias`, which adds nothing new). The usual
    picture then adds that n_c lies on the sphere ‖n_c‖ = √d, costing up to one more dimension
    (a flat (d − 2)-dim slice is only reached as a limit of ever larger spheres): "1.5–2
    dimensions". That holds while var ≫ eps. But eps > 0 lets ‖n_c‖ take any value in [0, √d)
    (var ~ eps, h_c ~ 1e-3), and γ, W rescale freely, so every width-(d − 1) factor solution has
    an exact copy in this family (`_embed`): the infimum is head(d) = unconstrained(d − 1),
    one dimension, attained. `eps=0` gives the sphere-only family, which lies between
    unconstrained(d − 1) and unconstrained(d − 2); its optimum may lie at infinite scale, so its
    optimiser ends slowly and with a large gradient: read that loss as an upper estimate.

    Starts: the copy of `start` (an unconstrained result of width d − 1, computed here if None)
    for eps > 0, or the two `_sphere_starts` for eps = 0; then `restarts` Gaussian ones. The
    optimiser sees h_w = diag(√π) h.
    """
    _check_width(language, d, 2 if eps == 0 else 1)
    if eps < 0:
        raise ValueError(f"eps must be ≥ 0, got {eps}")
    target = _Target.of(language)
    pi = language.stationary

    def objective(p: Params) -> torch.Tensor:
        normed = _layer_norm(p["h"] / target.root_pi[:, None], p["gamma"], p["beta"], eps)
        logits = normed @ p["w"].T
        return target.loss(logits + p["bias"] if head_bias else logits)

    if start is None or start.params["x"].shape[1] != d - 1:
        start = unconstrained_rank_loss(language, d - 1, start=start)
    starts = [_embed(start.params, pi, d, eps)] if eps > 0 else _sphere_starts(start.params, pi, d)
    rng = np.random.Generator(np.random.PCG64([language.spec.seed, seed, 3]))
    contexts, vocab = language.probs.shape
    for _ in range(restarts):
        starts.append(
            {
                "h": rng.standard_normal((contexts, d)),
                "gamma": np.ones(d),
                "beta": np.zeros(d),
                "w": rng.standard_normal((vocab, d)) / math.sqrt(d),
            }
        )
    root_pi = np.sqrt(np.maximum(pi, _PI_FLOOR))[:, None]
    for point in starts:
        point["h"] = root_pi * point["h"]
        if head_bias:
            point["bias"] = np.zeros(vocab)
    evaluate = _autograd(objective)
    return _best([_minimise(point, evaluate, max_rounds=max_rounds) for point in starts])


# ---- the table ---------------------------------------------------------------------------


def _continued(
    target: _Target, language: Language, widths: Sequence[int], restarts: int
) -> dict[int, OracleResult]:
    """The unconstrained optimum at each width, by continuation from both sides: up (the SVD
    start, the previous width padded, `restarts` Gaussian starts), down (the next width
    truncated), then up again wherever a width ended above the one below it, so the losses are
    non-increasing in d."""
    rng = np.random.Generator(np.random.PCG64([language.spec.seed, 0, 2]))
    solved: dict[int, OracleResult] = {}
    for i, d in enumerate(widths):
        starts = [_svd_start(language, d)]
        if i > 0:
            starts.append(_resize(target, solved[widths[i - 1]].params, d))
        starts += [_random_start(starts[0], rng) for _ in range(restarts)]
        solved[d] = _solve_factors(target, starts)
    for i in range(len(widths) - 2, -1, -1):
        d, above = widths[i], solved[widths[i + 1]]
        # truncating an exact solution gives the SVD start again: nothing new to try
        if not target.exact(solved[d].loss) and not target.exact(above.loss):
            down = _solve_factors(target, [_resize(target, above.params, d)])
            solved[d] = _best_of(solved[d], down)
    for i in range(1, len(widths)):
        d, below = widths[i], solved[widths[i - 1]]
        if solved[d].loss > below.loss:
            up = _solve_factors(target, [_resize(target, below.params, d)])
            solved[d] = _best_of(solved[d], up)
    return solved


def _best_of(first: OracleResult, second: OracleResult) -> OracleResult:
    return replace(min(first, second, key=lambda r: r.loss), starts=first.starts + second.starts)


def oracle_table(
    language: Language, dims: Sequence[int], *, restarts: int = 0, head_restarts: int = 0
) -> list[dict[str, object]]:
    """One row per width d: H*, the three losses, and each optimiser's convergence record.

    The unconstrained losses come from `_continued` over every d and d − 1 (`restarts` random
    starts at each width the SVD start does not already solve exactly: each costs about as much as the table's other starts
    together, and may find a lower local minimum), and the head family starts from the width
    d − 1 result (plus `head_restarts` random starts, which cannot beat it but cost much time). A head-family loss below the unconstrained one at the
    same d is impossible (`head_family_loss`) and raises: one of the optimisers failed.
    """
    wanted = sorted({int(d) for d in dims})
    for d in wanted:
        _check_width(language, d, 1)
    target = _Target.of(language)
    widths = sorted({w for d in wanted for w in (d - 1, d)})
    solved = _continued(target, language, widths, restarts)
    rows: list[dict[str, object]] = []
    for d in wanted:
        best = solved[d]
        head = head_family_loss(language, d, start=solved[d - 1], restarts=head_restarts)
        if head.loss < best.loss - 1e-9:
            raise RuntimeError(
                f"d={d}: head-family loss {head.loss!r} below the unconstrained {best.loss!r}"
            )
        rows.append(
            {
                "d": d,
                "entropy": language.entropy,
                "best_rank_loss": best.loss,
                "head_family_loss": head.loss,
                "svd_bound_loss": svd_bound_loss(language, d),
                "best_rank_iterations": best.iterations,
                "best_rank_grad_norm": best.grad_norm,
                "best_rank_converged": best.converged,
                "best_rank_starts": best.starts,
                "head_family_iterations": head.iterations,
                "head_family_grad_norm": head.grad_norm,
                "head_family_converged": head.converged,
            }
        )
    return rows
