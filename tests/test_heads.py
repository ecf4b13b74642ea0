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
from safetensors.numpy import load_file

from saturation.model.heads import HEAD_KEY, HEADS, LinearHead, head_class, read_head_matrix
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
