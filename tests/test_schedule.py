"""Checkpoint and learning-rate schedules."""

from __future__ import annotations

import math

import pytest

from saturation.schedule import checkpoint_steps, learning_rate


def test_pythia_schedule_scaled_down() -> None:
    assert checkpoint_steps(1000, 512, 1000) == [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000]
    pythia = checkpoint_steps(143_000, 512, 1000)
    assert len(pythia) == 154  # Pythia's 154 checkpoints


def test_schedule_always_ends_at_the_last_step_and_takes_extras() -> None:
    assert checkpoint_steps(30, 4, 0, extra=[7]) == [0, 1, 2, 4, 7, 30]
    assert checkpoint_steps(10, 64, 4) == [0, 1, 2, 4, 8, 10]


def test_warmup_then_cosine_to_floor() -> None:
    steps, peak, warmup = 100, 1e-3, 10
    lrs = [learning_rate(u, steps, peak, warmup, 0.1) for u in range(steps)]
    assert lrs[0] == pytest.approx(peak / warmup)
    assert lrs[warmup - 1] == pytest.approx(peak)
    assert all(a >= b for a, b in zip(lrs[warmup:], lrs[warmup + 1 :], strict=False))
    # the floor is reached at update == steps, which training never runs (GPT-NeoX's convention);
    # the last update run, steps - 1, gets one cosine step above it
    last_progress = (steps - 1 - warmup) / (steps - warmup)
    last = peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * last_progress)))
    assert lrs[-1] == pytest.approx(last) and 0.1 * peak < lrs[-1] < 0.1003 * peak
    midpoint = warmup + (steps - warmup) // 2
    assert lrs[midpoint] == pytest.approx(peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5))))


def test_no_warmup() -> None:
    assert learning_rate(0, 10, 1.0, 0, 0.0) == pytest.approx(1.0)
