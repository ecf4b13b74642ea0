"""Anisotropy: the O(n·d) formula against the O(n²) definition, streamed and per depth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import GPTNeoXForCausalLM

from saturation.measure.anisotropy import AnisotropyMeter
from saturation.measure.heldout import heldout_windows, measure_loss_and_anisotropy
from saturation.model.weights import load_fast_neox
from saturation.tokens import open_tokens


def anisotropy(states: np.ndarray) -> float:
    """The meter's A(H) of one batch of states (n × d)."""
    meter = AnisotropyMeter()
    meter.add(0, states)
    return meter.values()[0]


def pairwise_definition(states: np.ndarray) -> float:
    """A(H) = 1/(n² − n) Σ_{i≠j} cos(h_i, h_j), written out in float64."""
    h = states.astype(np.float64)
    unit = h / np.linalg.norm(h, axis=1, keepdims=True)
    cos = unit @ unit.T
    n = len(h)
    return float((cos.sum() - np.trace(cos)) / (n * n - n))


@pytest.mark.parametrize("seed", range(4))
def test_matches_the_pairwise_definition(seed: int) -> None:
    rng = np.random.default_rng(seed)
    states = rng.normal(loc=rng.uniform(-1, 1), size=(300, 24)).astype(np.float32)
    assert anisotropy(states) == pytest.approx(pairwise_definition(states), abs=1e-10)


def test_extremes_and_streaming() -> None:
    same = np.tile(np.array([[1.0, 2.0, 3.0]]), (50, 1))
    assert anisotropy(same) == pytest.approx(1.0)
    opposite = np.array([[1.0, 0.0], [-1.0, 0.0]])
    assert anisotropy(opposite) == pytest.approx(-1.0)
    states = np.random.default_rng(9).normal(size=(4, 10, 8))  # (B, T, d)
    meter = AnisotropyMeter()
    for row in states:
        meter.add(0, row[None])
    assert meter.values()[0] == pytest.approx(anisotropy(states.reshape(-1, 8)), abs=1e-12)
    with pytest.raises(ValueError):
        anisotropy(np.ones((1, 3)))


def test_zero_states_are_left_out_of_h() -> None:
    """cos(0, ·) is undefined: a zero row leaves H, it does not count in n."""
    rng = np.random.default_rng(3)
    states = rng.normal(loc=0.5, size=(40, 6))
    with_zeros = states.copy()
    with_zeros[[0, 17, 39]] = 0.0
    nonzero = np.delete(states, [0, 17, 39], axis=0)
    assert anisotropy(with_zeros) == pytest.approx(pairwise_definition(nonzero), abs=1e-12)
    same = np.tile(np.array([[1.0, 2.0, 3.0]]), (10, 1))
    same[0] = 0.0  # counted in n, this gave 72/90 = 0.8 for nine identical directions
    assert anisotropy(same) == pytest.approx(1.0)
    meter = AnisotropyMeter()
    meter.add(0, with_zeros.reshape(4, 10, 6))
    meter.add(1, states[None])
    assert meter.values()[0] == pytest.approx(pairwise_definition(nonzero), abs=1e-12)
    assert meter.zero_rows() == {0: 3}
    with pytest.raises(ValueError, match="two non-zero"):
        anisotropy(np.vstack([np.zeros((5, 3)), np.ones((1, 3))]))
    nan_row = states.copy()
    nan_row[4, 0] = np.nan  # not mistaken for a zero row: it shows
    assert np.isnan(anisotropy(nan_row))


def test_every_depth_is_measured(tiny_run: Path, tiny_data: dict) -> None:
    """Ours (read without transformers) tapped at every depth vs transformers' hidden states."""
    checkpoint = tiny_run / "checkpoints" / "step12"
    windows = heldout_windows(open_tokens(tiny_data["val"]), seq_len=16, n_tokens=128)
    measured = measure_loss_and_anisotropy(load_fast_neox(checkpoint), windows, batch_size=3)
    model = GPTNeoXForCausalLM.from_pretrained(checkpoint).eval()
    layers, width = model.config.num_hidden_layers, model.config.hidden_size
    assert sorted(measured.anisotropy) == list(range(layers + 2))
    last_layer: list[torch.Tensor] = []
    model.gpt_neox.layers[-1].register_forward_hook(
        lambda _m, _i, output: last_layer.append(output[0] if isinstance(output, tuple) else output)
    )
    with torch.no_grad():
        out = model.gpt_neox(input_ids=torch.from_numpy(windows[:, :-1]), output_hidden_states=True)
    # transformers' hidden_states: the embeddings, each layer's input, then the final norm's output
    # in place of the last layer's, which the hook above reads
    reference = {0: out.hidden_states[0], layers: last_layer[0], layers + 1: out.last_hidden_state}
    reference.update({depth: out.hidden_states[depth] for depth in range(1, layers)})
    for depth, states in reference.items():
        expected = pairwise_definition(states.reshape(-1, width).numpy())
        assert measured.anisotropy[depth] == pytest.approx(expected, abs=1e-6), depth
