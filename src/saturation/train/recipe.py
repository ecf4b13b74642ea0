"""The optimisation recipe of a run, as the pretrain stage's recipe states it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TrainConfig:
    """Every field changes the trained weights (saturation.plan.pretrained.train_recipe)."""

    seed: int
    steps: int
    batch_size: int
    seq_len: int
    lr: float
    min_lr_ratio: float
    warmup_steps: int
    betas: tuple[float, float]
    eps: float
    weight_decay: float
    grad_clip: float
    checkpoint_steps: tuple[int, ...]
    precision: str = "auto"  # auto | fp32 | bf16
    compile: str = "auto"  # auto | on | off

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        values = dict(values)
        values["betas"] = tuple(values["betas"])
        values["checkpoint_steps"] = tuple(values["checkpoint_steps"])
        return cls(**values)
