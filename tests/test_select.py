"""Which harvested checkpoints are evaluated (`evaluation.checkpoints`)."""

from __future__ import annotations

import pytest

from saturation.plan.select import select_checkpoints

STEPS = [0, 1, 2, 4, 8, 16, 32, 64, 100, 200, 300, 400]


@pytest.mark.parametrize(
    ("every_k", "last_n", "include", "best_step", "expected"),
    [
        (None, None, [], None, [400]),
        (4, None, [], None, [0, 8, 100, 400]),
        (None, 3, [], None, [200, 300, 400]),
        (None, None, ["best", "final", "64"], 100, [64, 100, 400]),
        (1, None, [], None, STEPS),
    ],
)
def test_select_checkpoints(
    every_k: int | None,
    last_n: int | None,
    include: list[str],
    best_step: int | None,
    expected: list[int],
) -> None:
    selected = select_checkpoints(STEPS[::-1], every_k, last_n, include, best_step)
    assert selected == expected


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"include": ["best"]}, "best_step"),
        ({"include": ["best"], "best_step": 7}, "not a harvested"),
        ({"include": ["latest"]}, "not 'final'"),
        ({"every_k": 0}, "at least 1"),
    ],
)
def test_select_checkpoints_rejects(kwargs: dict, message: str) -> None:
    arguments = {"every_k": None, "last_n": None, "include": []} | kwargs
    with pytest.raises(ValueError, match=message):
        select_checkpoints(STEPS, **arguments)
