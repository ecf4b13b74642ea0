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

from saturation.model.head_spec import HeadSpec
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


HEAD_SPECS = {  # every head trained here, tiny
    "linear": HeadSpec(),
    "tied": HeadSpec("tied"),
    "low_rank": HeadSpec("low_rank", 3),
    "mixture_of_softmaxes": HeadSpec("mixture_of_softmaxes", 3),
}


@pytest.mark.parametrize("kind", sorted(HEAD_SPECS))
def test_each_heads_fused_loss_and_gradients_equal_the_plain_ones(kind: str) -> None:
    """The training loss (fused, chunked) against cross-entropy of the head's own logits, in fp32:
    the loss and the gradients of every head parameter and of the hidden states."""
    model = build_model(ModelShape(8, 1, 1, 40, 16, head=HEAD_SPECS[kind]), seed=0)
    head = FastGPTNeoX(model).head
    params = list(model.get_output_embeddings().parameters())
    hidden = torch.randn(21, 8, requires_grad=True)
    targets = torch.randint(0, 40, (21,))

    def gradients(loss: torch.Tensor) -> list[torch.Tensor]:
        return [g.clone() for g in torch.autograd.grad(loss, [hidden, *params])]

    fused = head.loss(hidden, targets, chunk=4)
    plain = F.cross_entropy(head.logits(hidden).float(), targets)
    torch.testing.assert_close(fused, plain, atol=1e-5, rtol=1e-5)
    for ours, reference in zip(gradients(fused), gradients(plain), strict=True):
        torch.testing.assert_close(ours, reference, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", sorted(HEAD_SPECS))
def test_each_head_saves_and_loads_back_with_its_logits(kind: str, tmp_path: Path) -> None:
    """save_pretrained → AutoModelForCausalLM.from_pretrained (no trust_remote_code, no hub) and
    the transformers-free loader: the same logits; the matrix measured is the head's W."""
    from transformers import AutoModelForCausalLM

    import saturation.model.hf_heads  # noqa: F401 - what saturation's model loaders import

    spec = HEAD_SPECS[kind]
    model = build_model(ModelShape(8, 1, 1, 40, 16, head=spec), seed=0).eval()
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    stock = spec.class_name == "linear"
    assert config["model_type"] == ("gpt_neox" if stock else "saturation_neox")
    assert config["tie_word_embeddings"] == (kind == "tied")
    ids = torch.randint(0, 40, (2, 7))
    with torch.no_grad():
        expected = model(ids).logits
        loaded = AutoModelForCausalLM.from_pretrained(tmp_path, local_files_only=True).eval()
        torch.testing.assert_close(loaded(ids).logits, expected, rtol=0, atol=0)
        torch.testing.assert_close(load_fast_neox(tmp_path).logits(ids), expected)
    assert type(loaded).__name__ == ("GPTNeoXForCausalLM" if stock else "SaturationNeoXForCausalLM")
    matrix = read_head_matrix(tmp_path)
    assert matrix.shape == (40, 8)
    sigma = np.linalg.svd(matrix.astype(np.float64), compute_uv=False)
    if kind == "low_rank":  # W = U D: rank 3
        assert sigma[3:].max() < 1e-6 * sigma[0] and sigma[2] > 1e-3 * sigma[0]
        head = model.get_output_embeddings()
        expected_matrix = (head.up.weight @ head.down.weight).detach().numpy()
        np.testing.assert_allclose(matrix, expected_matrix, rtol=1e-5, atol=1e-7)
    elif kind == "mixture_of_softmaxes":  # the output embedding the components share
        decoder = model.get_output_embeddings().decoder.weight.detach().numpy()
        np.testing.assert_array_equal(matrix, decoder)
    else:
        embedding = model.get_output_embeddings().weight.detach().numpy()
        np.testing.assert_array_equal(matrix, embedding)
        if kind == "tied":
            assert model.get_output_embeddings().weight is model.get_input_embeddings().weight


def test_a_mixtures_logits_are_normalised_log_probabilities() -> None:
    model = build_model(ModelShape(8, 1, 1, 40, 16, head=HEAD_SPECS["mixture_of_softmaxes"]), 0)
    with torch.no_grad():
        logits = model(torch.randint(0, 40, (2, 5))).logits
    torch.testing.assert_close(logits.exp().sum(-1), torch.ones(2, 5))


@pytest.mark.parametrize("kind", ["tied", "low_rank", "mixture_of_softmaxes"])
def test_each_head_resumes_bit_exact(kind: str, tiny_data: dict, tmp_path: Path) -> None:
    """Killed after the step-4 checkpoint and resumed, a run ends byte-identical to an
    uninterrupted one, whatever its head (the linear head's: tests/test_train.py)."""
    from saturation.train.signals import TrainingStopped
    from tests.conftest import tiny_recipe, train_tiny

    recipe = tiny_recipe(steps=8)
    recipe["model"]["head"] = HEAD_SPECS[kind].recipe()
    train_tiny(tmp_path / "whole", tiny_data, recipe)
    with pytest.raises(TrainingStopped):
        train_tiny(tmp_path / "resumed", tiny_data, recipe, stop_at_step=4)
    assert train_tiny(tmp_path / "resumed", tiny_data, recipe)["resumed_from"] == 4
    final = "checkpoints/step8/model.safetensors"
    assert (tmp_path / "resumed" / final).read_bytes() == (tmp_path / "whole" / final).read_bytes()
    config = json.loads((tmp_path / "whole" / "checkpoints/step8/config.json").read_text())
    assert config.get(HEAD_KEY, "linear") == HEAD_SPECS[kind].class_name
