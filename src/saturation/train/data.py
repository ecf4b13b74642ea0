"""The training data order: a pure function of (seed, step), which makes resumption exact."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch


class TokenBatches:
    """Training sequences as a pure function of (seed, step).

    The token stream is cut into `n_chunks` windows of `seq_len + 1` tokens (stride `seq_len`,
    so every token is a target once per epoch). Sample g = step·B + b is chunk
    perm_e[g mod n_chunks] of epoch e = g // n_chunks, with perm_e drawn from (seed, e).
    """

    def __init__(self, tokens: np.ndarray, seq_len: int, batch_size: int, seed: int) -> None:
        self.tokens = tokens
        self.seq_len = seq_len
        self.batch_size = batch_size
        self.seed = seed
        self.n_chunks = (len(tokens) - 1) // seq_len
        if self.n_chunks < 1:
            raise ValueError(f"{len(tokens)} training tokens are fewer than seq_len + 1")

    @lru_cache(maxsize=4)  # noqa: B019 - one instance per run; a few epochs' permutations
    def _permutation(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(self.n_chunks)

    def chunk_ids(self, step: int) -> np.ndarray:
        samples = step * self.batch_size + np.arange(self.batch_size)
        epochs, positions = np.divmod(samples, self.n_chunks)
        return np.array(
            [self._permutation(int(e))[p] for e, p in zip(epochs, positions, strict=True)]
        )

    def batch(self, step: int) -> torch.Tensor:
        starts = self.chunk_ids(step) * self.seq_len
        rows = [self.tokens[s : s + self.seq_len + 1] for s in starts]
        return torch.from_numpy(np.stack(rows).astype(np.int64))  # (B, T + 1)
