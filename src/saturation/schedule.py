"""Pure schedules of a training run: when to checkpoint and what the learning rate is.

Kept free of torch so the workflow can plan checkpoints at parse time.
"""

from __future__ import annotations

import math
from collections.abc import Iterable


def checkpoint_steps(
    steps: int, log_until: int, every: int, extra: Iterable[int] = ()
) -> list[int]:
    """Pythia's schedule scaled down: 0, 1, 2, 4, … up to `log_until`, then every `every` steps.

    The last step is always included, so a run's final weights are always harvested.
    """
    chosen = {0, steps, *extra}
    power = 1
    while power <= min(log_until, steps):
        chosen.add(power)
        power *= 2
    if every > 0:
        chosen.update(range(every, steps + 1, every))
    return sorted(chosen)


def learning_rate(
    update: int, steps: int, peak_lr: float, warmup_steps: int, min_lr_ratio: float
) -> float:
    """LR for the `update`-th optimizer step (0-based): linear warmup, then cosine to min_lr_ratio×peak.

    The cosine is GPT-NeoX's AnnealingLR (megatron/learning_rates.py): it reaches the floor at
    update == steps, one past the last update run, so update steps - 1 gets slightly more
    (0.1017×peak at 40 steps, warmup 4). The warmup is NeoX's shifted by one: NeoX's first
    update gets LR 0 (update / warmup), ours peak / warmup, so no update is wasted.
    """
    if update < warmup_steps:
        return peak_lr * (update + 1) / warmup_steps
    decay_steps = max(1, steps - warmup_steps)
    progress = min(1.0, (update - warmup_steps) / decay_steps)
    cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
    return peak_lr * (min_lr_ratio + (1.0 - min_lr_ratio) * cosine)
