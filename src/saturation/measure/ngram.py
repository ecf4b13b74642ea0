"""The dimensionality of the data (Godey et al. 2024, Fig. 7): how well a rank-d head could fit
the corpus's own next-token distributions.

For a token stream, W is the sparse C × V matrix whose rows are the empirical next-token
distributions of the C distinct (n−1)-token contexts, and W-error(d) = ‖σ_{d+1:}‖₂ / ‖W‖_F its
relative Eckart–Young error at rank d (`spectra.w_error`). Beyond the paper, the softmax
bottleneck bounds the rank of the logits, i.e. of log-probabilities up to a per-row constant, not
of the probabilities: `centred_log_probability_matrix` gives that matrix as an operator.

numpy and scipy only, float64; no Python loop runs over tokens or contexts, and nothing C × V is
ever dense, so a corpus with millions of contexts fits in memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import LinearOperator, aslinearoperator, svds

if TYPE_CHECKING:
    import pandas as pd

# At most this many rows or columns on the smaller side: the Gram matrix on that side is formed
# densely (128 MiB at 4096) and diagonalised exactly. Above it, ARPACK's top-k (`svds`).
GRAM_MAX_SIDE = 4096
# The seed of svds' starting vector: ARPACK's result depends on it, the measure must not.
SVDS_SEED = 0
# Memory for one block of the generic operator Gram (floats): bounds the C × b products.
_GRAM_BLOCK_FLOATS = 1 << 25

Method = Literal["auto", "gram", "svds"]
Matrix = sp.spmatrix | sp.sparray | LinearOperator | np.ndarray


@dataclass(frozen=True)
class NgramMatrix:
    """Next-token counts of the (n−1)-token contexts of a token stream.

    `counts` is C × V CSR (int64, canonical: sorted indices, no duplicates); row i counts what
    followed `contexts[i]`, and rows are in lexicographic order of the contexts, so the matrix
    is a function of the stream alone.
    """

    counts: sp.csr_matrix
    totals: np.ndarray  # (C,) int64: occurrences of each kept context
    contexts: np.ndarray  # (C, n−1): the context of each row, token ids
    n: int
    vocab_size: int
    min_count: int
    eos_id: int | None
    contexts_dropped: int  # distinct contexts seen fewer than min_count times
    ngrams_skipped_eos: int  # n-grams not counted: their context holds the EOS id

    @property
    def contexts_kept(self) -> int:
        """C, the number of rows."""
        return self.counts.shape[0]

    @property
    def nnz(self) -> int:
        """Distinct (context, next token) pairs kept."""
        return int(self.counts.nnz)

    @property
    def tokens_used(self) -> int:
        """Next-token occurrences counted in the kept rows (= Σ totals)."""
        return int(self.totals.sum())


def _context_keys(windows: list[np.ndarray], count: int, vocab_size: int) -> np.ndarray:
    """One int64 per context, equal iff the contexts are, and ordered as the contexts are
    lexicographically. Base-V digits when V^(n−1) fits in int64; otherwise the prefix so far is
    first replaced by its rank among distinct prefixes (np.unique), so the key stays below
    (#n-grams) · V: exact, collision-free, with no hashing."""
    keys = np.zeros(count, dtype=np.int64)
    fits = vocab_size ** len(windows) <= np.iinfo(np.int64).max
    if not fits and count * vocab_size > np.iinfo(np.int64).max:
        raise ValueError(f"{count:,} n-grams × V = {vocab_size:,} overflow int64 context keys")
    for column in windows:
        if not fits:
            keys = np.unique(keys, return_inverse=True)[1].astype(np.int64).reshape(-1)
        keys = keys * vocab_size + column.astype(np.int64, copy=False)
    return keys


def context_matrix(
    tokens: np.ndarray,
    n: int,
    vocab_size: int,
    min_count: int = 1,
    eos_id: int | None = None,
) -> NgramMatrix:
    """Count each token after its n−1 predecessors (the paper uses n = 5), keeping the contexts
    seen at least `min_count` times.

    `tokens` is a flat id stream, e.g. `saturation.tokens.open_tokens(path)` (see
    `context_matrix_from_file`). It is read as one sequence, but an n-gram whose context holds
    `eos_id` is skipped, so no context spans a document boundary; the next token may be EOS, as
    the end of a document is itself a prediction. Vectorised: a context becomes one integer
    key, np.unique groups them, and a COO → CSR conversion sums the counts.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if vocab_size < 1:
        raise ValueError(f"vocab_size must be positive, got {vocab_size}")
    if min_count < 1:
        raise ValueError(f"min_count must be >= 1, got {min_count}")
    tokens = np.asarray(tokens).reshape(-1)
    if tokens.size and not np.issubdtype(tokens.dtype, np.integer):
        raise ValueError(f"tokens must be integer ids, got dtype {tokens.dtype}")
    if tokens.size and (int(tokens.min()) < 0 or int(tokens.max()) >= vocab_size):
        raise ValueError(
            f"token ids span [{tokens.min()}, {tokens.max()}], outside [0, {vocab_size})"
        )
    width = n - 1
    count = max(tokens.size - width, 0)  # n-grams in the stream
    windows = [tokens[j : j + count] for j in range(width)]
    skipped = 0
    if eos_id is not None and width:
        clean = np.ones(count, dtype=bool)
        for column in windows:
            clean &= column != eos_id
        skipped = count - int(np.count_nonzero(clean))
        if skipped:
            windows = [column[clean] for column in windows]
            following = tokens[width : width + count][clean]
        else:
            following = tokens[width : width + count]
    else:
        following = tokens[width : width + count]
    following = np.asarray(following, dtype=np.int64)  # windows stay narrow: keys upcast

    keys = _context_keys(windows, following.size, vocab_size)
    _, first, row, occurrences = np.unique(
        keys, return_index=True, return_inverse=True, return_counts=True
    )
    row = row.reshape(-1)
    keep = occurrences >= min_count
    new_row = np.cumsum(keep) - 1  # old row -> kept row, for kept rows
    kept_ngrams = keep[row]
    rows = new_row[row[kept_ngrams]]
    columns = following[kept_ngrams]
    n_kept = int(np.count_nonzero(keep))

    counts = sp.coo_matrix(
        (np.ones(rows.size, dtype=np.int64), (rows, columns)), shape=(n_kept, vocab_size)
    ).tocsr()
    counts.sum_duplicates()  # canonical: summed, column indices sorted within rows
    id_dtype = np.min_scalar_type(vocab_size - 1)
    contexts = np.empty((n_kept, width), dtype=id_dtype)
    for j, column in enumerate(windows):
        contexts[:, j] = column[first[keep]]
    return NgramMatrix(
        counts=counts,
        totals=occurrences[keep].astype(np.int64),
        contexts=contexts,
        n=n,
        vocab_size=vocab_size,
        min_count=min_count,
        eos_id=eos_id,
        contexts_dropped=int(keep.size - n_kept),
        ngrams_skipped_eos=skipped,
    )


def context_matrix_from_file(bin_path: Path | str, n: int, min_count: int = 1) -> NgramMatrix:
    """`context_matrix` of a token file, with V and the EOS id from its header (imported here:
    `saturation.tokens` pulls in the tokenizer stack, which the matrix code does not need)."""
    from saturation.tokens import open_tokens, read_header

    header = read_header(Path(bin_path).with_suffix(".json"))
    return context_matrix(
        open_tokens(Path(bin_path)), n, header.vocab_size, min_count, eos_id=header.eos_id
    )


def probability_matrix(m: NgramMatrix) -> sp.csr_matrix:
    """W of the paper: each row divided by its total, the empirical P(next | context), float64."""
    counts = m.counts
    per_entry = np.repeat(m.totals, np.diff(counts.indptr)).astype(np.float64)
    return sp.csr_matrix(
        (counts.data / per_entry, counts.indices.copy(), counts.indptr.copy()), shape=counts.shape
    )


class CentredLogProbability(LinearOperator):
    """Row-centred log of the smoothed distributions, L − (L 1/V) 1ᵀ, as a C × V operator.

    With p̃ = (count + α)/(total + αV), L_cv = log(α/(total_c + αV)) + S_cv where
    S_cv = log(1 + count_cv/α) is nonzero only where a count is: the per-row constant cancels
    on centring, so the operator is S − s̄ 1ᵀ (s̄ the row means of S over V) and costs what the
    sparse S costs. Rows sum to zero, so its rank is at most V − 1 (`max_rank`).
    """

    def __init__(self, sparse: sp.csr_matrix) -> None:
        self.sparse = sp.csr_matrix(sparse, dtype=np.float64)
        rows, vocab = self.sparse.shape
        super().__init__(dtype=np.dtype(np.float64), shape=(rows, vocab))
        self.row_means = np.asarray(self.sparse.sum(axis=1)).reshape(-1) / vocab
        # Σ over stored entries of (S − s̄)² plus the s̄² of the V − nnz_c zeros of each row:
        # every term is non-negative, so no cancellation (unlike ΣS² − VΣs̄²)
        per_entry = np.repeat(self.row_means, np.diff(self.sparse.indptr))
        stored = np.bincount(
            np.repeat(np.arange(rows), np.diff(self.sparse.indptr)),
            weights=(self.sparse.data - per_entry) ** 2,
            minlength=rows,
        )
        empty = vocab - np.diff(self.sparse.indptr)
        self.frobenius_sq = float(np.sum(stored + empty * self.row_means**2))
        self.max_rank = min(rows, max(vocab - 1, 0))

    def _matvec(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        return self.sparse @ x - self.row_means * x.sum()

    def _rmatvec(self, y: np.ndarray) -> np.ndarray:
        y = np.asarray(y, dtype=np.float64).reshape(-1)
        return self.sparse.T @ y - self.row_means @ y

    def _matmat(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        return self.sparse @ x - np.outer(self.row_means, x.sum(axis=0))

    def _rmatmat(self, y: np.ndarray) -> np.ndarray:
        y = np.asarray(y, dtype=np.float64)
        return self.sparse.T @ y - (self.row_means @ y)[np.newaxis, :]

    def gram(self) -> np.ndarray:
        """The dense Gram matrix on the smaller side, exactly from S: MᵀM = SᵀS − a1ᵀ − 1aᵀ +
        (s̄ᵀs̄) 11ᵀ with a = Sᵀs̄ when V ≤ C, else MMᵀ = SSᵀ − V s̄s̄ᵀ."""
        s, mean = self.sparse, self.row_means
        rows, vocab = self.shape
        if vocab <= rows:
            a = s.T @ mean
            gram = (s.T @ s).toarray()
            gram -= a[:, np.newaxis] + a[np.newaxis, :]
            gram += mean @ mean
            return gram
        return (s @ s.T).toarray() - vocab * np.outer(mean, mean)


def centred_log_probability_matrix(m: NgramMatrix, smoothing: float) -> CentredLogProbability:
    """The logits the data asks for, up to the per-row constant a softmax ignores: row-centred
    log p̃, p̃ = (count + α)/(total + αV), α = `smoothing` > 0 (α keeps unseen tokens finite).

    Dense in principle (every entry of a row is nonzero after centring), so it is returned as
    a LinearOperator over the sparse S = log(1 + count/α), with its exact `frobenius_sq`."""
    if not smoothing > 0 or not np.isfinite(smoothing):
        raise ValueError(f"smoothing must be a positive finite α, got {smoothing}")
    counts = m.counts
    data = np.log1p(counts.data / float(smoothing))
    s = sp.csr_matrix((data, counts.indices.copy(), counts.indptr.copy()), shape=counts.shape)
    return CentredLogProbability(s)


def squared_frobenius(matrix: Matrix) -> float:
    """‖M‖²_F exactly: from the stored entries of a sparse matrix, or an operator's own
    `frobenius_sq` (an arbitrary operator has no cheap exact norm, so it is refused)."""
    if sp.issparse(matrix):
        data = sp.csr_matrix(matrix, dtype=np.float64)
        data.sum_duplicates()
        return float(np.sum(data.data**2))
    if isinstance(matrix, np.ndarray):
        return float(np.sum(np.asarray(matrix, dtype=np.float64) ** 2))
    value = getattr(matrix, "frobenius_sq", None)
    if value is None:
        raise TypeError(f"{type(matrix).__name__} has no exact `frobenius_sq`")
    return float(value)


def _gram(matrix: Matrix) -> np.ndarray:
    """Dense Gram matrix on the smaller side (MᵀM if V ≤ C, else MMᵀ), float64."""
    rows, cols = matrix.shape
    if sp.issparse(matrix):
        csr = sp.csr_matrix(matrix, dtype=np.float64)
        product = csr.T @ csr if cols <= rows else csr @ csr.T
        return product.toarray()
    if isinstance(matrix, np.ndarray):
        dense = np.asarray(matrix, dtype=np.float64)
        return dense.T @ dense if cols <= rows else dense @ dense.T
    if hasattr(matrix, "gram"):
        return np.asarray(matrix.gram(), dtype=np.float64)
    # a generic operator: MᵀM (or MMᵀ) one block of identity columns at a time
    op = aslinearoperator(matrix)
    forward, back = (op.matmat, op.rmatmat) if cols <= rows else (op.rmatmat, op.matmat)
    side, other = min(rows, cols), max(rows, cols)
    block = max(1, min(side, _GRAM_BLOCK_FLOATS // max(other, 1)))
    gram = np.empty((side, side), dtype=np.float64)
    for start in range(0, side, block):
        stop = min(side, start + block)
        eye = np.zeros((side, stop - start), dtype=np.float64)
        eye[np.arange(start, stop), np.arange(stop - start)] = 1.0
        gram[:, start:stop] = back(forward(eye))
    return (gram + gram.T) / 2  # symmetric up to rounding; eigvalsh reads one triangle


def singular_values(matrix: Matrix, k: int, method: Method = "auto") -> np.ndarray:
    """The top-k singular values, descending, float64.

    "gram": eigenvalues of the dense Gram matrix on the smaller side, exact but only for a side
    of at most a few thousand (V ≤ `GRAM_MAX_SIDE` for most vocabularies); σ = √λ, so a
    singular value below ~1e-8 σ₁ is rounding. "svds": ARPACK's top k from a seeded start
    (deterministic), needs k < min(C, V). "auto" takes "gram" when the smaller side allows.
    """
    rows, cols = matrix.shape
    side = min(rows, cols)
    if k < 0:
        raise ValueError(f"k must be non-negative, got {k}")
    if k > side:
        raise ValueError(f"k = {k} exceeds min(C, V) = {side}")
    if method == "auto":
        method = "gram" if side <= GRAM_MAX_SIDE else "svds"
    if k == 0:
        return np.zeros(0, dtype=np.float64)
    if method == "gram":
        eigenvalues = np.linalg.eigvalsh(_gram(matrix))[::-1][:k]
        return np.sqrt(np.clip(eigenvalues, 0.0, None))
    if method != "svds":
        raise ValueError(f"method must be 'auto', 'gram' or 'svds', got {method!r}")
    if k >= side:
        raise ValueError(f"svds needs k < min(C, V) = {side}, got k = {k}; use method='gram'")
    operand = matrix if isinstance(matrix, LinearOperator) else sp.csr_matrix(matrix, dtype=float)
    v0 = np.random.default_rng(SVDS_SEED).standard_normal(side)
    sigma = svds(operand, k=k, v0=v0, return_singular_vectors=False, solver="arpack")
    return np.sort(np.asarray(sigma, dtype=np.float64))[::-1]


def w_error_curve(
    matrix: Matrix, frobenius_sq: float, dims: list[int], method: Method = "auto"
) -> dict[int, float]:
    """W-error(d) for each d in `dims`: √max(0, ‖W‖²_F − Σ_{i≤d} σ_i²) / ‖W‖_F.

    The same as `spectra.w_error(σ, d)` on the full spectrum (‖σ‖₂ = ‖W‖_F, Eckart–Young), but
    the tail is never computed: the exact ‖W‖²_F (`squared_frobenius`) and the top max(dims)
    singular values suffice, which is what lets it scale to a large C and V. A d at or above the
    structural rank bound (min(C, V), or an operator's `max_rank`) gives exactly 0. Precision:
    the subtraction leaves an absolute error of about √(d·ε) ≈ 1e-8·√d on W-errors near 0.
    """
    if not dims:
        return {}
    if any(int(d) != d or d < 0 for d in dims):
        raise ValueError(f"dims must be non-negative integers, got {dims}")
    if not np.isfinite(frobenius_sq) or frobenius_sq <= 0:
        raise ValueError(f"W-error of a matrix with ‖W‖²_F = {frobenius_sq} is undefined")
    max_rank = int(getattr(matrix, "max_rank", min(matrix.shape)))
    k = min(max(int(d) for d in dims), max_rank)
    sigma = singular_values(matrix, k, method=method)
    head = np.concatenate([[0.0], np.cumsum(sigma**2)])  # head[d] = Σ_{i≤d} σ_i²
    norm = np.sqrt(frobenius_sq)
    curve = {}
    for d in dims:
        d = int(d)
        if d >= max_rank:
            curve[d] = 0.0
        else:
            curve[d] = float(np.sqrt(max(0.0, frobenius_sq - head[d])) / norm)
    return curve


WCURVE_COLUMNS = ["kind", "d", "w_error", "n", "contexts", "nnz"]


def dimensionality(
    bin_path: Path | str, n: int, min_count: int, smoothing: float, dims: list[int]
) -> tuple[pd.DataFrame, dict]:
    """The workflow's ngram stage: the W-error curve of a token file's next-token distributions
    (`probabilities`, the paper's Fig. 7) and of their row-centred smoothed log-probabilities
    (`logits`, what the softmax bottleneck constrains), one row per kind × d; and what it cost:
    C, nnz, the contexts dropped by `min_count`, seconds per step and the process's peak memory."""
    import resource
    import time

    import pandas as pd

    started = time.perf_counter()
    counts = context_matrix_from_file(bin_path, n, min_count)
    counted = time.perf_counter()
    probabilities = probability_matrix(counts)
    curves = {"probabilities": w_error_curve(probabilities, squared_frobenius(probabilities), dims)}
    measured = time.perf_counter()
    logits = centred_log_probability_matrix(counts, smoothing)
    curves["logits"] = w_error_curve(logits, logits.frobenius_sq, dims)
    finished = time.perf_counter()
    facts = {"n": n, "contexts": counts.contexts_kept, "nnz": counts.nnz}
    table = pd.DataFrame(
        [{"kind": kind, "d": d, "w_error": value} | facts
         for kind, curve in curves.items() for d, value in sorted(curve.items())],
        columns=WCURVE_COLUMNS,
    )  # fmt: skip
    info = facts | {
        "tokens": counts.tokens_used,
        "vocab_size": counts.vocab_size,
        "min_count": min_count,
        "contexts_dropped": counts.contexts_dropped,
        "ngrams_skipped_eos": counts.ngrams_skipped_eos,
        "smoothing": smoothing,
        "seconds": {
            "count": round(counted - started, 3),
            "probabilities": round(measured - counted, 3),
            "logits": round(finished - measured, 3),
        },
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
    }
    return table, info
