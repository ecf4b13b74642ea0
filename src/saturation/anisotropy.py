"""Anisotropy of hidden states (SCIENCE.md §2): mean pairwise cosine similarity over i ≠ j.

Computed in O(n·d) from the sum of unit vectors, A = (‖Σ ĥ_i‖² − n) / (n² − n), and streamed over
batches, so the sample size is limited by time, not by an n × n matrix.
"""

from __future__ import annotations

import numpy as np


def anisotropy(states: np.ndarray) -> float:
    """A(H) for the rows of `states` (n × d), in float64."""
    unit = _unit_rows(np.asarray(states, dtype=np.float64))
    return _from_sum(unit.sum(axis=0), len(unit))


def _unit_rows(states: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(states, axis=1, keepdims=True)
    return states / np.maximum(norms, np.finfo(np.float64).tiny)


def _from_sum(total: np.ndarray, n: int) -> float:
    if n < 2:
        raise ValueError("anisotropy needs at least two hidden states")
    return float((total @ total - n) / (n * n - n))


class AnisotropyMeter:
    """Streams hidden states of several layers batch by batch; keeps one d-vector per layer."""

    def __init__(self) -> None:
        self._sums: dict[int, np.ndarray] = {}
        self._counts: dict[int, int] = {}

    def add(self, layer: int, states: np.ndarray) -> None:
        flat = np.asarray(states, dtype=np.float64).reshape(-1, states.shape[-1])  # (B·T, d)
        unit = _unit_rows(flat)
        self._sums[layer] = self._sums.get(layer, 0.0) + unit.sum(axis=0)
        self._counts[layer] = self._counts.get(layer, 0) + len(unit)

    def values(self) -> dict[int, float]:
        return {
            layer: _from_sum(self._sums[layer], self._counts[layer]) for layer in sorted(self._sums)
        }
