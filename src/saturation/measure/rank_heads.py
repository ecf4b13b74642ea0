"""Rank-constrained heads on a frozen model (paper §5, Fig. 6, 8 and 9).

For a checkpoint's cached states (saturation.measure.states), the head is replaced by
W = A B (A: V × r, B: r × d) for every r of a grid, and only A and B are trained, on the `fit`
states; the learning rate is chosen per (r, init) on one half of the held-out states and the
chosen head scored (loss, accuracy) on the other half. Two references share the figure: the
checkpoint's own head on the same states, and a full-rank W (V × d) retrained exactly as the
low-rank ones, so the effect of the rank is not confused with that of retraining.

Decisions where the paper is silent (docs/DESIGN-NOTES.md, "Rank-constrained heads"):
- init `normal` is the paper's A, B ~ N(0, 1) (W ~ N(0, 1) for the full-rank head); `scaled`
  is A ~ N(0, 1/r), B ~ N(0, 1/d) (W ~ N(0, 1/d)), which starts the logits at unit variance;
- AdamW (β = 0.9, 0.95), linear warmup then cosine to `min_lr_ratio` × peak
  (saturation.schedule.learning_rate), minibatches of `batch_tokens` rows drawn with
  replacement from the fit states, the same draws for every configuration (`seed`);
- the chosen learning rate is the one of lowest final select-half loss; every learning rate's
  curve (train loss, select-half loss every `eval_every` updates) is kept.

Training runs the fused, chunked head + cross-entropy (saturation.model.losses) on B·h, so the
V-wide logits exist one chunk of rows at a time and a V = 50k head never forms (N, V) logits.

Every configuration is its own record in the measurement store (kind "heads"), keyed by the
checkpoint, the states' recipe and the configuration: a rank or learning rate added to the grid
trains only the new heads, and a killed job loses at most the head it was training.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from saturation.schedule import learning_rate

if TYPE_CHECKING:
    import torch

    from saturation.measure.states import HiddenStates

INITS = ("normal", "scaled")
LOW_RANK, FULL_RANK, OWN = "low_rank", "full_rank", "own"  # the `head` column of the tables
CURVE_ARRAY = "curve"  # (evaluations, 3): update, train loss since the last, select-half loss


@dataclass(frozen=True)
class HeadTraining:
    """How every head of a sweep is trained (the `heads.train` config section)."""

    steps: int
    batch_tokens: int
    warmup_fraction: float
    min_lr_ratio: float
    weight_decay: float
    eval_every: int
    seed: int

    @classmethod
    def of(cls, settings: Mapping[str, Any]) -> HeadTraining:
        return cls(**{field: settings[field] for field in cls.__dataclass_fields__})


@dataclass(frozen=True)
class HeadConfig:
    """One head of a sweep: a rank (None: the full-rank W), an init and a peak learning rate."""

    rank: int | None
    init: str
    lr: float

    @property
    def head(self) -> str:
        return FULL_RANK if self.rank is None else LOW_RANK

    def recipe(self) -> dict[str, Any]:
        return {"head": self.head, "rank": self.rank, "init": self.init, "lr": self.lr}


def ranks_for(width: int, ranks: list[int] | None) -> list[int]:
    """The ranks swept on a width-d model: the configured ones below d, and d itself; by default
    (None) the powers of two below d, and d."""
    grid = ranks if ranks is not None else [2**i for i in range(max(1, width).bit_length())]
    return sorted({r for r in grid if r < width} | {width})


def sweep_configs(
    ranks: list[int], inits: list[str], lrs: list[float], full_rank: bool = True
) -> list[HeadConfig]:
    """Every (rank, init, lr) of the grid, and the full-rank head per (init, lr)."""
    heads: list[int | None] = [*sorted(set(ranks)), *([None] if full_rank else [])]
    return [HeadConfig(r, init, lr) for r in heads for init in inits for lr in lrs]


class FactorisedHead:
    """W = A B (or W alone): its parameters, logits and fused training loss."""

    def __init__(
        self,
        config: HeadConfig,
        vocab: int,
        width: int,
        generator: torch.Generator,
        device: torch.device | str = "cpu",
    ):
        """Drawn from `generator` on the CPU (the same head on any device), then moved."""
        import torch

        if config.init not in INITS:
            raise ValueError(f"init {config.init!r} is not one of {INITS}")
        scaled = config.init == "scaled"

        def draw(rows: int, cols: int, fan_in: int) -> torch.nn.Parameter:
            scale = 1 / math.sqrt(fan_in) if scaled else 1.0
            drawn = torch.randn(rows, cols, generator=generator) * scale
            return torch.nn.Parameter(drawn.to(device))

        if config.rank is None:
            self.a, self.b = draw(vocab, width, width), None
        else:
            self.a, self.b = draw(vocab, config.rank, config.rank), draw(config.rank, width, width)

    def parameters(self) -> list[torch.nn.Parameter]:
        return [p for p in (self.a, self.b) if p is not None]

    def project(self, hidden: torch.Tensor) -> torch.Tensor:
        """B·h (r-deep), or h for the full-rank head."""
        return hidden if self.b is None else hidden @ self.b.t()

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.project(hidden) @ self.a.t()

    def loss(self, hidden: torch.Tensor, targets: torch.Tensor, chunk: int) -> torch.Tensor:
        from saturation.model.losses import linear_cross_entropy

        return linear_cross_entropy(self.project(hidden), self.a, targets, chunk)


@dataclass(frozen=True)
class TrainedHead:
    select_loss: float  # final, on the select half: what chooses the learning rate
    loss: float  # on the score half
    accuracy: float
    train_loss: float  # the mean over the last evaluation interval
    seconds: float
    curve: np.ndarray  # CURVE_ARRAY


def _evaluate(
    head: FactorisedHead, states: torch.Tensor, targets: torch.Tensor, chunk: int
) -> tuple[float, float]:
    import torch

    from saturation.measure.states import token_scores

    with torch.no_grad():
        nll, hits = token_scores(states, head.logits, targets, chunk)
    return float(nll.double().mean()), float(hits.double().mean())


@dataclass(frozen=True)
class SweepData:
    """A checkpoint's states on the device, in float32: the fit rows and both held-out halves."""

    fit: tuple[torch.Tensor, torch.Tensor]
    select: tuple[torch.Tensor, torch.Tensor]
    score: tuple[torch.Tensor, torch.Tensor]
    vocab: int
    width: int

    @classmethod
    def load(cls, states: HiddenStates, device: torch.device) -> SweepData:
        """The fit rows stay float16 on the device (a batch is cast as it is drawn); the held-out
        halves are small and cast once."""
        import torch

        def tensors(h: np.ndarray, t: np.ndarray, rows: Any = slice(None)) -> tuple[Any, Any]:
            return (torch.from_numpy(np.array(h[rows])).to(device),  # read: a copy
                    torch.from_numpy(np.asarray(t[rows], dtype=np.int64)).to(device))  # fmt: skip

        select_rows, score_rows = states.halves()
        heldout = states.sample("heldout")
        select, score = tensors(*heldout, select_rows), tensors(*heldout, score_rows)
        return cls(
            tensors(*states.sample("fit")),
            (select[0].float(), select[1]),
            (score[0].float(), score[1]),
            states.vocab,
            states.width,
        )


def train_head(
    data: SweepData, config: HeadConfig, training: HeadTraining, chunk: int
) -> TrainedHead:
    """Train one head on the fit rows (module docstring) and score it."""
    import torch

    started = time.perf_counter()
    device = data.fit[0].device
    init = torch.Generator().manual_seed(training.seed)
    head = FactorisedHead(config, data.vocab, data.width, init, device)
    optimizer = torch.optim.AdamW(
        head.parameters(), lr=config.lr, betas=(0.9, 0.95), weight_decay=training.weight_decay
    )
    draws = torch.Generator().manual_seed(training.seed)  # on the CPU: the same rows anywhere
    warmup = round(training.warmup_fraction * training.steps)
    states, targets = data.fit
    curve, interval = [], []
    for update in range(training.steps):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(
                update, training.steps, config.lr, warmup, training.min_lr_ratio
            )
        rows = torch.randint(len(targets), (training.batch_tokens,), generator=draws).to(device)
        loss = head.loss(states[rows].float(), targets[rows], chunk)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        interval.append(loss.detach())
        if (update + 1) % training.eval_every == 0 or update + 1 == training.steps:
            train_loss = float(torch.stack(interval).double().mean())
            select_loss, _ = _evaluate(head, *data.select, chunk)
            curve.append((update + 1, train_loss, select_loss))
            interval = []
    loss, accuracy = _evaluate(head, *data.score, chunk)
    return TrainedHead(
        select_loss=curve[-1][2],
        loss=loss,
        accuracy=accuracy,
        train_loss=curve[-1][1],
        seconds=time.perf_counter() - started,
        curve=np.asarray(curve, dtype=np.float64),
    )


def head_record(trained: TrainedHead) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """A trained head as a store record: its numbers, and its curve as an array. A diverged
    head (a non-finite loss) is recorded as such, not refused: at a too-high learning rate it is
    a result of the search, which the selection passes over."""

    def number(value: float) -> float | None:
        return value if math.isfinite(value) else None

    fields = {
        "metrics": {
            "select_loss": number(trained.select_loss),
            "loss": number(trained.loss),
            "accuracy": trained.accuracy,
            "train_loss": number(trained.train_loss),
        },
        "seconds": round(trained.seconds, 3),
    }
    return fields, {CURVE_ARRAY: trained.curve}
