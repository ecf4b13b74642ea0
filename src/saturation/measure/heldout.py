"""One forward pass over a fixed held-out sample, feeding every measurement that needs a model.

The sample (`heldout_windows`) is the same tokens for every checkpoint of every run of a
tokenizer. The pass (`heldout_pass`) runs each batch through the model once and hands what it
computes to meters: the hidden states of every depth as the forward computes them (`Meter.tap`),
and the final normalised states with their next tokens (`Meter.final`), what the head reads. The
held-out loss and the anisotropy per depth are two meters (`measure_loss_and_anisotropy`); a
measurement that needs the states themselves (a cache of them for head sweeps) is another.

The model is any `MeasuredModel`: FastGPTNeoX for GPT-NeoX checkpoints, or the adapter over a
transformers causal LM of another family (saturation.model.hf_forward), on any device; each
batch moves to the model's device, and what the meters keep is accumulated on the CPU.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from saturation.measure.anisotropy import AnisotropyMeter

if TYPE_CHECKING:  # torch loads only in the jobs that run a model
    import torch
    from torch import nn

logger = logging.getLogger(__name__)


class MeasuredHead(Protocol):
    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """(…, d) → (…, V) fp32 logits, as the model's own forward computes them."""
        ...


class MeasuredModel(Protocol):
    """What the held-out pass reads of a model (FastGPTNeoX, hf_forward.TransformersCausalLM)."""

    head: MeasuredHead
    loss_chunk: int  # tokens of logits formed at a time

    def hidden_states(
        self, input_ids: torch.Tensor, tap: Callable[[int, torch.Tensor], None] | None = None
    ) -> torch.Tensor:
        """The head's input (B, T, d); `tap(depth, states)` sees every depth's states."""
        ...

    def parameters(self) -> Iterator[nn.Parameter]: ...


def heldout_windows(tokens: np.ndarray, seq_len: int, n_tokens: int) -> np.ndarray:
    """A fixed sample of `seq_len + 1`-token windows spread evenly over the held-out split.

    Fixed (no RNG) so every checkpoint of every run is scored on exactly the same tokens. The
    sample is whole windows, so every scored token has the same context budget as in training:
    `n_tokens // seq_len` of them, at least one. No two windows score the same token (they may
    share a boundary token, the last target of one being the first input of the next): a split
    too short for the request gives at most `(len − 1) // seq_len` windows instead of repeating
    tokens. Any difference from the request is logged, and the loss meter counts what was
    actually scored.
    Window i starts at i · (len − seq_len − 1) / (n − 1), rounded: the first window opens the
    split and the last closes it.
    """
    if seq_len < 1:
        raise ValueError(f"seq_len must be positive, got {seq_len}")
    last_start = len(tokens) - seq_len - 1
    if last_start < 0:
        raise ValueError(f"held-out split has {len(tokens)} tokens, fewer than seq_len + 1")
    wanted = max(1, n_tokens // seq_len)
    n_windows = min(wanted, last_start // seq_len + 1)
    if n_windows * seq_len != n_tokens:
        reason = (
            f"the split's {len(tokens)} tokens hold only {n_windows} non-overlapping windows"
            if n_windows < wanted
            else f"whole windows of seq_len {seq_len}"
        )
        logger.warning(
            "held-out sample: scoring %d tokens, not the %d requested (%s)",
            n_windows * seq_len, n_tokens, reason,
        )  # fmt: skip
    # spacing last_start / (n − 1) ≥ seq_len, so the rounded starts are ≥ seq_len apart
    starts = np.linspace(0, last_start, n_windows).round().astype(np.int64)
    return np.stack([np.asarray(tokens[s : s + seq_len + 1], dtype=np.int64) for s in starts])


class Meter:
    """What a held-out pass feeds; a meter overrides what it needs."""

    def tap(self, depth: int, states: torch.Tensor) -> None:
        """The hidden states (B, T, d) at `depth`, on the model's device: 0 = the embeddings,
        then as the model computes them (FastGPTNeoX: 1 … L = each layer's output, L + 1 = the
        final normalised state, the head's input; a transformers family: its own
        `output_hidden_states`, whose last is usually the final normalised state)."""

    def final(self, hidden: torch.Tensor, targets: torch.Tensor) -> None:
        """The head's input (N, d), flattened over the batch, and the next tokens (N,), on the
        model's device."""


def heldout_pass(
    model: MeasuredModel, windows: np.ndarray, batch_size: int, meters: Sequence[Meter]
) -> None:
    """Run the sample through the model once, `batch_size` windows at a time, feeding `meters`."""
    import torch

    def tap(depth: int, states: torch.Tensor) -> None:
        for meter in meters:
            meter.tap(depth, states)

    device = next(model.parameters()).device
    with torch.inference_mode():
        for start in range(0, len(windows), batch_size):
            batch = torch.from_numpy(windows[start : start + batch_size]).to(device)
            hidden = model.hidden_states(batch[:, :-1], tap).flatten(0, 1)  # (B·T, d)
            targets = batch[:, 1:].flatten()
            for meter in meters:
                meter.final(hidden, targets)


def token_cross_entropy(
    hidden: torch.Tensor,
    logits: Callable[[torch.Tensor], torch.Tensor],
    targets: torch.Tensor,
    chunk: int,
) -> torch.Tensor:
    """CE(logits(hidden_i), target_i) for each of the N rows of `hidden` (N, d), in fp32 logits.

    Forward only, `chunk` tokens at a time, so the (N, V) logits and the copy cross-entropy makes
    of them never exist at once (at Pythia's V = 50304, T = 2048 and batch 8, 3.3 GB each).
    The training loss chunks the same way but forms the gradient in its forward, two more
    (chunk, V) matmuls and a (V, d) buffer that a measurement has no use for.
    """
    import torch
    import torch.nn.functional as F

    return torch.cat([
        F.cross_entropy(logits(hidden[start : start + chunk]).float(),
                        targets[start : start + chunk], reduction="none")
        for start in range(0, hidden.shape[0], chunk)
    ])  # fmt: skip


class LossMeter(Meter):
    """The mean next-token cross-entropy (nats) over every scored position, through the model's
    head, `chunk` tokens of logits at a time; and its standard error over the windows.

    The window, not the token, is the sampling unit of the error: tokens of one window share
    their context, so their losses are correlated, while the windows are spread evenly over the
    split and never overlap (`heldout_windows`). All windows score `window` tokens, so the loss
    is the mean of the window means, and its standard error std(window means, ddof 1) / √n.
    """

    def __init__(self, logits: Callable[[torch.Tensor], torch.Tensor], chunk: int, window: int):
        self.logits, self.chunk, self.window = logits, chunk, window
        self.window_sums: list[np.ndarray] = []

    def final(self, hidden: torch.Tensor, targets: torch.Tensor) -> None:
        losses = token_cross_entropy(hidden, self.logits, targets, self.chunk)
        sums = losses.double().view(-1, self.window).sum(dim=1)
        self.window_sums.append(sums.cpu().numpy())

    @property
    def count(self) -> int:
        return sum(len(sums) for sums in self.window_sums) * self.window

    @property
    def loss(self) -> float:
        return float(np.concatenate(self.window_sums).sum() / self.count)

    @property
    def window_means(self) -> np.ndarray:
        """Each window's mean loss, in window order: what the summary's bootstrap resamples."""
        return np.concatenate(self.window_sums) / self.window

    @property
    def stderr(self) -> float:
        """NaN for a single window: one sample has no spread."""
        means = self.window_means
        if len(means) < 2:
            return math.nan
        return float(means.std(ddof=1) / math.sqrt(len(means)))


class AnisotropyTap(Meter):
    """The anisotropy of every depth's states (saturation.measure.anisotropy), streamed."""

    def __init__(self) -> None:
        self.meter = AnisotropyMeter()

    def tap(self, depth: int, states: torch.Tensor) -> None:
        self.meter.add(depth, states.float().cpu().numpy())  # (B, T, d)


@dataclass(frozen=True)
class HeldoutMeasures:
    loss: float  # mean next-token cross-entropy, nats
    loss_stderr: float  # its standard error over the windows (LossMeter)
    window_losses: np.ndarray  # each window's mean loss (LossMeter.window_means)
    scored_tokens: int  # distinct tokens: windows never overlap (heldout_windows)
    anisotropy: dict[int, float]  # depth 0 = embeddings … the last = final normalised state


def measure_loss_and_anisotropy(
    model: MeasuredModel, windows: np.ndarray, batch_size: int
) -> HeldoutMeasures:
    """The fp32 loss at every position and the anisotropy at every depth, from one pass."""
    loss = LossMeter(model.head.logits, model.loss_chunk, window=windows.shape[1] - 1)
    anisotropy = AnisotropyTap()
    heldout_pass(model, windows, batch_size, [loss, anisotropy])
    if zero_rows := anisotropy.meter.zero_rows():
        logger.warning("all-zero hidden states left out of the anisotropy, by depth: %s", zero_rows)
    return HeldoutMeasures(
        loss.loss, loss.stderr, loss.window_means, loss.count, anisotropy.meter.values()
    )


def measure_loss(model: MeasuredModel, windows: np.ndarray, batch_size: int) -> LossMeter:
    """The loss alone (no anisotropy) over `windows`: e.g. a sample of the train split."""
    loss = LossMeter(model.head.logits, model.loss_chunk, window=windows.shape[1] - 1)
    heldout_pass(model, windows, batch_size, [loss])
    return loss
