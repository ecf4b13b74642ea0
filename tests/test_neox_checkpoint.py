"""Checkpoints read without transformers compute what transformers computes, or fail clearly."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

from saturation.model.neox import NeoXArchitecture
from saturation.model.weights import load_fast_neox


def transformers_logits(folder: Path, ids: torch.Tensor) -> torch.Tensor:
    model = GPTNeoXForCausalLM.from_pretrained(folder, attn_implementation="eager").eval()
    with torch.no_grad():
        return model(input_ids=ids).logits


def assert_same_logits(ours: torch.Tensor, theirs: torch.Tensor) -> None:
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5 * theirs.abs().max().item())


def test_logits_match_transformers_without_importing_it(tiny_run: Path) -> None:
    folder = tiny_run / "checkpoints" / "step12"
    ids = torch.randint(0, 300, (3, 16), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ours = load_fast_neox(folder).logits(ids)
    assert_same_logits(ours, transformers_logits(folder, ids))
    probe = (  # a fresh interpreter: this test process has transformers loaded already
        "import sys; from saturation.model.weights import load_fast_neox; "
        f"load_fast_neox({str(folder)!r}); print('transformers' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_config_object_and_both_rotary_spellings_agree(tiny_run: Path) -> None:
    folder = tiny_run / "checkpoints" / "step12"
    saved = json.loads((folder / "config.json").read_text())
    rope = saved.pop("rope_parameters")
    legacy = {**saved, "rotary_pct": rope["partial_rotary_factor"], "rotary_emb_base": rope["rope_theta"]}  # fmt: skip
    from_json = NeoXArchitecture.of(json.loads((folder / "config.json").read_text()))
    assert NeoXArchitecture.of(legacy) == from_json
    assert NeoXArchitecture.of(GPTNeoXConfig.from_pretrained(folder)) == from_json
    assert NeoXArchitecture.of(from_json) is from_json
    assert (from_json.width, from_json.layers, from_json.rotary_pct) == (16, 1, 0.25)


def test_tied_head_checkpoint(tmp_path: Path) -> None:
    """save_pretrained leaves a tied head out of the file; it is the embedding matrix."""
    torch.manual_seed(0)
    config = GPTNeoXConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1,
                           num_attention_heads=2, intermediate_size=32,
                           max_position_embeddings=16, tie_word_embeddings=True)  # fmt: skip
    GPTNeoXForCausalLM(config).save_pretrained(tmp_path)
    assert "embed_out.weight" not in load_file(tmp_path / "model.safetensors")
    ids = torch.randint(0, 64, (2, 16))
    with torch.no_grad():
        ours = load_fast_neox(tmp_path).logits(ids)
    assert_same_logits(ours, transformers_logits(tmp_path, ids))


@pytest.fixture
def checkpoint_copy(tiny_run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tiny_run / "checkpoints" / "step12", tmp_path / "step12"))


def test_old_buffers_are_skipped(checkpoint_copy: Path) -> None:
    """Files from older transformers carry the causal mask and rotary frequencies as tensors."""
    weights = checkpoint_copy / "model.safetensors"
    state = load_file(weights)
    state["gpt_neox.layers.0.attention.bias"] = torch.ones(1, 1, 16, 16, dtype=torch.bool)
    state["gpt_neox.layers.0.attention.rotary_emb.inv_freq"] = torch.ones(2)
    save_file(state, weights)
    ids = torch.randint(0, 300, (1, 8))
    with torch.no_grad():
        assert load_fast_neox(checkpoint_copy).logits(ids).shape == (1, 8, 384)


def test_mismatched_weights_name_the_folder_and_key(checkpoint_copy: Path) -> None:
    weights = checkpoint_copy / "model.safetensors"
    state = load_file(weights)
    del state["gpt_neox.layers.0.mlp.dense_4h_to_h.bias"]
    save_file(state, weights)
    with pytest.raises(ValueError, match=r"step12: weights do not match config.json: missing "
                                         r"\['gpt_neox.layers.0.mlp.dense_4h_to_h.bias'\]"):  # fmt: skip
        load_fast_neox(checkpoint_copy)
    weights.unlink()
    with pytest.raises(FileNotFoundError, match=r"no \*\.safetensors"):
        load_fast_neox(checkpoint_copy)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"use_parallel_residual": False}, "use_parallel_residual: .* parallel residual only"),
        ({"hidden_act": "relu"}, "hidden_act: .* not 'relu'"),
        (
            {"rope_parameters": {"rope_type": "linear", "factor": 2.0}},
            "rope_parameters: rope_type 'linear'",
        ),
        (
            {"rope_parameters": None, "rope_scaling": {"type": "linear", "factor": 2.0}},
            "rope_scaling: rope_type 'linear'",
        ),
        ({"model_type": "llama"}, "model_type is 'llama'"),
        ({"hidden_size": None}, "config lacks hidden_size"),
    ],
)
def test_unsupported_configs_are_refused(checkpoint_copy: Path, change: dict, message: str) -> None:
    config_file = checkpoint_copy / "config.json"
    config = {**json.loads(config_file.read_text()), **change}
    config = {key: value for key, value in config.items() if value is not None}
    config_file.write_text(json.dumps(config))
    with pytest.raises(ValueError, match=f"config.json: {message}"):
        load_fast_neox(checkpoint_copy)
