"""The LM head: how the final hidden state becomes next-token logits.

The paper's subject is this one layer, so everything that touches it goes through a head class
here rather than a weight name: the training loss (fused with the head), the strict checkpoint
loader, the held-out loss, and the matrix whose spectrum is measured. A checkpoint says which
head it has in its config.json (`HEAD_KEY`; absent: the stock GPT-NeoX head), and `HEADS` maps
that name to its class, so a new kind of head is a new class and one entry there.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from saturation.checkpoints import read_config, read_tensors, weight_shapes
from saturation.model.losses import linear_cross_entropy

HEAD_KEY = "saturation_head"  # config.json: the head's name, for heads other than `linear`


class LinearHead:
    """logits = h Wᵀ with W (V × d): GPT-NeoX's `embed_out`, untied from the input embedding as
    in Pythia (a tied W is the input embedding). The matrix whose spectrum is measured is W
    itself; `read_matrix` reads it from any transformers family's files (their `lm_head`).

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
        """The head under its checkpoint name, `embed_out`: transformers 5 calls it `lm_head` in
        memory (a file written from its state dict has that name; `save_pretrained` renames it
        back). A tied head is saved without its copy of the input embedding: put it back."""
        if "lm_head.weight" in state:
            state.setdefault("embed_out.weight", state.pop("lm_head.weight"))
        if tied and "gpt_neox.embed_in.weight" in state:
            state.setdefault("embed_out.weight", state["gpt_neox.embed_in.weight"])

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """(…, d) → (…, V): for measuring; training uses `loss`, which never forms them all."""
        return self.linear(hidden)

    def loss(self, hidden: torch.Tensor, targets: torch.Tensor, chunk: int) -> torch.Tensor:
        """Mean cross-entropy of `hidden` (N, d) against `targets` (N,), fused and chunked."""
        return linear_cross_entropy(hidden, self.linear.weight, targets, chunk)

    # the input embedding a tied head is, by the end of its name: GPT-NeoX, GPT-2 (`transformer.`
    # or bare), Llama/Gemma/Mistral/OPT (`model.`, `model.decoder.` or bare), BLOOM/Falcon
    EMBEDDING_KEYS: ClassVar[tuple[str, ...]] = (
        "embed_in.weight", "wte.weight", "embed_tokens.weight", "word_embeddings.weight",
    )  # fmt: skip

    @classmethod
    def read_matrix(cls, checkpoint_dir: str | Path, n_rows: int | None = None) -> np.ndarray:
        """W in float32, from the checkpoint's weight files (any format: safetensors or pickles,
        fp32/fp16/bf16, sharded or not) without building the model, its padded rows sliced away
        (the first `n_rows` are the tokenizer's: Pythia's head has 50,304 rows for 50,277
        tokens). A head with NaN or inf entries (a diverged run) is refused with the file's name
        rather than measured: its spectrum would be an error deep in LAPACK or a false collapse."""
        file, key = cls.locate(Path(checkpoint_dir))
        matrix = read_tensors(file, [key])[key][:n_rows].float().numpy()
        if bad := np.count_nonzero(~np.isfinite(matrix)):
            raise ValueError(f"{file}: LM head {key} has {bad} non-finite (NaN/inf) entries")
        return matrix

    @classmethod
    def locate(cls, folder: Path) -> tuple[Path, str]:
        """The file and name W is saved under: the head's own tensor (`WEIGHT_KEYS`), else, when
        config.json ties the head to the input embedding (`save_pretrained` then saves it once),
        the one tensor whose name ends in an input embedding's (`EMBEDDING_KEYS`)."""
        shapes = weight_shapes(folder)
        for key in cls.WEIGHT_KEYS:
            if key in shapes:
                return shapes[key][0], key
        if not tied_embeddings(read_config(folder)):
            raise KeyError(
                f"{folder}: none of {cls.WEIGHT_KEYS} in its weights, and config.json does not "
                "tie the head to the input embedding"
            )
        found = [key for key in shapes if ".".join(key.split(".")[-2:]) in cls.EMBEDDING_KEYS]
        if len(found) != 1:
            raise KeyError(
                f"{folder}: a tied head, but {len(found)} input embeddings {found} in its weights "
                f"(one named *{' or *'.join(cls.EMBEDDING_KEYS)} expected)"
            )
        return shapes[found[0]][0], found[0]


def tied_embeddings(config: Mapping[str, Any]) -> bool:
    """Whether the head is the input embedding: config.json's `tie_word_embeddings`, absent in
    a file when it equals transformers' default, True (PretrainedConfig), except GPT-NeoX's,
    False (GPTNeoXConfig, as Pythia's files)."""
    return bool(config.get("tie_word_embeddings", config.get("model_type") != "gpt_neox"))


HEADS: dict[str, type[LinearHead]] = {head.name: head for head in (LinearHead,)}


def head_class(config: Mapping[str, Any]) -> type[LinearHead]:
    """The head a checkpoint's config.json describes."""
    name = config.get(HEAD_KEY, LinearHead.name)
    if name not in HEADS:
        raise ValueError(f"{HEAD_KEY}: unknown head {name!r} (known: {', '.join(HEADS)})")
    return HEADS[name]


def read_head_matrix(checkpoint_dir: str | Path, n_rows: int | None = None) -> np.ndarray:
    """The matrix whose spectrum is measured (float32, its first `n_rows` rows), read from a saved
    checkpoint of any family: ours, Pythia's, or any transformers causal LM's (a config.json
    without `HEAD_KEY` has the linear head)."""
    return head_class(read_config(checkpoint_dir)).read_matrix(checkpoint_dir, n_rows)
