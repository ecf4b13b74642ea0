"""The LM head: how the final hidden state becomes next-token logits.

The paper's subject is this one layer, so everything that touches it goes through a head class
here rather than a weight name: the training loss (fused with the head), the strict checkpoint
loader, the held-out loss, and the matrix whose spectrum is measured. A checkpoint says which
head it has in its config.json (`HEAD_KEY`; absent: the stock GPT-NeoX head), and `HEADS` maps
that name to its class, so a new kind of head is a new class and one entry there.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from saturation.model.losses import linear_cross_entropy

HEAD_KEY = "saturation_head"  # config.json: the head's name, for heads other than `linear`


class LinearHead:
    """logits = h Wᵀ with W (V × d) untied from the input embedding: GPT-NeoX's `embed_out`, as
    in Pythia. The matrix whose spectrum is measured is W itself.

    A view of the model's own head module, not a module of its own: the model still holds the
    one set of weights that the optimizer, DDP and `save_pretrained` see.
    """

    name: ClassVar[str] = "linear"
    # W as saved: GPT-NeoX's name, and transformers' generic one
    WEIGHT_KEYS: ClassVar[tuple[str, ...]] = ("embed_out.weight", "lm_head.weight")

    def __init__(self, linear: nn.Linear) -> None:
        self.linear = linear

    @classmethod
    def of(cls, model: nn.Module) -> LinearHead:
        """The head of a GPT-NeoX model (transformers' or the loader's), sharing its weights."""
        return cls(model.get_output_embeddings())

    @staticmethod
    def modules(
        width: int, vocab_size: int, linear: Callable[..., nn.Linear]
    ) -> dict[str, nn.Module]:
        """The modules that hold the head's parameters, named as in a checkpoint (`embed_out`),
        built by `linear` (the loader builds them empty, to be filled from the file)."""
        return {"embed_out": linear(width, vocab_size, bias=False)}

    @staticmethod
    def complete_state(state: dict[str, torch.Tensor], tied: bool) -> None:
        """A tied head is saved without its copy of the input embedding: put it back."""
        if tied and "gpt_neox.embed_in.weight" in state:
            state.setdefault("embed_out.weight", state["gpt_neox.embed_in.weight"])

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """(…, d) → (…, V): for measuring; training uses `loss`, which never forms them all."""
        return self.linear(hidden)

    def loss(self, hidden: torch.Tensor, targets: torch.Tensor, chunk: int) -> torch.Tensor:
        """Mean cross-entropy of `hidden` (N, d) against `targets` (N,), fused and chunked."""
        return linear_cross_entropy(hidden, self.linear.weight, targets, chunk)

    @classmethod
    def read_matrix(cls, checkpoint_dir: str | Path, n_rows: int | None = None) -> np.ndarray:
        """W from the checkpoint's safetensors files, without building the model, its padded
        rows sliced away (the first `n_rows` are the tokenizer's). A head with NaN or inf entries
        (a diverged run) is refused with the file's name rather than measured: its spectrum
        would be an error deep in LAPACK or a false collapse."""
        from safetensors import safe_open

        for file in sorted(Path(checkpoint_dir).glob("*.safetensors")):
            with safe_open(file, framework="np") as handle:
                for key in cls.WEIGHT_KEYS:
                    if key in handle.keys():  # noqa: SIM118 - safe_open is not a dict
                        matrix = handle.get_tensor(key)[:n_rows]
                        if bad := np.count_nonzero(~np.isfinite(matrix)):
                            raise ValueError(
                                f"{file}: LM head {key} has {bad} non-finite (NaN/inf) entries"
                            )
                        return matrix
        raise KeyError(f"{checkpoint_dir}: none of {cls.WEIGHT_KEYS} in its safetensors files")


HEADS: dict[str, type[LinearHead]] = {head.name: head for head in (LinearHead,)}


def head_class(config: Mapping[str, Any]) -> type[LinearHead]:
    """The head a checkpoint's config.json describes."""
    name = config.get(HEAD_KEY, LinearHead.name)
    if name not in HEADS:
        raise ValueError(f"{HEAD_KEY}: unknown head {name!r} (known: {', '.join(HEADS)})")
    return HEADS[name]


def read_head_matrix(checkpoint_dir: str | Path, n_rows: int | None = None) -> np.ndarray:
    """The matrix whose spectrum is measured, read from a saved checkpoint."""
    config = json.loads((Path(checkpoint_dir) / "config.json").read_text())
    return head_class(config).read_matrix(checkpoint_dir, n_rows)
