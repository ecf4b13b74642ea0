"""Synthetic languages as a source of runs: the plan (stages, names, what is shared) and the
language stage's files (tokenizer, token streams, language.json), without Snakemake."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest

from saturation.config import ConfigError, validate_config
from saturation.plan import make_plan
from saturation.plan.pretrained import model_name
from saturation.plan.synthetic import SyntheticRun, language_recipe, oracle_dims, train_tokens
from saturation.synthetic.stream import documents_for, language_of, write_language
from saturation.tokens import open_tokens, read_header
from tests.test_plan import merged

LANGUAGE = {"name": "r4", "vocab": 32, "rank": 4, "entropy": 2.0}


@pytest.fixture
def config() -> dict:
    return validate_config(
        merged({
            "widths": [{"width": 32}],
            "synthetic": {"languages": [LANGUAGE], "widths": [{"width": 8}, {"width": 16}]},
            "train": {"seeds": [0, 1]},
        })
    )  # fmt: skip


def test_one_run_per_language_width_and_seed(config: dict) -> None:
    plan = make_plan(config)
    synthetic = {name: run for name, run in plan.runs.items() if isinstance(run, SyntheticRun)}
    assert sorted(synthetic) == ["r4-w16-s0", "r4-w16-s1", "r4-w8-s0", "r4-w8-s1"]
    assert {model_name(name) for name in synthetic} == {"r4-w16", "r4-w8"}
    languages = {run.language.id for run in synthetic.values()}
    assert len(languages) == 1  # one language stage, shared by its runs and listed once
    assert [s.id for s in plan.stages()].count(languages.pop()) == 1
    run = synthetic["r4-w8-s1"]
    assert run.tokens is run.language and run.evaluate is None  # analysed, never evaluated
    assert run.pretrain.recipe["tokens"] == run.pretrain.recipe["tokenizer"] == run.language.id
    assert run.analyze.recipe["tokens"] == run.language.id
    assert dict(run.attributes) == {"family": "gpt_neox", "width": 8, "layers": 2, "seed": 1,
                                    "head": "linear", "logit_rank": 8, "lr": 3e-3,
                                    "weight_decay": 0.1, "batch_size": 32, "steps": 3000,
                                    "language": "r4"}  # fmt: skip
    assert plan.runs["w32-s0"].evaluate is not None  # the text run keeps its tasks


def test_the_language_recipe(config: dict) -> None:
    """Defaults filled (one language, one id however it is spelled); a fresh train stream."""
    recipe = language_recipe(config, config["synthetic"]["languages"][0])
    assert recipe["language"] == {"vocab": 32, "rank": 4, "order": 1, "kind": "logit",
                                  "profile": "flat", "zipf": 1.0, "entropy": 2.0, "seed": 0}  # fmt: skip
    assert recipe["tokens"]["train"] == train_tokens(config) == 400 * 16 * 128 + 1
    assert oracle_dims(config, rank=4, vocab=32) == [2, 3, 4, 5, 6, 8, 16]
    spelled = validate_config(
        merged({
            "widths": [{"width": 32}], "train": {"seeds": [0, 1]},
            "synthetic": {"languages": [{**LANGUAGE, "order": 1, "kind": "logit"}],
                          "widths": [{"width": 8}, {"width": 16}]},
        })
    )  # fmt: skip
    assert make_plan(spelled).runs["r4-w8-s0"].language.id == (
        make_plan(config).runs["r4-w8-s0"].language.id
    )


def test_a_language_change_moves_only_its_runs(config: dict) -> None:
    before = make_plan(config)
    changed = copy.deepcopy(config)
    changed["synthetic"]["languages"][0]["rank"] = 5
    after = make_plan(changed)
    assert after.runs["w32-s0"].pretrain.id == before.runs["w32-s0"].pretrain.id
    assert after.runs["r4-w8-s0"].pretrain.id != before.runs["r4-w8-s0"].pretrain.id
    dims = copy.deepcopy(config)
    dims["synthetic"]["oracle_dims"] = [2, 4]
    moved = make_plan(dims).runs["r4-w8-s0"]
    assert moved.oracle.id != before.runs["r4-w8-s0"].oracle.id  # the oracle alone
    assert moved.pretrain.id == before.runs["r4-w8-s0"].pretrain.id


def test_bad_language_settings_are_refused() -> None:
    with pytest.raises(ConfigError, match="name"):
        validate_config(merged({"synthetic": {"languages": [{**LANGUAGE, "name": "R 4"}]}}))
    with pytest.raises(ConfigError, match="kind"):
        validate_config(merged({"synthetic": {"languages": [{**LANGUAGE, "kind": "low"}]}}))
    odd = {  # head dim 6 at 25 %: 1 rotary dim
        "widths": [{"width": 8}, {"width": 6, "heads": 1}],
        "model": {"rotary_pct": 0.25},
    }
    with pytest.raises(ConfigError, match=r"synthetic.widths\[1\]: rotary dims"):
        validate_config(merged({"synthetic": {"languages": [LANGUAGE], **odd}}))


def test_the_language_files(tmp_path: Path) -> None:
    """A symbol tokenizer, token files of whole documents (EOS after each, symbols from id 2),
    the train and val streams independent chains, and language.json with H*."""
    from saturation.tokenizer import EOS_ID, load_tokenizer

    recipe = {"language": {"vocab": 16, "rank": 2, "entropy": 1.5}, "document_length": 99,
              "tokens": {"train": 1000, "val": 300, "test": 50}, "version": 1}  # fmt: skip
    info = write_language(recipe, tmp_path)
    assert info["entropy"] == pytest.approx(1.5, abs=1e-8)
    assert json.loads((tmp_path / "language.json").read_text()) == info
    tokenizer = load_tokenizer(tmp_path / "tokenizer")
    assert len(tokenizer) == 18 and tokenizer.eos_token_id == EOS_ID
    streams = {}
    for split, tokens in recipe["tokens"].items():
        header = read_header(tmp_path / f"{split}.json")
        ids = np.asarray(open_tokens(tmp_path / f"{split}.bin", verify=True))
        documents = documents_for(tokens, 99)
        assert header.documents == documents and len(ids) == documents * 100 >= tokens
        assert (ids.reshape(documents, 100)[:, -1] == EOS_ID).all()
        body = ids.reshape(documents, 100)[:, :-1]
        assert body.min() >= 2 and body.max() <= 17
        streams[split] = body
    assert not np.array_equal(streams["train"][:3], streams["val"][:3])
    assert tokenizer.decode(streams["test"][0, :3].tolist()) == " ".join(
        f"s{i - 2}" for i in streams["test"][0, :3]
    )
    again = tmp_path / "again"
    write_language(recipe, again)
    assert (again / "train.bin").read_bytes() == (tmp_path / "train.bin").read_bytes()
    assert language_of(recipe).entropy == info["entropy"]


def test_synthetic_train_and_model_settings_apply_to_its_runs_alone() -> None:
    """`synthetic.train` / `synthetic.model` override `train` / `model` for the synthetic runs
    (their recipes and their fresh stream's length), never for the text runs; the rotary check
    reads the synthetic model's rotary_pct."""
    config = validate_config(
        merged({
            "widths": [{"width": 32}],
            "synthetic": {
                "languages": [LANGUAGE], "widths": [{"width": 6, "heads": 1}],
                "train": {"steps": 50, "lr": 3e-3}, "model": {"rotary_pct": 1.0},
            },
        })
    )  # fmt: skip
    plan = make_plan(config)
    synthetic, text = plan.runs["r4-w6-s0"].pretrain.recipe, plan.runs["w32-s0"].pretrain.recipe
    assert (synthetic["train"]["steps"], synthetic["train"]["lr"]) == (50, 3e-3)
    assert synthetic["model"]["rotary_pct"] == 1.0 and text["model"]["rotary_pct"] == 0.25
    assert (text["train"]["steps"], text["train"]["lr"]) == (400, 1e-3)
    language = plan.runs["r4-w6-s0"].language.recipe
    assert language["tokens"]["train"] == 50 * 16 * 128 + 1


def test_a_width_that_reads_more_lengthens_the_fresh_stream() -> None:
    """A synthetic width's own batch_size and steps: its run trains with them, and the stream
    is sized for the run that reads most, so no run repeats a token; a width reading less
    leaves the stream as it was."""
    widths = [{"width": 8}, {"width": 8, "batch_size": 64, "tag": "bs64"},
              {"width": 8, "batch_size": 4, "steps": 200, "tag": "bs4"}]  # fmt: skip
    config = validate_config(
        merged({"widths": [], "synthetic": {"languages": [LANGUAGE], "widths": widths,
                                            "train": {"steps": 50, "batch_size": 16}}})
    )  # fmt: skip
    plan = make_plan(config)
    assert plan.runs["r4-w8-bs64-s0"].pretrain.recipe["train"]["batch_size"] == 64
    assert plan.runs["r4-w8-bs4-s0"].pretrain.recipe["train"]["steps"] == 200
    assert plan.runs["r4-w8-s0"].language.recipe["tokens"]["train"] == 50 * 64 * 64 + 1
    smaller = copy.deepcopy(config)
    del smaller["synthetic"]["widths"][1]  # now the global batch reads most: 50 × 16 > 200 × 4
    language = make_plan(validate_config(smaller)).runs["r4-w8-bs4-s0"].language
    assert language.recipe["tokens"]["train"] == 50 * 16 * 64 + 1
    longer = copy.deepcopy(smaller)
    longer["synthetic"]["widths"][1]["steps"] = 400  # 400 × 4 > 50 × 16
    language = make_plan(validate_config(longer)).runs["r4-w8-bs4-s0"].language
    assert language.recipe["tokens"]["train"] == 400 * 4 * 64 + 1
