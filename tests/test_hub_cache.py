"""The offline hub cache of tests/hub_cache.py is what huggingface_hub and transformers expect."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import huggingface_hub
import numpy as np
import pytest
import torch
from huggingface_hub.errors import LocalEntryNotFoundError
from transformers import AutoModelForCausalLM, AutoTokenizer

from saturation.tokens import open_tokens
from tests.hub_cache import (
    GPT2_TINY,
    LLAMA_TIED_BIN,
    PYTHIA_14M,
    PYTHIA_31M,
    HubCache,
    build_hub_cache,
    git_blob_sha1,
)


def snapshot(cache: HubCache, repo: str, revision: str) -> Path:
    """Where the cache holds `repo@revision` (built from the layout, not via huggingface_hub)."""
    commit = cache.revisions[repo][revision]
    return cache.cache_dir / f"models--{repo.replace('/', '--')}" / "snapshots" / commit


def every_revision(cache: HubCache) -> list[tuple[str, str]]:
    return [(repo, rev) for repo, revisions in cache.revisions.items() for rev in revisions]


def held_out_loss(model: torch.nn.Module, val: Path) -> float:
    """Mean next-token loss on the first 16 windows of 32 tokens of the validation split."""
    ids = torch.from_numpy(np.asarray(open_tokens(val)[: 16 * 32], dtype=np.int64))
    with torch.no_grad():
        return model(input_ids=ids.view(16, 32), labels=ids.view(16, 32)).loss.item()


def load(folder: Path) -> torch.nn.Module:
    return AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()


def test_revisions(hub_cache: HubCache) -> None:
    assert set(hub_cache.revisions) == {PYTHIA_14M, PYTHIA_31M, GPT2_TINY, LLAMA_TIED_BIN}
    for repo in (PYTHIA_14M, PYTHIA_31M):
        commits = hub_cache.revisions[repo]
        assert set(commits) == {"step0", "step1", "step2", "main"}
        assert commits["main"] == commits["step2"]
        assert len({commits["step0"], commits["step1"], commits["step2"]}) == 3
    for repo in (GPT2_TINY, LLAMA_TIED_BIN):
        assert set(hub_cache.revisions[repo]) == {"main"}
    for repo, revision in every_revision(hub_cache):
        commit = hub_cache.revisions[repo][revision]
        assert len(commit) == 40 and int(commit, 16) >= 0
        ref = snapshot(hub_cache, repo, revision).parents[1] / "refs" / revision
        assert ref.read_text() == commit  # no trailing newline, as huggingface_hub writes it


def test_huggingface_hub_resolves_offline(hub_cache: HubCache) -> None:
    for repo, revision in every_revision(hub_cache):
        found = huggingface_hub.snapshot_download(
            repo, revision=revision, cache_dir=hub_cache.cache_dir, local_files_only=True
        )
        assert Path(found) == snapshot(hub_cache, repo, revision)
        config = huggingface_hub.try_to_load_from_cache(
            repo, "config.json", revision=revision, cache_dir=hub_cache.cache_dir
        )
        assert isinstance(config, str) and json.loads(Path(config).read_text())["model_type"]
    assert (
        huggingface_hub.try_to_load_from_cache(
            PYTHIA_14M, "config.json", revision="step999", cache_dir=hub_cache.cache_dir
        )
        is None
    )
    with pytest.raises(LocalEntryNotFoundError):
        huggingface_hub.snapshot_download(
            PYTHIA_14M, revision="step999", cache_dir=hub_cache.cache_dir, local_files_only=True
        )
    scan = huggingface_hub.scan_cache_dir(hub_cache.cache_dir)
    assert not scan.warnings and not scan.incomplete_files
    assert {repo.repo_id for repo in scan.repos} == set(hub_cache.revisions)


def test_snapshot_files_link_to_named_blobs(hub_cache: HubCache) -> None:
    for repo, revision in every_revision(hub_cache):
        folder = snapshot(hub_cache, repo, revision)
        names = {path.name for path in folder.iterdir()}
        assert {"config.json", "tokenizer.json"} <= names
        for path in folder.iterdir():
            target = os.readlink(path)
            assert target.startswith("../../blobs/"), target  # relative, as hf_hub_download links
            data = path.read_bytes()
            if path.suffix in (".safetensors", ".bin"):
                assert Path(target).name == hashlib.sha256(data).hexdigest()
            else:
                assert Path(target).name == git_blob_sha1(data)
        tree = json.loads((folder.parents[1] / "trees" / f"{folder.name}.json").read_text())
        assert set(tree["files"]) == names


def test_checkpoint_formats(hub_cache: HubCache) -> None:
    pythia_14m = snapshot(hub_cache, PYTHIA_14M, "main")
    assert {p.name for p in pythia_14m.iterdir()} >= {"model.safetensors", "config.json"}
    assert json.loads((pythia_14m / "config.json").read_text())["dtype"] == "float16"

    pythia_31m = snapshot(hub_cache, PYTHIA_31M, "main")
    legacy = json.loads((pythia_31m / "config.json").read_text())
    assert legacy["rotary_pct"] == 0.25 and "rope_parameters" not in legacy
    assert legacy["torch_dtype"] == "float16"
    state = torch.load(pythia_31m / "pytorch_model.bin", weights_only=True)
    assert state["gpt_neox.layers.0.attention.bias"].dtype == torch.bool
    assert state["gpt_neox.layers.1.attention.masked_bias"].item() == -1e9
    assert state["gpt_neox.embed_in.weight"].dtype == torch.float16

    gpt2 = snapshot(hub_cache, GPT2_TINY, "main")
    index = json.loads((gpt2 / "model.safetensors.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) >= 2 and all((gpt2 / shard).is_file() for shard in shards)
    assert "lm_head.weight" not in index["weight_map"]

    llama = torch.load(snapshot(hub_cache, LLAMA_TIED_BIN, "main") / "pytorch_model.bin")
    assert "lm_head.weight" not in llama
    assert llama["model.embed_tokens.weight"].dtype == torch.float32


def test_every_snapshot_loads(hub_cache: HubCache) -> None:
    sizes = {}
    for repo, revision in every_revision(hub_cache):
        folder = snapshot(hub_cache, repo, revision)
        model, info = AutoModelForCausalLM.from_pretrained(folder, output_loading_info=True)
        tokenizer = AutoTokenizer.from_pretrained(folder)
        assert not info["missing_keys"] and not info["unexpected_keys"], (repo, info)
        rows = model.get_output_embeddings().weight.shape[0]
        if repo in (PYTHIA_14M, PYTHIA_31M):
            assert rows > len(tokenizer) and rows % 16 == 0
        else:
            assert rows == len(tokenizer)
            assert model.get_output_embeddings().weight is model.get_input_embeddings().weight
        sizes[repo] = model.num_parameters()
    assert sizes[PYTHIA_31M] > sizes[PYTHIA_14M]
    # transformers 5 loads in the checkpoint's dtype by default, old `torch_dtype` key included
    by_id = AutoModelForCausalLM.from_pretrained(
        PYTHIA_31M, revision="step1", cache_dir=hub_cache.cache_dir, local_files_only=True
    )
    assert by_id.dtype == torch.float16


def test_local_model_is_a_plain_folder(hub_cache: HubCache) -> None:
    files = list(hub_cache.local_model.iterdir())
    assert not any(path.is_symlink() for path in files)
    assert hub_cache.cache_dir not in hub_cache.local_model.parents
    model = AutoModelForCausalLM.from_pretrained(hub_cache.local_model)
    assert model.config.model_type == "gpt2" and model.dtype == torch.bfloat16
    assert len(AutoTokenizer.from_pretrained(hub_cache.local_model)) == model.config.vocab_size


def test_training_revisions_lower_the_loss(hub_cache: HubCache, tiny_data: dict[str, Path]) -> None:
    val = tiny_data["val"]
    small = {rev: held_out_loss(load(snapshot(hub_cache, PYTHIA_14M, rev)), val) for rev in
             ("step0", "step1", "step2")}  # fmt: skip
    assert small["step2"] < small["step1"] < small["step0"]
    larger = held_out_loss(load(snapshot(hub_cache, PYTHIA_31M, "step2")), val)
    assert larger < small["step2"]


def test_build_is_deterministic(
    hub_cache: HubCache, tiny_data: dict[str, Path], tmp_path: Path
) -> None:
    # commits hash every file's blob name, so equal commits mean byte-identical files
    again = build_hub_cache(
        tmp_path / "again", tiny_data["tokenizer"], open_tokens(tiny_data["train"])
    )
    assert again.revisions == hub_cache.revisions
    untrained = build_hub_cache(tmp_path / "untrained", tiny_data["tokenizer"])
    assert untrained.revisions[GPT2_TINY] == hub_cache.revisions[GPT2_TINY]
    assert untrained.revisions[PYTHIA_14M]["step1"] != hub_cache.revisions[PYTHIA_14M]["step1"]
    assert len(set(untrained.revisions[PYTHIA_14M].values())) == 3
