"""The baseline the training step is measured against (train_throughput.py) and checked against
(tests/test_fast_neox.py, tests/test_gpu.py): transformers' own forward, full logits, unfused
cross-entropy."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class TransformersLoss(nn.Module):
    """The call signature of saturation.model.neox.FastGPTNeoX, so one training step serves both."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits = self.model(input_ids=input_ids).logits
        return F.cross_entropy(logits.float().flatten(0, 1), targets.flatten())
