"""Pythia-shaped GPT-NeoX models built from a small shape description.

The model is the stock `transformers` GPTNeoXForCausalLM so every checkpoint loads with
`from_pretrained` and runs under lm-evaluation-harness unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from saturation.model.head_spec import HeadSpec

if TYPE_CHECKING:  # torch and transformers are heavy; import them only where a model is built
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM


@dataclass(frozen=True)
class ModelShape:
    """Everything that fixes a model's architecture (Pythia's conventions as defaults)."""

    width: int
    layers: int
    heads: int
    vocab_size: int
    seq_len: int
    rotary_pct: float = 0.25
    mlp_ratio: int = 4
    eos_id: int = 0
    head: HeadSpec = field(default_factory=HeadSpec)  # linear: stock GPT-NeoX

    @property
    def head_dim(self) -> int:
        return self.width // self.heads


def padded_vocab(n_tokens: int, multiple: int) -> int:
    """Round the head's row count up (Pythia pads 50277 tokens to 50304 for matmul speed)."""
    return -(-n_tokens // multiple) * multiple


def parameter_count(width: int, layers: int, vocab_size: int) -> int:
    """GPT-NeoX parameters with an untied head: 2·V·d + L·(12d² + 13d) + 2d (docs/SCIENCE-NOTES.md,
    the N of the scaling law)."""
    return 2 * vocab_size * width + layers * (12 * width**2 + 13 * width) + 2 * width


def gpt_neox_config(shape: ModelShape) -> GPTNeoXConfig:
    """Pythia's config for the shape; a head other than linear or tied makes it the
    `saturation_neox` config (saturation.model.hf_heads) with the head in it."""
    from transformers import GPTNeoXConfig

    config_class, head = GPTNeoXConfig, {}
    if shape.head.class_name != "linear":
        from saturation.model.hf_heads import SaturationNeoXConfig

        config_class = SaturationNeoXConfig
        head = {"saturation_head": shape.head.kind, "saturation_head_size": shape.head.size}
    return config_class(
        **head,
        vocab_size=shape.vocab_size,
        hidden_size=shape.width,
        num_hidden_layers=shape.layers,
        num_attention_heads=shape.heads,
        intermediate_size=shape.mlp_ratio * shape.width,
        max_position_embeddings=shape.seq_len,
        rope_parameters={
            "rope_type": "default",
            "rope_theta": 10000.0,
            "partial_rotary_factor": shape.rotary_pct,
        },
        use_parallel_residual=True,
        tie_word_embeddings=shape.head.kind == "tied",
        hidden_dropout=0.0,
        attention_dropout=0.0,
        initializer_range=0.02,
        layer_norm_eps=1e-5,
        bos_token_id=shape.eos_id,
        eos_token_id=shape.eos_id,
        use_cache=False,
        attn_implementation="sdpa",
    )


def build_model(shape: ModelShape, seed: int) -> GPTNeoXForCausalLM:
    """A freshly initialised model; the weights are a pure function of (shape, seed)."""
    import torch
    from transformers import GPTNeoXForCausalLM

    model_class = GPTNeoXForCausalLM
    if shape.head.class_name != "linear":
        from saturation.model.hf_heads import SaturationNeoXForCausalLM as model_class

    torch.manual_seed(seed)
    model = model_class(gpt_neox_config(shape))
    model.config.use_cache = True  # what inference users (lm-eval) expect from a saved checkpoint
    return model


def shape_from_recipe(
    model: Mapping[str, Any], seq_len: int, vocab_size: int, eos_id: int
) -> ModelShape:
    """The model of a pretrain recipe, its head padded as Pythia's (see padded_vocab)."""
    return ModelShape(
        width=model["width"],
        layers=model["layers"],
        heads=model["heads"],
        vocab_size=padded_vocab(vocab_size, model["vocab_multiple"]),
        seq_len=seq_len,
        rotary_pct=model["rotary_pct"],
        mlp_ratio=model["mlp_ratio"],
        eos_id=eos_id,
        head=HeadSpec.of(model.get("head")),
    )
