"""The model a checkpoint is measured with, whatever its family.

GPT-NeoX checkpoints (ours, Pythia's) run through FastGPTNeoX, read without transformers
(saturation.model.weights: ≈ 3 s less per job). Every other family (GPT-2, OPT, Llama, Mistral,
Gemma, …) runs through `TransformersCausalLM`, an adapter over transformers' own
`AutoModelForCausalLM` exposing what the held-out pass reads (saturation.measure.heldout's
`MeasuredModel`): the head's input with every depth's states tapped, and the head's logits
computed from it `loss_chunk` tokens at a time, so the (N, V) logits never exist at once.

The logits a family's forward computes after its output embedding are reproduced for:
Gemma 2/3 (and every config with `final_logit_softcapping`: cap · tanh(z / cap)), Cohere
(`logit_scale`: z · s) and Granite (`logits_scaling`: z / s); the others (GPT-2, OPT, Llama,
Mistral, Qwen, Phi, Falcon, BLOOM, …) use the output embedding's z = h Wᵀ (+ b) as is. Any other
transform is caught when the model loads: the adapter's logits of a few tokens are compared
with the model's own forward, and a family whose logits differ is refused, naming it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from saturation.checkpoints import read_config
from saturation.model.neox import NEOX_FAMILIES
from saturation.model.weights import load_fast_neox

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from saturation.measure.heldout import MeasuredModel

_CHECK_TOKENS = 8  # the load-time comparison with the model's own forward


def load_measured_model(checkpoint_dir: str | Path, device: str = "cpu") -> MeasuredModel:
    """The checkpoint's model in fp32 and eval mode on `device`: FastGPTNeoX for `gpt_neox` and
    `saturation_neox` (transformers is never imported), the transformers adapter for any other `model_type`."""
    folder = Path(checkpoint_dir)
    if read_config(folder).get("model_type") in NEOX_FAMILIES:
        return load_fast_neox(folder).to(device)
    return TransformersCausalLM.load(folder, device)


class CausalLMHead:
    """A transformers model's output embedding, and the transform its forward applies to the
    logits (module docstring): `logits(hidden)` is the model's own logits for `hidden`."""

    def __init__(self, output: nn.Module, config: Any) -> None:
        text = config.get_text_config()  # a multimodal config keeps these in its text part
        self.output = output
        self.softcap: float | None = getattr(text, "final_logit_softcapping", None)
        self.multiplier: float | None = getattr(text, "logit_scale", None)  # Cohere
        self.divisor: float | None = getattr(text, "logits_scaling", None)  # Granite

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """(…, d) → (…, V), in the order the families' forwards apply them."""
        logits = self.output(hidden)
        if self.multiplier is not None:
            logits = logits * self.multiplier
        if self.divisor is not None:
            logits = logits / self.divisor
        if self.softcap is not None:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        return logits


class TransformersCausalLM(nn.Module):
    """A transformers causal LM measured as FastGPTNeoX is: `hidden_states`, `head.logits`,
    `loss_chunk`. A module holding the model, so `.to(device)` and `parameters()` reach it."""

    def __init__(self, model: PreTrainedModel, loss_chunk: int = 256) -> None:
        super().__init__()
        model.config.use_cache = False  # one pass per batch: a KV cache is only memory
        self.model = model.eval()
        self.head = CausalLMHead(model.get_output_embeddings(), model.config)
        self.loss_chunk = loss_chunk

    @classmethod
    def load(cls, checkpoint_dir: str | Path, device: str = "cpu") -> TransformersCausalLM:
        """`AutoModelForCausalLM.from_pretrained` in fp32 (whatever the files' dtype), local
        files only, on `device`, checked against the model's own forward."""
        from transformers import AutoModelForCausalLM

        import saturation.model.hf_heads  # noqa: F401 - registers our heads' model type

        folder = Path(checkpoint_dir)
        model = AutoModelForCausalLM.from_pretrained(
            folder, dtype=torch.float32, local_files_only=True
        )
        adapter = cls(model).to(device).eval()
        adapter.check_logits(folder)
        return adapter

    def hidden_states(
        self, input_ids: torch.Tensor, tap: Callable[[int, torch.Tensor], None] | None = None
    ) -> torch.Tensor:
        """The head's input (B, T, d): the base model's `last_hidden_state` (after the final
        norm, and OPT's `project_out`). `tap(depth, states)`, if given, sees every entry of the
        family's own `output_hidden_states`: 0 = the embeddings, 1 … L − 1 = each layer's
        output, L = the last layer's as the family returns it (after the final norm for GPT-2,
        OPT, Llama, Gemma, …: the head's input, where the "last layer" anisotropy is measured)."""
        outputs = self.model.base_model(input_ids=input_ids, output_hidden_states=tap is not None)
        if tap is not None:
            for depth, states in enumerate(outputs.hidden_states):
                tap(depth, states)
        return outputs.last_hidden_state

    @torch.inference_mode()
    def check_logits(self, folder: Path) -> None:
        """Refuse a family whose forward transforms the logits in a way `CausalLMHead` does not
        reproduce: its loss would be silently wrong. One forward of a few tokens."""
        vocab = self.head.output.weight.shape[0]
        device = next(self.parameters()).device
        ids = torch.arange(_CHECK_TOKENS, device=device).remainder(vocab)[None]
        expected = self.model(input_ids=ids).logits.float()
        ours = self.head.logits(self.hidden_states(ids)).float()
        scale = expected.abs().max().item()
        atol = 1e-5 * (scale if math.isfinite(scale) else 1.0)
        # NaN where the model has NaN: a diverged checkpoint, refused later for its loss
        if ours.shape != expected.shape or not torch.allclose(
            ours, expected, rtol=1e-4, atol=atol, equal_nan=True
        ):
            raise ValueError(
                f"{folder}: model_type {self.model.config.model_type!r}: its forward transforms "
                "the logits in a way saturation.model.hf_forward does not reproduce"
            )
