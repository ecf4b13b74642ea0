"""A synthetic Markov language whose true next-token logits have a known rank, so the softmax
bottleneck can be measured against an exact answer instead of an estimate.

Two kinds of process, both order-k Markov chains over V symbols (a context is the last k tokens,
read as a base-V number with the oldest token most significant):

- ``"logit"``: log P*(·|c) = s · M[c] + b − log Z_c with M = U diag(σ) Bᵀ of rank r*, rescaled to a
  root-mean-square entry of 1 (so s is the RMS of the low-rank logit part), and b a Zipf-like bias
  b_v = −zipf · ln(rank_v + 1) over a random ranking of the vocabulary. A head of width r* with a
  free output bias represents P* exactly: the log-normaliser is constant per row, which the softmax
  ignores.
- ``"mixture"`` (the control): P*(·|c) = Σ_j w_cj q_j with r* fixed distributions
  q_j = softmax(s · g_j + b) and Dirichlet(1) weights w_c. The probability matrix has rank ≤ r*
  but the log-probability matrix has (numerically) full rank: low rank in the wrong space.

The scale s is solved for so that the entropy rate H* = Σ_c π_c H(P*(·|c)), π the stationary
distribution of the contexts, equals the requested value.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import optimize, special

KINDS = ("logit", "mixture")
MAX_ENTRIES = 2**27  # contexts × V: two float64 matrices of this size are 2 GiB

_ENTROPY_TOL = 1e-9
_STATIONARY_TOL = 1e-14
_STATIONARY_MAX_ITER = 100_000


def _integer(value: object) -> bool:
    """An int or numpy integer, not a bool (True would pass as a vocabulary of one)."""
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


@dataclass(frozen=True, kw_only=True)
class LanguageSpec:
    """Everything that determines a synthetic language; two equal specs build identical ones.

    Keyword-only: vocab, order and rank are all small integers and easy to swap by position.
    `profile` (the singular values of the logit factors) only shapes the ``"logit"`` kind.
    """

    vocab: int
    rank: int
    order: int = 1
    kind: str = "logit"
    profile: str = "flat"
    zipf: float = 1.0
    entropy: float = 3.0
    seed: int = 0

    @property
    def contexts(self) -> int:
        return self.vocab**self.order

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def validate(self) -> LanguageSpec:
        """Raise ValueError with one line naming the field and the problem; return self."""
        if not _integer(self.vocab) or self.vocab < 2:
            raise ValueError(f"vocab must be an integer ≥ 2, got {self.vocab!r}")
        if not _integer(self.order) or self.order < 1:
            raise ValueError(f"order must be an integer ≥ 1, got {self.order!r}")
        entries = self.contexts * self.vocab
        if entries > MAX_ENTRIES:
            raise ValueError(
                f"order {self.order} with vocab {self.vocab} gives {self.contexts} contexts × "
                f"{self.vocab} symbols = {entries} entries, above the limit of {MAX_ENTRIES}"
            )
        if not _integer(self.rank) or not 1 <= self.rank <= min(self.vocab, self.contexts):
            raise ValueError(
                f"rank must be an integer in [1, min(vocab, contexts)] = "
                f"[1, {min(self.vocab, self.contexts)}], got {self.rank!r}"
            )
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        profile_sigma(self.profile, self.rank)  # raises on a bad profile
        if not math.isfinite(self.zipf) or self.zipf < 0:
            raise ValueError(f"zipf must be a finite number ≥ 0, got {self.zipf!r}")
        if not 0 < self.entropy < math.log(self.vocab):
            raise ValueError(
                f"entropy must lie in (0, ln vocab) = (0, {math.log(self.vocab):.6g}), "
                f"got {self.entropy!r}"
            )
        if not _integer(self.seed) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        return self


@dataclass(frozen=True, eq=False)
class Language:
    """A built language: the exact process and the numbers the oracles compare against.

    `logits` are the true log-probabilities (each row log-normalised), contexts × V, float64.
    """

    spec: LanguageSpec
    logits: np.ndarray
    probs: np.ndarray
    stationary: np.ndarray
    scale: float
    entropy: float


def profile_sigma(profile: str, rank: int) -> np.ndarray:
    """The r* singular values of the logit factors, σ_1 = 1 (only the shape matters: the factor
    matrix is rescaled to unit RMS afterwards). "flat", "geometric:<ratio>" (σ_i = ratio^(i−1),
    0 < ratio ≤ 1) or "power:<exponent>" (σ_i = i^−exponent, exponent ≥ 0)."""
    name, _, argument = profile.partition(":")
    i = np.arange(1, rank + 1, dtype=np.float64)
    if name == "flat" and not argument:
        return np.ones(rank)
    try:
        value = float(argument)
    except ValueError:
        value = math.nan
    if name == "geometric" and 0 < value <= 1:
        return value ** (i - 1)
    if name == "power" and 0 <= value < math.inf:
        return i**-value
    raise ValueError(
        f"profile must be 'flat', 'geometric:<ratio in (0, 1]>' or 'power:<exponent ≥ 0>', "
        f"got {profile!r}"
    )


def context_index(tokens: np.ndarray, order: int, vocab: int) -> np.ndarray:
    """Context row of the k = `order` tokens on the last axis (oldest first): Σ_i t_i V^(k−1−i),
    so the newest token is the least significant digit and the successor of context c after
    token v is (c mod V^(k−1)) · V + v."""
    tokens = np.asarray(tokens)
    if tokens.shape[-1] != order:
        raise ValueError(f"the last axis must hold order = {order} tokens, got {tokens.shape}")
    index = np.zeros(tokens.shape[:-1], dtype=np.int64)
    for i in range(order):
        index = index * vocab + tokens[..., i].astype(np.int64)
    return index


def context_tokens(index: np.ndarray, order: int, vocab: int) -> np.ndarray:
    """Inverse of `context_index`: shape (..., order), oldest token first."""
    index = np.asarray(index, dtype=np.int64)
    digits = [(index // vocab**p) % vocab for p in range(order - 1, -1, -1)]
    return np.stack(digits, axis=-1)


def advance(probs: np.ndarray, pi: np.ndarray, order: int) -> np.ndarray:
    """One step of the chain over contexts: π'(c') = Σ_{c → c'} π(c) P(v|c). For k = 1 this is
    πP; for k > 1 the successor of (t_1, …, t_k) after v is (t_2, …, t_k, v), so summing out t_1
    is a reshape, and the sparse V^k × V^k matrix is never formed."""
    vocab = probs.shape[1]
    flow = pi[:, None] * probs  # (contexts, V): mass moving from c along v
    if order == 1:
        return flow.sum(axis=0)
    return flow.reshape(vocab, -1).sum(axis=0)


def stationary_distribution(
    probs: np.ndarray, order: int, start: np.ndarray | None = None
) -> np.ndarray:
    """π with π = advance(π), by power iteration (every transition probability is positive, so the
    chain is irreducible and aperiodic and the iteration converges). Raises if it has not
    converged to ‖Δπ‖₁ < 1e-14 within 100 000 steps, i.e. a chain too close to deterministic."""
    contexts = probs.shape[0]
    pi = np.full(contexts, 1.0 / contexts) if start is None else np.asarray(start, np.float64)
    for _ in range(_STATIONARY_MAX_ITER):
        new = advance(probs, pi, order)
        new /= new.sum()
        change = np.abs(new - pi).sum()
        pi = new
        if change < _STATIONARY_TOL:
            return pi
    raise ValueError(
        f"stationary distribution did not converge in {_STATIONARY_MAX_ITER} power iterations "
        f"(last ‖Δπ‖₁ = {change:.3g}): the chain mixes too slowly; raise the entropy"
    )


def _orthonormal(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    """Haar-random orthonormal columns: QR of a Gaussian with the signs of R's diagonal fixed."""
    q, r = np.linalg.qr(rng.standard_normal((rows, cols)))
    return q * np.where(np.diag(r) < 0, -1.0, 1.0)


class _Family:
    """The log-probabilities as a function of the scale s, for one seeded draw of the factors."""

    def __init__(self, spec: LanguageSpec) -> None:
        rng = np.random.Generator(np.random.PCG64(spec.seed))
        ranking = rng.permutation(spec.vocab)  # symbol v gets Zipf rank ranking[v]
        self.bias = -spec.zipf * np.log(ranking + 1.0)
        self.kind = spec.kind
        if spec.kind == "logit":
            u = _orthonormal(rng, spec.contexts, spec.rank)
            b = _orthonormal(rng, spec.vocab, spec.rank)
            factor = (u * profile_sigma(spec.profile, spec.rank)) @ b.T
            self.factor = factor * math.sqrt(factor.size) / np.linalg.norm(factor)
        else:
            self.directions = rng.standard_normal((spec.rank, spec.vocab))
            self.weights = rng.dirichlet(np.ones(spec.rank), size=spec.contexts)

    def logits(self, scale: float) -> np.ndarray:
        if self.kind == "logit":
            raw = scale * self.factor + self.bias
            return raw - special.logsumexp(raw, axis=1, keepdims=True)
        components = special.log_softmax(scale * self.directions + self.bias, axis=1)
        with np.errstate(divide="ignore"):
            logits = np.log(self.weights @ np.exp(components))
        if np.isfinite(logits).all():
            return logits
        # a probability underflowed: the same sum in log space, one component at a time
        logits = np.full_like(logits, -np.inf)
        for weight, component in zip(np.log(self.weights.T), components, strict=True):
            logits = np.logaddexp(logits, weight[:, None] + component[None, :])
        return logits


def _entropy_rate(logits: np.ndarray, pi: np.ndarray) -> float:
    return float(pi @ -(np.exp(logits) * logits).sum(axis=1))


def build_language(spec: LanguageSpec) -> Language:
    """Draw the factors from Generator(PCG64(spec.seed)) and solve for the scale s at which the
    entropy rate is spec.entropy (to 1e-9 nats), recomputing π at every trial s.

    H*(s) is not provably monotone (π moves with s) but decreases in practice, from the bias-only
    entropy at s = 0 towards 0 (logit kind) or the entropy of the Dirichlet weights (mixture kind)
    as s → ∞. The root is found by Brent's method on a bracket [0, s_hi], s_hi doubled until H* is
    below target; a target outside that range raises a ValueError saying which end was missed.
    """
    spec.validate()
    family = _Family(spec)
    cache: dict[str, np.ndarray] = {}

    def gap(scale: float) -> float:
        logits = family.logits(scale)
        pi = stationary_distribution(np.exp(logits), spec.order, cache.get("pi"))
        cache["pi"] = pi
        return _entropy_rate(logits, pi) - spec.entropy

    top = gap(0.0)
    if top < 0:
        raise ValueError(
            f"entropy {spec.entropy} is above {spec.entropy + top:.6g}, the entropy of the zipf "
            f"bias alone (s = 0): lower zipf or the entropy target"
        )
    high = 1.0
    while gap(high) > 0:
        high *= 2
        if high > 2**20:
            raise ValueError(
                f"entropy {spec.entropy} is below {spec.entropy + gap(high):.6g}, the entropy at "
                f"scale {high:g}: the {spec.kind} kind with rank {spec.rank} cannot reach it"
            )
    scale = optimize.brentq(gap, 0.0, high, xtol=1e-14, rtol=4 * np.finfo(float).eps)
    logits = family.logits(scale)
    probs = np.exp(logits)
    pi = stationary_distribution(probs, spec.order, cache.get("pi"))
    entropy = _entropy_rate(logits, pi)
    if abs(entropy - spec.entropy) > _ENTROPY_TOL:
        raise ValueError(f"entropy solve ended {entropy - spec.entropy:.3g} nats off target")
    return Language(spec, logits, probs, pi, float(scale), entropy)


def _inverse_cdf(cumulative: np.ndarray, rows: np.ndarray, u: np.ndarray) -> np.ndarray:
    """For each chain, the smallest v with cumulative[row, v] > u: a binary search run on all
    chains at once (log₂ V gathers of one value per chain instead of a V-wide row each)."""
    width = cumulative.shape[1]
    flat = cumulative.reshape(-1)
    base = rows * width
    low = np.zeros_like(rows)
    high = np.full_like(rows, width - 1)
    for _ in range(max(1, math.ceil(math.log2(width)))):
        middle = (low + high) // 2
        right = flat[base + middle] <= u
        low = np.where(right, middle + 1, low)
        high = np.where(right, high, middle)
    return low


def _cumulative(probs: np.ndarray) -> np.ndarray:
    cumulative = np.cumsum(probs, axis=-1)
    cumulative[..., -1] = 1.0  # u < 1 always lands in the row, whatever the rounding
    return cumulative


def sample_documents(language: Language, documents: int, length: int, seed: int) -> np.ndarray:
    """`documents` independent chains of `length` tokens, the first k drawn as one context from π,
    so every position is distributed as the stationary process.

    All chains are stepped together (one uniform per chain per step), so the cost is `length`
    vectorised steps: use many documents, not one long one. The stream is
    Generator(PCG64([spec.seed, seed, 1])), never the one that built the language, and the same
    arguments give a byte-identical array: uint16 for V ≤ 65536, else uint32.
    """
    spec = language.spec
    if documents < 0 or length < 0:
        raise ValueError(f"documents and length must be ≥ 0, got {documents} and {length}")
    if seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed}")
    rng = np.random.Generator(np.random.PCG64([spec.seed, seed, 1]))
    dtype = np.uint16 if spec.vocab <= 2**16 else np.uint32
    out = np.empty((documents, length), dtype=dtype)
    if documents == 0 or length == 0:
        return out
    order = spec.order
    start = _inverse_cdf(
        _cumulative(language.stationary)[None, :],
        np.zeros(documents, dtype=np.int64),
        rng.random(documents),
    )
    first = min(order, length)
    out[:, :first] = context_tokens(start, order, spec.vocab)[:, :first]
    cumulative = _cumulative(language.probs)
    keep = spec.vocab ** (order - 1)
    context = start
    for t in range(order, length):
        token = _inverse_cdf(cumulative, context, rng.random(documents))
        out[:, t] = token
        context = (context % keep) * spec.vocab + token
    return out
