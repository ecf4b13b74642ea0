"""A checkpoint's final normalised hidden states, cached once for the head sweeps (paper §5).

The rank-constrained heads of saturation.measure.rank_heads are trained on the states a frozen
model feeds its head. Running the trunk is the costly part, so it runs once per checkpoint and
token sample: `extract_states` passes two fixed samples through it (saturation.measure.heldout),

- `fit`: windows of the train split, on which every head is trained;
- `heldout`: windows of the held-out (val) split, on which heads are selected and scored; it
  never overlaps `fit` (another split, decontaminated against train by the corpus stage),

and keeps each scored position's head input in float16 with its next token, plus what the
checkpoint's own head makes of the same (rounded) states: its per-token loss and whether its top
logit is the target. The arrays are `.npy` files of a record in the measurement store (kind
"states", saturation.measure.store), keyed by the checkpoint's content and the sample's recipe,
and open as memory maps (`HiddenStates.open`): a 50k-vocabulary, 1M-token sample is read only
where a batch indexes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from saturation.measure.heldout import Meter, heldout_pass

if TYPE_CHECKING:
    import torch

    from saturation.measure.analysis import HeldoutSample

SAMPLES = ("fit", "heldout")


def states_array(sample: str) -> str:
    return f"{sample}_states"


def targets_array(sample: str) -> str:
    return f"{sample}_targets"


OWN_NLL, OWN_HITS, OWN_SIGMA = "own_nll", "own_hits", "own_singular_values"


def token_scores(
    hidden: torch.Tensor, logits: Any, targets: torch.Tensor, chunk: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row of `hidden` (N, d): the cross-entropy of `logits(rows)` against the target and
    whether the target is the arg-max, `chunk` rows of fp32 logits at a time."""
    import torch
    import torch.nn.functional as F

    nll, hits = [], []
    for start in range(0, hidden.shape[0], chunk):
        z = logits(hidden[start : start + chunk]).float()
        t = targets[start : start + chunk]
        nll.append(F.cross_entropy(z, t, reduction="none"))
        hits.append(z.argmax(dim=-1) == t)
    return torch.cat(nll), torch.cat(hits)


class StatesMeter(Meter):
    """Keeps the head's input (float16, on the CPU) and the next tokens of a pass; with `own`
    (the model's head, its logits cut to the tokenizer's `vocab` ids), also that head's loss and
    hits on the rounded states, the ones every trained head will see."""

    def __init__(self, own: Any | None = None, vocab: int = 0, chunk: int = 256) -> None:
        self.own, self.vocab, self.chunk = own, vocab, chunk
        self.states: list[np.ndarray] = []
        self.targets: list[np.ndarray] = []
        self.nll: list[np.ndarray] = []
        self.hits: list[np.ndarray] = []

    def final(self, hidden: torch.Tensor, targets: torch.Tensor) -> None:
        import torch

        rounded = hidden.to(torch.float16)  # on disk; every consumer computes in float32
        self.states.append(rounded.cpu().numpy())
        self.targets.append(targets.to(torch.int32).cpu().numpy())
        if self.own is not None:
            nll, hits = token_scores(
                rounded.to(hidden.dtype),
                lambda h: self.own(h)[..., : self.vocab],
                targets,
                self.chunk,
            )
            self.nll.append(nll.cpu().numpy().astype(np.float32))
            self.hits.append(hits.cpu().numpy())

    def arrays(self, sample: str) -> dict[str, np.ndarray]:
        arrays = {
            states_array(sample): np.concatenate(self.states),  # float16, as rounded
            targets_array(sample): np.concatenate(self.targets),
        }
        if self.own is not None:
            arrays |= {OWN_NLL: np.concatenate(self.nll), OWN_HITS: np.concatenate(self.hits)}
        return arrays


def extract_states(
    checkpoint_dir: str | Path,
    samples: dict[str, HeldoutSample],
    batch_size: int,
    device: str = "cpu",
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """One checkpoint's cached states (module docstring): (the record's fields, its arrays).
    Also the singular values of its own head, for the W-error of Fig. 8."""
    from saturation.measure import spectra
    from saturation.measure.analysis import check_tokenizer
    from saturation.model.heads import read_head_matrix
    from saturation.model.hf_forward import load_measured_model

    heldout = samples["heldout"]
    for sample in samples.values():
        check_tokenizer(sample.header, sample.tokens_bin, checkpoint_dir)
    vocab = heldout.header.vocab_size
    head = read_head_matrix(checkpoint_dir, n_rows=vocab)
    model = load_measured_model(checkpoint_dir, device)
    arrays: dict[str, np.ndarray] = {OWN_SIGMA: spectra.singular_values(head)}
    for name in SAMPLES:
        own = model.head.logits if name == "heldout" else None
        meter = StatesMeter(own, vocab, model.loss_chunk)
        heldout_pass(model, samples[name].windows, batch_size, [meter])
        arrays |= meter.arrays(name)
    nll = arrays[OWN_NLL]
    if not np.isfinite(arrays[states_array("fit")]).all() or not np.isfinite(nll).all():
        raise ValueError(f"{checkpoint_dir}: non-finite hidden states or loss (float16 overflow?)")
    record = {
        "info": {
            "width": int(head.shape[1]),
            "vocab": vocab,
            "window": int(heldout.windows.shape[1] - 1),
            **{f"{name}_tokens": len(arrays[targets_array(name)]) for name in SAMPLES},
        },
        "own": {"loss": float(nll.mean()), "accuracy": float(arrays[OWN_HITS].mean())},
    }
    return record, arrays


@dataclass(frozen=True)
class HiddenStates:
    """A stored states record: its fields (read once) and its arrays, memory-mapped: what the
    head sweep reads."""

    folder: Path
    record: dict[str, Any]  # record.json: key, checkpoint, info, own

    @classmethod
    def open(cls, folder: str | Path) -> HiddenStates:
        import json

        from saturation.measure.store import RECORD

        return cls(Path(folder), json.loads((Path(folder) / RECORD).read_text()))

    @property
    def width(self) -> int:
        return self.record["info"]["width"]

    @property
    def vocab(self) -> int:
        return self.record["info"]["vocab"]

    @property
    def window(self) -> int:
        """Held-out tokens per window: the held-out halves are split by whole windows."""
        return self.record["info"]["window"]

    def array(self, name: str) -> np.ndarray:
        return np.load(self.folder / f"{name}.npy", mmap_mode="r")

    def sample(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(states (N, d) float16, targets (N,) int32) of `fit` or `heldout`, memory-mapped."""
        return self.array(states_array(name)), self.array(targets_array(name))

    def halves(self) -> tuple[np.ndarray, np.ndarray]:
        """Row indices of the held-out sample's two halves, by whole windows alternately (the
        windows are spread over the split, so both halves are too): even windows select the
        learning rate, odd windows score the selected head."""
        n = len(self.array(targets_array("heldout")))
        windows = np.arange(n) // self.window
        rows = np.arange(n)
        return rows[windows % 2 == 0], rows[windows % 2 == 1]
