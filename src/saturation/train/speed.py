"""The fast paths a run takes on its device, chosen once and logged, so a slow run explains itself."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from saturation.train.recipe import TrainConfig


@dataclass
class SpeedPath:
    """The fast paths this run took."""

    device: str
    precision: str  # resolved: fp32 | bf16
    autocast_dtype: str | None
    compiled: bool
    fused_adamw: bool
    threads: int
    notes: list[str] = field(default_factory=list)


def resolve_precision(requested: str, device: torch.device) -> str:
    """`auto` is bf16 autocast on a GPU and fp32 elsewhere: the recipe (and so the id) says `auto`,
    the run records what it resolved to, and a resume must resolve to the same."""
    if requested == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    return requested


def choose_speed_path(cfg: TrainConfig, device: torch.device, threads: int) -> SpeedPath:
    on_gpu = device.type == "cuda"
    precision = resolve_precision(cfg.precision, device)
    autocast = "bfloat16" if precision == "bf16" else None
    # auto compiles on CPU too: 1.07-1.60x per step over eager at the default shapes, for 5-25 s
    # of compiling; about even over the default's 400 steps, a gain beyond (benchmarks/RESULTS.md)
    compiled = cfg.compile == "on" or (cfg.compile == "auto" and device.type in ("cuda", "cpu"))
    path = SpeedPath(str(device), precision, autocast, compiled, fused_adamw=on_gpu,
                     threads=threads)  # fmt: skip
    if compiled and cfg.compile == "auto":
        import torch._dynamo as dynamo  # `import torch._dynamo` would make `torch` local here

        dynamo.config.suppress_errors = True  # no compiler on this node: train eagerly
        path.notes.append("torch.compile, eager fallback on compiler errors")
    if on_gpu:  # TF32 rounds fp32 matmul inputs to 10 mantissa bits: fine under bf16, not fp32
        tf32 = precision != "fp32"
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
        if tf32:
            path.notes.append("tf32 matmuls")
    return path
