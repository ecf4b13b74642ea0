"""A saved GPT-NeoX checkpoint read into FastGPTNeoX, without importing transformers.

Every harvested checkpoint is measured in its own short job, where importing transformers took
≈ 3 s against 0.4–1.6 s of measuring (benchmarks/RESULTS.md). A checkpoint is config.json plus
weight files (ours: safetensors; Pythia's revisions: fp16 pickles), and FastGPTNeoX computes the
forward over any module tree that carries transformers' parameter names; so this builds that tree
from plain torch modules and loads the files into it strictly: every tensor in the files has a
place, and every place is filled.
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

import torch
from torch import nn

from saturation.checkpoints import BUFFER_KEYS, read_tensors, weight_files
from saturation.model.heads import HEADS
from saturation.model.neox import FastGPTNeoX, NeoXArchitecture


class _FromFile:
    """A module whose tensors all come from the file: its random init is skipped. (On the meta
    device that init would cost nothing but an import of torch._dynamo: 1 s per job.)"""

    def reset_parameters(self) -> None:
        pass


class _Linear(_FromFile, nn.Linear):
    pass


class _LayerNorm(_FromFile, nn.LayerNorm):
    pass


class _Embedding(_FromFile, nn.Embedding):
    pass


META = torch.device("meta")  # shapes only: the file's tensors move in later


def _block(arch: NeoXArchitecture) -> nn.Module:
    """One GPT-NeoX layer's parameters, named as in transformers' GPTNeoXLayer."""
    d, bias, device = arch.width, arch.attention_bias, META
    block = nn.Module()
    block.input_layernorm = _LayerNorm(d, eps=arch.eps, device=device)
    block.post_attention_layernorm = _LayerNorm(d, eps=arch.eps, device=device)
    block.attention = nn.Module()
    block.attention.query_key_value = _Linear(d, 3 * d, bias=bias, device=device)
    block.attention.dense = _Linear(d, d, bias=bias, device=device)
    block.mlp = nn.Module()
    block.mlp.dense_h_to_4h = _Linear(d, arch.intermediate, device=device)
    block.mlp.dense_4h_to_h = _Linear(arch.intermediate, d, device=device)
    return block


class NeoXParameters(nn.Module):
    """GPT-NeoX's parameters under transformers' names (`gpt_neox.layers.0.attention.dense.weight`,
    …, and the head's, e.g. `embed_out.weight`) in plain torch modules: what FastGPTNeoX reads,
    and nothing else.

    Built as shapes on the meta device; `load_state_dict(..., assign=True)` moves the real
    tensors in.
    """

    def __init__(self, arch: NeoXArchitecture) -> None:
        super().__init__()
        self.config = arch
        self.gpt_neox = nn.Module()
        self.gpt_neox.embed_in = _Embedding(arch.vocab_size, arch.width, device=META)
        self.gpt_neox.layers = nn.ModuleList(_block(arch) for _ in range(arch.layers))
        self.gpt_neox.final_layer_norm = _LayerNorm(arch.width, eps=arch.eps, device=META)
        linear = partial(_Linear, device=META)
        head = HEADS[arch.head].modules(arch.width, arch.vocab_size, arch.head_size, linear)
        for name, module in head.items():
            self.add_module(name, module)
        self._head_name = next(iter(head))  # `embed_out`, or `lm_head` for our other heads

    def get_output_embeddings(self) -> nn.Module:  # what the heads' `of` read, as transformers
        return getattr(self, self._head_name)


def read_weights(checkpoint_dir: str | Path) -> dict[str, torch.Tensor]:
    """Every parameter of the checkpoint's weight files (saturation.checkpoints.weight_files:
    safetensors or pickles, one file or shards) in float32, what the measurements compute in
    (and numpy, which has no bf16, can take); buffers (`BUFFER_KEYS`) left out."""
    state: dict[str, torch.Tensor] = {}
    for file in weight_files(checkpoint_dir):
        state.update(read_tensors(file))
    return {key: value.float() for key, value in state.items() if not BUFFER_KEYS.search(key)}


def load_fast_neox(checkpoint_dir: str | Path) -> FastGPTNeoX:
    """The checkpoint's model in fp32, in eval mode, ready for `logits` and `hidden_states`."""
    folder = Path(checkpoint_dir)
    config_file = folder / "config.json"
    try:
        arch = NeoXArchitecture.of(json.loads(config_file.read_text()))
    except (OSError, ValueError) as error:
        raise ValueError(f"{config_file}: {error}") from error
    state = read_weights(folder)
    HEADS[arch.head].complete_state(state, arch.tied_head)
    params = NeoXParameters(arch)
    expected = set(params.state_dict())
    missing, unexpected = sorted(expected - state.keys()), sorted(state.keys() - expected)
    if missing or unexpected:
        raise ValueError(
            f"{folder}: weights do not match config.json: missing {missing[:3]}, "
            f"unexpected {unexpected[:3]} ({len(missing)} and {len(unexpected)} in all)"
        )
    params.load_state_dict(state, strict=True, assign=True)
    return FastGPTNeoX(params).eval()
