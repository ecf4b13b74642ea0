"""One optimizer update: the loss through the model's fused head, backward, clip, AdamW."""

from __future__ import annotations

import torch

from saturation.train.recipe import TrainConfig


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig, fused: bool) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only (GPT-NeoX/Pythia: not on biases and norms)."""
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, fused=fused)


def next_token_loss(
    step_fn: torch.nn.Module, batch: torch.Tensor, autocast: str | None
) -> torch.Tensor:
    """Mean cross-entropy of predicting batch[:, 1:] from batch[:, :-1], in fp32.

    `step_fn` is a FastGPTNeoX (maybe DDP-wrapped, maybe compiled): the fused head + loss.
    """
    dtype = getattr(torch, autocast) if autocast else None
    with torch.autocast(batch.device.type, dtype=dtype, enabled=autocast is not None):
        return step_fn(batch[:, :-1], batch[:, 1:])


def optimizer_step(
    step_fn: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: torch.Tensor,
    grad_clip: float,
    autocast: str | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One update: loss, backward, global-norm clip, AdamW. Returns (loss, grad norm), unsynced."""
    loss = next_token_loss(step_fn, batch, autocast)
    loss.backward()
    params = [p for group in optimizer.param_groups for p in group["params"]]
    grad_norm = torch.nn.utils.clip_grad_norm_(params, grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.detach(), grad_norm
