"""Anisotropy of hidden states (docs/SCIENCE-NOTES.md): mean pairwise cosine over i ≠ j.

Computed in O(n·d) from the sum of unit vectors, A = (‖Σ ĥ_i‖² − n) / (n² − n), and streamed over
batches, so the sample size is limited by time, not by an n × n matrix.
"""

from __future__ import annotations

import numpy as np


def _unit_rows(states: np.ndarray) -> np.ndarray:
    """The rows of `states` scaled to unit length, all-zero rows dropped.

    A zero vector has no direction, so its cosine with anything is undefined: it is left out of
    H. Kept as a zero "unit" vector it would still count in n and pull A towards 0 by
    (n − z)(n − z − 1) / (n(n − 1)) for z zero rows. NaN rows are kept, so they show as NaN.
    """
    norms = np.linalg.norm(states, axis=1)
    keep = norms != 0
    if keep.all():  # the usual case: no copy of the batch
        return states / norms[:, None]
    return states[keep] / norms[keep, None]


def _from_sum(total: np.ndarray, n: int) -> float:
    if n < 2:
        raise ValueError(f"anisotropy needs at least two non-zero hidden states, got {n}")
    return float((total @ total - n) / (n * n - n))


class AnisotropyMeter:
    """Streams hidden states of several layers batch by batch; keeps one d-vector per layer."""

    def __init__(self) -> None:
        self._sums: dict[int, np.ndarray] = {}
        self._counts: dict[int, int] = {}
        self._zero_rows: dict[int, int] = {}

    def add(self, layer: int, states: np.ndarray) -> None:
        flat = np.asarray(states, dtype=np.float64).reshape(-1, states.shape[-1])  # (B·T, d)
        unit = _unit_rows(flat)
        self._sums[layer] = self._sums.get(layer, 0.0) + unit.sum(axis=0)
        self._counts[layer] = self._counts.get(layer, 0) + len(unit)
        self._zero_rows[layer] = self._zero_rows.get(layer, 0) + len(flat) - len(unit)

    def values(self) -> dict[int, float]:
        return {
            layer: _from_sum(self._sums[layer], self._counts[layer]) for layer in sorted(self._sums)
        }

    def zero_rows(self) -> dict[int, int]:
        """All-zero states left out of each layer's A, for the caller to report (normally none)."""
        return {layer: z for layer, z in sorted(self._zero_rows.items()) if z}
