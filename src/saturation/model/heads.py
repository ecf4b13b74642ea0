"""The LM head: how the final hidden state becomes next-token logits.

The paper's subject is this one layer, so everything that touches it goes through a head class
here rather than a weight name: the training loss (fused with the head), the strict checkpoint
loader, the held-out loss, and the matrix whose spectrum is measured. A checkpoint says which
head it has in its config.json (`HEAD_KEY`; absent: the stock GPT-NeoX head), and `HEADS` maps
that name to its class, so a new kind of head is a new class and one entry there.

Four heads are trained here (saturation.model.head_spec.HeadSpec, config `model.head` or a width's `head`): `linear`
(GPT-NeoX's, untied), `tied` (the same class, its W the input embedding), `low_rank` (W = U D,
rank r) and `mixture_of_softmaxes` (Yang et al. 2018). The last two are not GPT-NeoX's: their
checkpoints have model_type `saturation_neox` (saturation.model.hf_heads registers it with
transformers' Auto classes) and keep their head's tensors under `lm_head.*`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from saturation.checkpoints import read_config, read_tensors, weight_shapes
from saturation.model.losses import linear_cross_entropy, mixture_cross_entropy

HEAD_KEY = "saturation_head"  # config.json: the head's name, for heads other than `linear`
HEAD_SIZE_KEY = (
    "saturation_head_size"  # config.json: a low-rank head's rank, a mixture's components
)


def _finite(matrix: np.ndarray, file: Path, key: str) -> np.ndarray:
    """A head with NaN or inf entries (a diverged run) is refused with the file's name rather
    than measured: its spectrum would be an error deep in LAPACK or a false collapse."""
    if bad := np.count_nonzero(~np.isfinite(matrix)):
        raise ValueError(f"{file}: LM head {key} has {bad} non-finite (NaN/inf) entries")
    return matrix


def _read_named(folder: Path, keys: list[str]) -> list[np.ndarray]:
    """The tensors `keys` of a checkpoint in float32, each refused if non-finite."""
    shapes = weight_shapes(folder)
    missing = [key for key in keys if key not in shapes]
    if missing:
        raise KeyError(f"{folder}: no {', '.join(missing)} in its weights")
    return [
        _finite(read_tensors(shapes[key][0], [key])[key].float().numpy(), shapes[key][0], key)
        for key in keys
    ]


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
        width: int, vocab_size: int, size: int | None, linear: Callable[..., nn.Linear]
    ) -> dict[str, nn.Module]:
        """The modules that hold the head's parameters, named as in a checkpoint (`embed_out`),
        built by `linear` (the loader builds them empty, to be filled from the file); `size`
        is the head's (HEAD_SIZE_KEY), None here."""
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
        return _finite(read_tensors(file, [key])[key][:n_rows].float().numpy(), file, key)

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


class LowRankProjection(nn.Module):
    """logits = U (D h): D (r × d), then U (V × r); W = U D has rank at most r."""

    def __init__(
        self, width: int, vocab_size: int, rank: int, linear: Callable[..., nn.Linear] = nn.Linear
    ) -> None:
        super().__init__()
        self.down = linear(width, rank, bias=False)
        self.up = linear(rank, vocab_size, bias=False)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.up(self.down(hidden))


class _ModuleHead:
    """A head that is one module of its own under `lm_head` (saturation.model.hf_heads), whose
    forward gives the logits: saved as it is held, nothing to rename, nothing tied."""

    def __init__(self, module: nn.Module) -> None:
        self.module = module

    @classmethod
    def of(cls, model: nn.Module) -> _ModuleHead:
        return cls(model.get_output_embeddings())

    @staticmethod
    def complete_state(state: dict[str, torch.Tensor], tied: bool) -> None:
        """Nothing to complete."""

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.module(hidden)


class LowRankHead(_ModuleHead):
    """A linear head of rank at most r, trained as its two factors (the head of a model whose
    trunk is wider than its logits' rank: the bottleneck without the narrow trunk). The fused
    loss runs on D h (N, r), so the chunked V-wide matmul is r-deep. The matrix measured is the
    product W = U D (V × d), whose spectrum has at most r non-zero values."""

    name: ClassVar[str] = "low_rank"
    DOWN, UP = "lm_head.down.weight", "lm_head.up.weight"

    @staticmethod
    def modules(
        width: int, vocab_size: int, size: int | None, linear: Callable[..., nn.Linear]
    ) -> dict[str, nn.Module]:
        return {"lm_head": LowRankProjection(width, vocab_size, int(size or 0), linear)}

    def loss(self, hidden: torch.Tensor, targets: torch.Tensor, chunk: int) -> torch.Tensor:
        return linear_cross_entropy(self.module.down(hidden), self.module.up.weight, targets, chunk)

    @classmethod
    def read_matrix(cls, checkpoint_dir: str | Path, n_rows: int | None = None) -> np.ndarray:
        """W = U D in float32 (V × d), its first `n_rows` rows."""
        down, up = _read_named(Path(checkpoint_dir), [cls.DOWN, cls.UP])
        return (up[:n_rows].astype(np.float64) @ down.astype(np.float64)).astype(np.float32)


class MixtureOfSoftmaxes(nn.Module):
    """Yang et al. (2018): p(·|h) = Σ_k π_k(h) softmax(W u_k(h)), with mixture weights
    π = softmax(P h), per-component states u_k = tanh(L_k h + b_k) and one output embedding W
    (V × d) shared by the components. `forward` returns log p: logits whose softmax is the
    mixture, so transformers' forward, lm-eval and the held-out loss read it as any head's."""

    def __init__(
        self,
        width: int,
        vocab_size: int,
        components: int,
        linear: Callable[..., nn.Linear] = nn.Linear,
    ) -> None:
        super().__init__()
        self.components = components
        self.prior = linear(width, components, bias=False)
        self.latent = linear(width, components * width)
        self.decoder = linear(width, vocab_size, bias=False)

    def mixture_inputs(self, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(…, d) → the components' states (…, K, d) and the log mixture weights (…, K)."""
        latents = torch.tanh(self.latent(hidden)).unflatten(-1, (self.components, -1))
        return latents, torch.log_softmax(self.prior(hidden).float(), dim=-1)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """log p (…, V): (…, K, V) at once, which measuring in chunks of tokens can afford."""
        latents, log_prior = self.mixture_inputs(hidden)
        log_probs = torch.log_softmax(self.decoder(latents).float(), dim=-1)
        return torch.logsumexp(log_prior[..., None] + log_probs, dim=-2)


class MixtureOfSoftmaxesHead(_ModuleHead):
    """A mixture of K softmaxes (`MixtureOfSoftmaxes`): its log-probabilities have no rank
    bound, which is how it can break the softmax bottleneck. Trained with the fused mixture
    loss (saturation.model.losses.mixture_cross_entropy: never the (N, K, V) logits at once).
    The matrix measured is the output embedding W shared by every component: each component's
    logits are W u_k, so W is the one matrix all of them are made of, and the figures use it."""

    name: ClassVar[str] = "mixture_of_softmaxes"
    DECODER = "lm_head.decoder.weight"

    @staticmethod
    def modules(
        width: int, vocab_size: int, size: int | None, linear: Callable[..., nn.Linear]
    ) -> dict[str, nn.Module]:
        return {"lm_head": MixtureOfSoftmaxes(width, vocab_size, int(size or 0), linear)}

    def loss(self, hidden: torch.Tensor, targets: torch.Tensor, chunk: int) -> torch.Tensor:
        latents, log_prior = self.module.mixture_inputs(hidden)
        return mixture_cross_entropy(latents, self.module.decoder.weight, log_prior, targets, chunk)

    @classmethod
    def read_matrix(cls, checkpoint_dir: str | Path, n_rows: int | None = None) -> np.ndarray:
        (decoder,) = _read_named(Path(checkpoint_dir), [cls.DECODER])
        return decoder[:n_rows]


Head = LinearHead | LowRankHead | MixtureOfSoftmaxesHead
HEADS: dict[str, type[Head]] = {
    head.name: head for head in (LinearHead, LowRankHead, MixtureOfSoftmaxesHead)
}


def head_class(config: Mapping[str, Any]) -> type[Head]:
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
