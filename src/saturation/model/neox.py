"""A lean training forward for GPTNeoXForCausalLM, over the model's own parameters.

Training never needs the generic machinery of `transformers` (attention masks, caches, output
records), and at the small widths this project studies the cost is elsewhere anyway: the LM head
and the cross-entropy over V logits. So the training step runs this module instead, which

- reads the very `nn.Parameter`s of a stock GPTNeoXForCausalLM (no copy): the optimizer, DDP and
  `save_pretrained` all see one set of weights, and a checkpoint is a standard GPT-NeoX one;
- computes the same function (Pythia's parallel residual, partial rotary, exact GELU) with causal
  SDPA and precomputed rotary tables;
- ends in the model's head (saturation.model.heads), whose training loss is fused with the
  cross-entropy (saturation.model.losses): the full fp32 (N, V) logits never exist at once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn

from saturation.model.heads import HEAD_SIZE_KEY, HEADS, LinearHead, head_class

# the model_types FastGPTNeoX computes: GPT-NeoX's, and ours with another head (model.hf_heads)
NEOX_FAMILIES = ("gpt_neox", "saturation_neox")


def rotary_tables(
    seq_len: int, rotary_dims: int, base: float, device: torch.device | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of (seq_len, rotary_dims), exactly as GPTNeoXRotaryEmbedding computes them."""
    inv_freq = 1.0 / (base ** (torch.arange(0, rotary_dims, 2, dtype=torch.float) / rotary_dims))
    freqs = torch.arange(seq_len, dtype=torch.float)[:, None] * inv_freq
    angles = torch.cat((freqs, freqs), dim=-1)
    return angles.cos().to(device), angles.sin().to(device)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


@dataclass(frozen=True)
class NeoXArchitecture:
    """What FastGPTNeoX needs from a GPT-NeoX config, checked for what it implements.

    Read from transformers' config object or straight from a checkpoint's config.json (either
    generation of the rotary keys: transformers 5's `rope_parameters`, or the `rotary_pct` /
    `rotary_emb_base` of older files such as Pythia's). Missing optional keys take
    GPTNeoXConfig's defaults, as `from_pretrained` would.
    """

    width: int
    layers: int
    heads: int
    intermediate: int
    vocab_size: int
    max_positions: int
    rotary_pct: float = 0.25
    rope_theta: float = 10000.0
    eps: float = 1e-5
    attention_bias: bool = True
    tied_head: bool = False
    head: str = LinearHead.name  # saturation.model.heads: which head the checkpoint has
    head_size: int | None = None  # a low-rank head's rank, a mixture's components

    @classmethod
    def of(cls, config: Any) -> NeoXArchitecture:
        """From a transformers config object, a config.json mapping, or an architecture."""
        if isinstance(config, NeoXArchitecture):
            return config
        return cls.from_mapping(config if isinstance(config, Mapping) else config.to_dict())

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any]) -> NeoXArchitecture:
        if config.get("model_type", "gpt_neox") not in NEOX_FAMILIES:
            raise ValueError(
                f"model_type is {config['model_type']!r}, not one of {', '.join(NEOX_FAMILIES)}"
            )
        if not config.get("use_parallel_residual", True):
            raise ValueError(
                "use_parallel_residual: FastGPTNeoX implements Pythia's parallel residual only"
            )
        if config.get("hidden_act", "gelu") != "gelu":
            raise ValueError(
                f"hidden_act: FastGPTNeoX implements exact GELU, not {config['hidden_act']!r}"
            )
        rope = config.get("rope_parameters") or {}
        for key in ("rope_parameters", "rope_scaling"):  # rope_scaling: older files' spelling
            spec = config.get(key) or {}
            kind = spec.get("rope_type", spec.get("type", "default"))
            if kind != "default":
                raise ValueError(f"{key}: rope_type {kind!r} is not implemented")
        missing = [key for key in _REQUIRED_KEYS if key not in config]
        if missing:
            raise ValueError(f"config lacks {', '.join(missing)}")
        return cls(
            width=int(config["hidden_size"]),
            layers=int(config["num_hidden_layers"]),
            heads=int(config["num_attention_heads"]),
            intermediate=int(config["intermediate_size"]),
            vocab_size=int(config["vocab_size"]),
            max_positions=int(config["max_position_embeddings"]),
            rotary_pct=float(
                rope.get("partial_rotary_factor", config.get("rotary_pct", cls.rotary_pct))
            ),
            rope_theta=float(rope.get("rope_theta", config.get("rotary_emb_base", cls.rope_theta))),
            eps=float(config.get("layer_norm_eps", cls.eps)),
            attention_bias=bool(config.get("attention_bias", cls.attention_bias)),
            tied_head=bool(config.get("tie_word_embeddings", cls.tied_head)),
            head=head_class(config).name,
            head_size=config.get(HEAD_SIZE_KEY),
        )


_REQUIRED_KEYS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                  "vocab_size", "max_position_embeddings")  # fmt: skip


class FastGPTNeoX(nn.Module):
    """The training forward of `model` (a GPTNeoXForCausalLM), sharing its parameters."""

    def __init__(
        self, model: nn.Module, loss_chunk: int = 256, checkpoint_layers: bool = False
    ) -> None:
        """`checkpoint_layers`: keep only each layer's input for backward and recompute the rest
        (torch.utils.checkpoint): activation memory for wide models, at about a third more
        compute; the function and its gradients are unchanged."""
        super().__init__()
        arch = NeoXArchitecture.of(model.config)
        self.model = model
        self.head = HEADS[arch.head].of(model)  # a view of the model's head, not a submodule
        self.loss_chunk = loss_chunk
        self.checkpoint_layers = checkpoint_layers
        self.attention_heads = arch.heads
        self.head_dim = arch.width // arch.heads
        self.rotary_dims = int(self.head_dim * arch.rotary_pct)
        self.rope_base = arch.rope_theta
        self.eps = arch.eps
        cos, sin = rotary_tables(arch.max_positions, self.rotary_dims, self.rope_base)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)

    def _rotate(self, x: torch.Tensor, seq_len: int) -> torch.Tensor:
        cos, sin = self.cos[:seq_len].to(x.dtype), self.sin[:seq_len].to(x.dtype)
        rot, passed = x[..., : self.rotary_dims], x[..., self.rotary_dims :]
        return torch.cat((rot * cos + _rotate_half(rot) * sin, passed), dim=-1)

    def _layer(self, x: torch.Tensor, layer: nn.Module) -> torch.Tensor:
        """One Pythia block: x + attention(ln1(x)) + mlp(ln2(x)) (the parallel residual)."""
        batch, seq_len, width = x.shape
        attn_in = F.layer_norm(x, (width,), layer.input_layernorm.weight,
                               layer.input_layernorm.bias, self.eps)  # fmt: skip
        qkv = layer.attention.query_key_value(attn_in)
        qkv = qkv.view(batch, seq_len, self.attention_heads, 3 * self.head_dim).transpose(1, 2)
        q, k, v = qkv.split(self.head_dim, dim=-1)
        q, k = self._rotate(q, seq_len), self._rotate(k, seq_len)
        attn = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        attn = layer.attention.dense(attn.transpose(1, 2).reshape(batch, seq_len, width))
        mlp_in = F.layer_norm(x, (width,), layer.post_attention_layernorm.weight,
                              layer.post_attention_layernorm.bias, self.eps)  # fmt: skip
        mlp = layer.mlp.dense_4h_to_h(F.gelu(layer.mlp.dense_h_to_4h(mlp_in)))
        return x + attn + mlp

    def hidden_states(
        self, input_ids: torch.Tensor, tap: Callable[[int, torch.Tensor], None] | None = None
    ) -> torch.Tensor:
        """The final-norm output (B, T, d): what the LM head reads.

        `tap(depth, states)`, if given, sees the hidden states at every depth as they are computed:
        0 = the embeddings, 1 … L = each layer's output, L + 1 = the final norm's (where the
        paper's "last layer" anisotropy is measured, docs/SCIENCE-NOTES.md).
        """
        if input_ids.shape[1] > self.cos.shape[0]:
            raise ValueError(f"sequence of {input_ids.shape[1]} tokens exceeds the rotary table")
        neox = self.model.gpt_neox
        x = neox.embed_in(input_ids)
        if tap is not None:
            tap(0, x)
        recompute = self.checkpoint_layers and torch.is_grad_enabled()
        for depth, layer in enumerate(neox.layers, start=1):
            if recompute:
                x = torch.utils.checkpoint.checkpoint(self._layer, x, layer, use_reentrant=False)
            else:
                x = self._layer(x, layer)
            if tap is not None:
                tap(depth, x)
        norm = neox.final_layer_norm
        x = F.layer_norm(x, (x.shape[-1],), norm.weight, norm.bias, self.eps)
        if tap is not None:
            tap(len(neox.layers) + 1, x)
        return x

    def logits(
        self, input_ids: torch.Tensor, tap: Callable[[int, torch.Tensor], None] | None = None
    ) -> torch.Tensor:
        """Full logits (B, T, V), for measuring rather than training; `tap` as in hidden_states."""
        return self.head.logits(self.hidden_states(input_ids, tap))

    def forward(self, input_ids: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of predicting `targets` (B, T) from `input_ids` (B, T), in fp32."""
        hidden = self.hidden_states(input_ids).flatten(0, 1)
        return self.head.loss(hidden, targets.flatten(), self.loss_chunk)
