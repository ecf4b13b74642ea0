"""The LM head seam: every use of the head (training loss, logits, strict loading, the matrix
whose spectrum is measured) goes through the head class its checkpoint names."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.numpy import load_file, save_file
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

from saturation.model.heads import (
    HEAD_KEY,
    HEADS,
    LinearHead,
    head_class,
    read_head_matrix,
    tied_embeddings,
)
from saturation.model.neox import FastGPTNeoX
from saturation.model.shape import ModelShape, build_model
from saturation.model.weights import load_fast_neox


def test_a_stock_checkpoint_has_the_linear_head(tiny_run: Path) -> None:
    folder = tiny_run / "checkpoints" / "step12"
    assert head_class(json.loads((folder / "config.json").read_text())) is LinearHead
    weights = load_file(folder / "model.safetensors")["embed_out.weight"]
    np.testing.assert_array_equal(read_head_matrix(folder, n_rows=300), weights[:300])


def test_the_head_is_a_view_of_the_models_own_weights() -> None:
    model = build_model(ModelShape(32, 1, 2, 256, 16), seed=0)
    fast = FastGPTNeoX(model)
    unembedding = model.get_output_embeddings()
    assert fast.head.linear.weight is unembedding.weight  # one set of weights to train
    hidden = torch.randn(10, 32)
    targets = torch.randint(0, 256, (10,))
    with torch.no_grad():
        expected = F.cross_entropy(unembedding(hidden), targets)
        torch.testing.assert_close(fast.head.logits(hidden), unembedding(hidden))
        torch.testing.assert_close(fast.head.loss(hidden, targets, chunk=3), expected)


def test_an_unknown_head_is_refused_naming_the_file(tiny_run: Path, tmp_path: Path) -> None:
    folder = shutil.copytree(tiny_run / "checkpoints" / "step12", tmp_path / "step12")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(config | {HEAD_KEY: "mixture"}))
    message = f"{HEAD_KEY}: unknown head 'mixture' \\(known: {', '.join(HEADS)}\\)"
    with pytest.raises(ValueError, match=message):
        read_head_matrix(folder)
    with pytest.raises(ValueError, match=f"{folder / 'config.json'}: {message}"):
        load_fast_neox(folder)


def test_tied_or_not_as_transformers_reads_config_json() -> None:
    """Absent from a file when it is the default: True (PretrainedConfig), False for GPT-NeoX."""
    assert tied_embeddings({}) and tied_embeddings({"model_type": "llama"})
    assert not tied_embeddings({"model_type": "gpt_neox"})
    assert not tied_embeddings({"model_type": "llama", "tie_word_embeddings": False})
    assert tied_embeddings({"model_type": "gpt_neox", "tie_word_embeddings": True})


def test_a_tied_gpt_neox_head_is_its_input_embedding(tmp_path: Path) -> None:
    config = GPTNeoXConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1,
                           num_attention_heads=2, intermediate_size=32,
                           max_position_embeddings=16, tie_word_embeddings=True)  # fmt: skip
    GPTNeoXForCausalLM(config).save_pretrained(tmp_path)
    state = load_file(tmp_path / "model.safetensors")
    assert "embed_out.weight" not in state
    np.testing.assert_array_equal(
        read_head_matrix(tmp_path, n_rows=50), state["gpt_neox.embed_in.weight"][:50]
    )


def test_the_head_under_transformers_5s_name_loads(tiny_run: Path, tmp_path: Path) -> None:
    """A GPT-NeoX file written from transformers 5's state dict names the head `lm_head`."""
    folder = shutil.copytree(tiny_run / "checkpoints" / "step12", tmp_path / "step12")
    state = load_file(folder / "model.safetensors")
    state["lm_head.weight"] = state.pop("embed_out.weight")
    save_file(state, str(folder / "model.safetensors"))
    ids = torch.randint(0, 300, (2, 8))
    with torch.no_grad():
        logits = load_fast_neox(folder).logits(ids)
        expected = load_fast_neox(tiny_run / "checkpoints" / "step12").logits(ids)
    np.testing.assert_array_equal(read_head_matrix(folder), state["lm_head.weight"])
    torch.testing.assert_close(logits, expected, rtol=0, atol=0)
