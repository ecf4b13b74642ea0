"""Public checkpoints of every family through the same measurements: weights in any format
(safetensors or pickles, fp16/bf16/fp32, sharded, tied heads saved once), the LM head read
without building the model, and the held-out pass through FastGPTNeoX (GPT-NeoX) or the
transformers adapter (the others), each against the model's own transformers forward."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import (
    AutoModelForCausalLM,
    Gemma2Config,
    GPT2Config,
    GPTNeoXConfig,
    LlamaConfig,
    OPTConfig,
    PretrainedConfig,
)

from saturation.checkpoints import count_parameters, weight_files
from saturation.measure.analysis import analyze_checkpoint
from saturation.measure.anisotropy import AnisotropyMeter
from saturation.measure.heldout import heldout_windows
from saturation.model.heads import read_head_matrix
from saturation.model.hf_forward import TransformersCausalLM, load_measured_model
from saturation.model.neox import FastGPTNeoX
from saturation.tokenizer import load_tokenizer, train_bpe_tokenizer
from saturation.tokens import open_tokens

SEQ_LEN, VAL_TOKENS, BATCH = 16, 128, 3
SMALL = {"hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
         "intermediate_size": 32, "max_position_embeddings": 64}  # fmt: skip


def _special_ids(tokenizer_dir: Path) -> dict[str, int]:
    tokenizer = load_tokenizer(tokenizer_dir)
    return {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id}  # fmt: skip


def _model(config: PretrainedConfig, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(config)


def _neox(vocab: int, ids: dict[str, int], folder: Path) -> None:
    """fp16 safetensors, a head padded beyond the tokenizer's ids (as Pythia's)."""
    config = GPTNeoXConfig(vocab_size=vocab + 20, **SMALL, **ids)
    _model(config, 0).half().save_pretrained(folder)


def _neox_bin(vocab: int, ids: dict[str, int], folder: Path) -> None:
    """An old Pythia upload: fp16 `pytorch_model.bin` with the attention buffers, config.json
    with `rotary_pct` / `rotary_emb_base`."""
    config = GPTNeoXConfig(vocab_size=vocab + 20, **SMALL, **ids)
    state = {key: value.half() for key, value in _model(config, 1).state_dict().items()}
    state["embed_out.weight"] = state.pop("lm_head.weight")  # the name in Pythia's files
    mask = torch.tril(torch.ones(64, 64, dtype=torch.bool))[None, None]
    for layer in range(SMALL["num_hidden_layers"]):
        state[f"gpt_neox.layers.{layer}.attention.bias"] = mask
        state[f"gpt_neox.layers.{layer}.attention.masked_bias"] = torch.tensor(-1e9)
        state[f"gpt_neox.layers.{layer}.attention.rotary_emb.inv_freq"] = torch.ones(1)
    torch.save(state, folder / "pytorch_model.bin")
    legacy = {key: value for key, value in config.to_dict().items() if key != "rope_parameters"}
    legacy |= {"rotary_pct": 0.25, "rotary_emb_base": 10000, "tie_word_embeddings": False}
    (folder / "config.json").write_text(json.dumps(legacy))


def _gpt2(vocab: int, ids: dict[str, int], folder: Path) -> None:
    """A tied head saved once, bf16, sharded safetensors with an index."""
    config = GPT2Config(vocab_size=vocab, n_embd=16, n_layer=2, n_head=2, n_positions=64, **ids)
    _model(config, 2).to(torch.bfloat16).save_pretrained(folder, max_shard_size="20KB")
    assert (folder / "model.safetensors.index.json").is_file()


def _llama(vocab: int, ids: dict[str, int], folder: Path) -> None:
    """A tied head, fp32 `pytorch_model.bin` without lm_head.weight."""
    config = LlamaConfig(vocab_size=vocab, **SMALL, tie_word_embeddings=True, **ids)
    state = _model(config, 3).state_dict()
    del state["lm_head.weight"]
    torch.save(state, folder / "pytorch_model.bin")
    config.save_pretrained(folder)


def _opt(vocab: int, ids: dict[str, int], folder: Path) -> None:
    """A tied head read after `project_out` (word_embed_proj_dim < hidden_size)."""
    config = OPTConfig(vocab_size=vocab, hidden_size=16, num_hidden_layers=2, ffn_dim=32,
                       num_attention_heads=2, max_position_embeddings=64,
                       word_embed_proj_dim=8, **ids)  # fmt: skip
    _model(config, 4).save_pretrained(folder)


def _gemma2(vocab: int, ids: dict[str, int], folder: Path) -> None:
    """Logits soft-capped after the head; a cap small enough to matter."""
    config = Gemma2Config(vocab_size=vocab, **SMALL, num_key_value_heads=1, head_dim=8,
                          final_logit_softcapping=2.0, **ids)  # fmt: skip
    _model(config, 5).save_pretrained(folder)


BUILDERS: dict[str, Callable[[int, dict[str, int], Path], None]] = {
    "neox": _neox, "neox_bin": _neox_bin, "gpt2": _gpt2, "llama": _llama, "opt": _opt,
    "gemma2": _gemma2,
}  # fmt: skip
NEOX = ("neox", "neox_bin")
OTHERS = [name for name in BUILDERS if name not in NEOX]


@pytest.fixture(scope="module")
def families(tmp_path_factory: pytest.TempPathFactory, tiny_data: dict) -> dict[str, Path]:
    """One checkpoint folder per family, each carrying `tiny_data`'s tokenizer."""
    root = tmp_path_factory.mktemp("families")
    tokenizer = load_tokenizer(tiny_data["tokenizer"])
    ids = _special_ids(tiny_data["tokenizer"])
    folders = {}
    for name, build in BUILDERS.items():
        folder = root / name
        folder.mkdir()
        build(len(tokenizer), ids, folder)
        tokenizer.save_pretrained(folder)
        folders[name] = folder
    return folders


def reference_model(folder: Path) -> torch.nn.Module:
    return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()


def analyze(folder: Path, val_bin: Path, out: Path, device: str = "cpu") -> dict:
    """analyze_checkpoint on the module's sample, its files named by `device` in `out`."""
    return analyze_checkpoint(
        folder, val_bin, SEQ_LEN, VAL_TOKENS, BATCH, metrics_out=out / f"{device}.json",
        sigma_out=out / f"{device}.npy", device=device,
    )  # fmt: skip


def test_weight_files_in_every_format(families: dict[str, Path], tmp_path: Path) -> None:
    index = json.loads((families["gpt2"] / "model.safetensors.index.json").read_text())
    shards = sorted({families["gpt2"] / name for name in index["weight_map"].values()})
    assert weight_files(families["gpt2"]) == shards and len(shards) > 1
    assert weight_files(families["llama"]) == [families["llama"] / "pytorch_model.bin"]
    assert weight_files(families["neox"]) == [families["neox"] / "model.safetensors"]
    with pytest.raises(FileNotFoundError, match=f"{tmp_path}: no "):
        weight_files(tmp_path)
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(FileNotFoundError, match="lists shards that are missing"):
        weight_files(tmp_path)


@pytest.mark.parametrize("family", BUILDERS)
def test_head_matrix_is_the_models_output_embedding(
    families: dict[str, Path], tiny_data: dict, family: str
) -> None:
    n_rows = len(load_tokenizer(tiny_data["tokenizer"]))
    head = read_head_matrix(families[family], n_rows=n_rows)
    expected = reference_model(families[family]).get_output_embeddings().weight[:n_rows]
    assert head.dtype == np.float32 and head.shape == (n_rows, expected.shape[1])
    np.testing.assert_array_equal(head, expected.detach().float().numpy())


@pytest.mark.parametrize("family", BUILDERS)
def test_parameters_are_counted_as_the_model_has_them(
    families: dict[str, Path], family: str
) -> None:
    """Tied heads once, the legacy buffers not at all."""
    model = reference_model(families[family])
    assert count_parameters(families[family]) == sum(p.numel() for p in model.parameters())


def test_a_tied_head_needs_one_input_embedding(families: dict[str, Path], tmp_path: Path) -> None:
    untied = shutil.copytree(families["llama"], tmp_path / "untied")
    config = json.loads((untied / "config.json").read_text())
    (untied / "config.json").write_text(json.dumps(config | {"tie_word_embeddings": False}))
    with pytest.raises(KeyError, match=f"{untied}: none of .* does not tie the head"):
        read_head_matrix(untied)
    twice = shutil.copytree(families["llama"], tmp_path / "twice")
    state = torch.load(twice / "pytorch_model.bin", weights_only=True)
    state["extra.embed_tokens.weight"] = state["model.embed_tokens.weight"]
    torch.save(state, twice / "pytorch_model.bin")
    with pytest.raises(KeyError, match=f"{twice}: a tied head, but 2 input embeddings"):
        read_head_matrix(twice)


def test_the_measured_model_is_chosen_by_family(families: dict[str, Path]) -> None:
    assert isinstance(load_measured_model(families["neox_bin"]), FastGPTNeoX)
    adapter = load_measured_model(families["gemma2"], device="cpu")
    assert isinstance(adapter, TransformersCausalLM) and adapter.head.softcap == 2.0


@pytest.mark.parametrize("family", BUILDERS)
def test_analysis_matches_the_models_own_forward(
    families: dict[str, Path], tiny_data: dict, tmp_path: Path, family: str
) -> None:
    """val_loss as transformers' own shifted loss; anisotropy at every depth the family has."""
    record = analyze(families[family], tiny_data["val"], tmp_path)
    windows = torch.from_numpy(heldout_windows(open_tokens(tiny_data["val"]), SEQ_LEN, VAL_TOKENS))
    model = reference_model(families[family])
    with torch.no_grad():
        expected = model(input_ids=windows, labels=windows).loss.item()
        states = model.base_model(input_ids=windows[:, :-1], output_hidden_states=True)
    metrics = record["metrics"]
    assert metrics["val_loss"] == pytest.approx(expected, rel=1e-5)
    assert record["info"]["head_rows"] == len(load_tokenizer(tiny_data["tokenizer"]))
    depths = sorted(int(key[-2:]) for key in metrics if key.startswith("anisotropy_d"))
    layers = model.config.num_hidden_layers
    if family in NEOX:  # FastGPTNeoX: each layer's output, then the final norm's
        assert depths == list(range(layers + 2))
        return
    assert depths == list(range(len(states.hidden_states))) == list(range(layers + 1))
    for depth, hidden in enumerate(states.hidden_states):
        meter = AnisotropyMeter()
        meter.add(depth, hidden.numpy())
        assert metrics[f"anisotropy_d{depth:02d}"] == pytest.approx(meter.values()[depth], abs=1e-5)


@pytest.mark.parametrize("family", BUILDERS)
def test_head_sweep_states_of_any_family(
    families: dict[str, Path], tiny_data: dict, family: str
) -> None:
    """The states a head sweep caches are what the family's own head reads: its own head's loss
    on them is the model's own forward loss (up to the states' float16 rounding), its own
    logit transform (Gemma 2's soft cap) included, over the tokenizer's ids."""
    from saturation.measure.analysis import HeldoutSample
    from saturation.measure.states import OWN_NLL, extract_states, states_array

    samples = {name: HeldoutSample.load(tiny_data[split], SEQ_LEN, VAL_TOKENS)
               for name, split in (("fit", "train"), ("heldout", "val"))}  # fmt: skip
    record, arrays = extract_states(families[family], samples, BATCH)
    windows = torch.from_numpy(samples["heldout"].windows)
    n_rows = len(load_tokenizer(tiny_data["tokenizer"]))
    with torch.no_grad():
        logits = reference_model(families[family])(input_ids=windows[:, :-1]).logits[..., :n_rows]
    nll = torch.nn.functional.cross_entropy(logits.flatten(0, 1), windows[:, 1:].flatten(),
                                            reduction="none")  # fmt: skip
    np.testing.assert_allclose(arrays[OWN_NLL], nll.numpy(), rtol=2e-3, atol=2e-3)
    assert record["info"]["width"] == arrays[states_array("fit")].shape[1]
    assert record["info"]["fit_tokens"] == record["info"]["heldout_tokens"] == VAL_TOKENS


def test_the_gpt_neox_path_never_imports_transformers(
    families: dict[str, Path], tiny_data: dict, tmp_path: Path
) -> None:
    probe = (  # a fresh interpreter: this test process has transformers loaded already
        "import sys; from pathlib import Path; "
        "from saturation.measure.analysis import analyze_checkpoint; "
        f"analyze_checkpoint(Path({str(families['neox_bin'])!r}), Path({str(tiny_data['val'])!r}), "
        f"16, 64, 3, Path({str(tmp_path / 'm.json')!r}), Path({str(tmp_path / 's.npy')!r})); "
        "print('transformers' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_logit_transform_the_adapter_lacks_is_refused(families: dict[str, Path]) -> None:
    adapter = load_measured_model(families["gpt2"])
    adapter.check_logits(families["gpt2"])
    adapter.head.multiplier = 2.0  # as if the family scaled its logits unbeknown to the adapter
    with pytest.raises(ValueError, match="model_type 'gpt2': its forward transforms the logits"):
        adapter.check_logits(families["gpt2"])


def _must_not_run(*args: object, **kwargs: object) -> None:
    raise AssertionError("the model was loaded")


def test_tokens_of_another_tokenizer_are_refused_before_the_forward(
    families: dict[str, Path], tiny_data: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "other_tokenizer"
    train_jsonl = tiny_data["tokenizer"].parent / "corpus" / "train.jsonl"
    train_bpe_tokenizer(train_jsonl, other, vocab_size=280)
    checkpoint = shutil.copytree(families["gpt2"], tmp_path / "gpt2")
    (checkpoint / "tokenizer.json").unlink()
    load_tokenizer(other).save_pretrained(checkpoint)
    monkeypatch.setattr("saturation.model.hf_forward.load_measured_model", _must_not_run)
    with pytest.raises(ValueError) as error:
        analyze(checkpoint, tiny_data["val"], tmp_path)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(
        f"{tiny_data['val']} was tokenized with a different tokenizer than {checkpoint}"
    )
    assert not (tmp_path / "cpu.json").exists()


def test_a_head_smaller_than_the_vocabulary_is_refused(
    tiny_data: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = _special_ids(tiny_data["tokenizer"])
    _gpt2(280, ids, tmp_path / "small")  # 280 rows for 300 ids
    load_tokenizer(tiny_data["tokenizer"]).save_pretrained(tmp_path / "small")
    monkeypatch.setattr("saturation.model.hf_forward.load_measured_model", _must_not_run)
    with pytest.raises(ValueError, match="a vocabulary of 300 ids, more than the 280 rows"):
        analyze(tmp_path / "small", tiny_data["val"], tmp_path)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("family", ["neox", "gpt2", "gemma2"])
def test_analysis_on_the_gpu_agrees_with_the_cpu(
    families: dict[str, Path], tiny_data: dict, tmp_path: Path, family: str
) -> None:
    cpu = analyze(families[family], tiny_data["val"], tmp_path)["metrics"]
    cuda = analyze(families[family], tiny_data["val"], tmp_path, device="cuda")["metrics"]
    assert cpu.keys() == cuda.keys()
    for key, value in cpu.items():
        assert cuda[key] == pytest.approx(value, rel=1e-3, abs=1e-4), key
