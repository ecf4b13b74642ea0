"""Published checkpoint suites (Pythia, any causal LM in the HF cache or on disk) as runs: the plan
of a `suites` config, the job-side resolver on a real offline cache layout (tests/hub_cache.py),
and the whole workflow through the real `snakemake` on it, offline."""

from __future__ import annotations

import json
import re
import shutil
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import yaml

from saturation.checkpoints import CorruptCheckpointError, read_manifest
from saturation.config import ConfigError, merge_configs, validate_config
from saturation.hub import (
    MissingRevisionError,
    download_estimate,
    harvest_suite,
    pythia_revision_bytes,
    resolve_snapshot,
)
from saturation.plan import make_plan
from saturation.plan.suites import (
    PYTHIA_TOKENS_PER_STEP,
    SuiteRun,
    missing_revisions,
    pythia_parameters,
    pythia_schedule,
)
from tests.conftest import DRAWN_FIGURES, ROOT, snakemake, write_config
from tests.hub_cache import GPT2_TINY, LLAMA_TIED_BIN, PYTHIA_14M, PYTHIA_31M, padded_vocab

PRESET = ROOT / "configs" / "pythia-suite.yaml"


def suite_config(cache: Path, local_model: Path, **extra: object) -> dict:
    """Two Pythia sizes at three revisions, a sharded bf16 GPT-2, a tied Llama in a .bin and a
    local folder, all from the fixture cache: no run of our own."""
    return {
        "widths": [],
        "synthetic": {"languages": []},
        "corpus": {"max_documents": 300, "val_fraction": 0.05, "test_fraction": 0.05},
        "suites": {
            "cache_dir": str(cache),
            "seq_len": 32,
            "pythia": {"sizes": ["14m", "31m"], "steps": [0, 1, 2]},
            "models": [
                {"name": "gpt2-tiny", "hf": GPT2_TINY, "steps": [100], "tokens_per_step": 1000},
                {
                    "name": "llama-tied",
                    "hf": LLAMA_TIED_BIN,
                    "steps": [100],
                    "tokens_per_step": 1000,
                },
                {
                    "name": "gpt2-local",
                    "path": str(local_model),
                    "steps": [100],
                    "tokens_per_step": 1000,
                },
            ],
        },
        "analysis": {"val_tokens": 512, "batch_size": 8},
        "evaluation": {
            "cloze_items": 20,
            "perplexity_documents": 4,
            "checkpoints": {"every_k": None, "include": ["final"]},
        },
    } | extra


def planned(overrides: dict) -> dict:
    return validate_config(merge_configs(yaml.safe_load((ROOT / "config.yaml").read_text()),
                                         overrides))  # fmt: skip


def test_pythia_facts() -> None:
    schedule = pythia_schedule()
    assert len(schedule) == 154 and schedule[:12] == [0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512,
                                                     1000] and schedule[-1] == 143_000  # fmt: skip
    assert pythia_parameters("70m") == 70_426_624  # the count the suite's paper lists
    assert pythia_parameters("410m") == 405_334_016
    assert round(pythia_revision_bytes("70m") / 1e6) == 166  # the hub's 166 MB per revision


def test_the_plan_of_a_pythia_suite() -> None:
    config = planned(
        {
            "widths": [],
            "synthetic": {"languages": []},
            "suites": {"pythia": {"sizes": ["14m", "160m"], "every": 1000}},
        }
    )
    plan = make_plan(config)
    assert list(plan.runs) == ["pythia-14m", "pythia-160m"]
    small, large = plan.runs.values()
    assert isinstance(small, SuiteRun) and small.repo == "EleutherAI/pythia-14m"
    assert small.checkpoint_steps == [0, *range(1000, 143_001, 1000)]
    assert small.revisions[1].revision == "step1000"
    assert small.revisions[1].tokens == 1000 * PYTHIA_TOKENS_PER_STEP
    assert dict(large.attributes) == {"family": "gpt_neox", "width": 768, "layers": 12, "seed": 0}
    # one tokenizer, so the held-out text is tokenized once for both sizes
    assert small.tokens.id == large.tokens.id and small.harvest.id != large.harvest.id
    assert small.analyze.recipe["seq_len"] == 2048


def test_plan_reads_width_from_the_cache_and_keeps_ids(hub_cache) -> None:
    config = planned(suite_config(hub_cache.cache_dir, hub_cache.local_model))
    plan = make_plan(config)
    assert plan.runs["pythia-14m"].attributes["width"] == 16  # the cached config, not the table
    assert dict(plan.runs["gpt2-tiny"].attributes) == {"family": "gpt2", "width": 24,
                                                       "layers": 2, "seed": 0}  # fmt: skip
    assert plan.runs["llama-tied"].attributes["family"] == "llama"
    moved = dict(config, suites=dict(config["suites"], cache_dir="/elsewhere"))
    moved["suites"]["models"] = [dict(m, width=24, layers=2) for m in moved["suites"]["models"]]
    again = make_plan(moved)  # where the cache lies is no part of an id
    assert again.runs["pythia-14m"].analyze.id == plan.runs["pythia-14m"].analyze.id
    assert missing_revisions(plan.runs, str(hub_cache.cache_dir)) == []
    assert ("EleutherAI/pythia-14m", "step0") in missing_revisions(again.runs, "/elsewhere")


def test_resolver_reads_the_cache_offline(hub_cache, tmp_path: Path) -> None:
    cache = str(hub_cache.cache_dir)
    folder = resolve_snapshot(PYTHIA_31M, "step1", cache, download=False)
    assert folder.name == hub_cache.revisions[PYTHIA_31M]["step1"]
    with pytest.raises(MissingRevisionError, match=r"pythia-31m revision 'step999' is not in"):
        resolve_snapshot(PYTHIA_31M, "step999", cache, download=False)
    recipe = {"hub": PYTHIA_14M, "revisions": [["step2", 2, 20], ["step0", 0, 0]]}
    harvested = harvest_suite(recipe, cache, download=False, workers=1)
    assert [h.entry.step for h in harvested] == [0, 2]
    assert harvested[1].record["commit"] == hub_cache.revisions[PYTHIA_14M]["step2"]
    weights = Path(harvested[1].entry.path) / "model.safetensors"
    assert harvested[1].entry.sha256 == weights.resolve().name  # the blob is named by it


def test_a_modified_cache_blob_is_refused(hub_cache, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    shutil.copytree(hub_cache.cache_dir, cache, symlinks=True)
    folder = resolve_snapshot(PYTHIA_14M, "step1", str(cache), download=False)
    blob = (folder / "model.safetensors").resolve()
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))
    recipe = {"hub": PYTHIA_14M, "revisions": [["step1", 1, 0]]}
    with pytest.raises(CorruptCheckpointError, match="differs from its cache blob"):
        harvest_suite(recipe, str(cache), download=False, workers=1)


def test_download_estimate_offline(hub_cache) -> None:
    config = planned({"widths": [], "suites": {"cache_dir": str(hub_cache.cache_dir),
                      "pythia": {"sizes": ["14m", "70m"], "steps": [0, 1, 2, 1000]},
                      "models": [{"name": "g", "hf": "org/uncached", "width": 8}]}})  # fmt: skip
    rows = {row["run"]: row for row in download_estimate(config)}
    assert rows["pythia-14m"]["missing"] == 1  # step1000: the fixture has step0, 1, 2
    assert rows["pythia-70m"]["missing"] == 4
    assert rows["pythia-70m"]["download_gb"] == pytest.approx(4 * 0.166, abs=0.001)
    assert rows["g"]["download_gb"] is None  # offline: not asked of the hub


def test_the_preset_dry_runs_offline_in_seconds(tmp_path: Path) -> None:
    started = time.perf_counter()
    done = snakemake(tmp_path, "-n", "--configfile", str(PRESET))
    assert time.perf_counter() - started < 30
    plan = make_plan(planned(yaml.safe_load(PRESET.read_text())))
    jobs = dict(re.findall(r"^(\w+)\s+(\d+)$", done.stdout, re.M))
    assert int(jobs["harvest_suite"]) == len(plan.runs) >= 10


@pytest.mark.slow
def test_a_suite_end_to_end_offline(hub_cache, tmp_path: Path) -> None:
    """harvest → analyze → evaluate → tables → summary → figures (Fig. 1b included) on the
    fixture cache, through the real snakemake with HF_HUB_OFFLINE=1."""
    overrides = suite_config(
        hub_cache.cache_dir, hub_cache.local_model,
        scaling={"enabled": True, "min_width": 16, "B": 0, "E": 0, "bootstrap": 20},
    )  # fmt: skip
    overrides["suites"]["pythia"]["steps"] = [0, 2]  # step 1 is added below
    results = tmp_path / "results"
    first = snakemake(tmp_path, "--configfile", str(write_config(tmp_path / "a.yaml", overrides)),
                      timeout=900)  # fmt: skip
    ran = Counter(re.findall(r"^(?:local)?(?:rule|checkpoint) (\w+):$", first.stderr, re.M))
    assert ran["harvest_suite"] == 5 and "pretrain" not in ran and "train_tokenizer" not in ran
    assert ran["fetch_tokenizer"] == 4  # Pythia (both sizes share it), GPT-2, Llama, the folder
    assert ran["analyze_run"] == ran["evaluate_run"] == 5  # one job per run each
    # rank-constrained heads on the suite models of a swept width (config.yaml: 32, 64): a
    # Pythia and a Llama with a tied head
    assert ran["sweep_heads"] == 2
    heads = pd.read_parquet(max(results.glob("tables/*/heads.parquet")))
    assert set(heads.run) == {"pythia-31m", "llama-tied"} and heads.loss.notna().all()
    trained_heads = set(results.glob("measurements/heads/*/record.json"))
    analysed = set(results.glob("measurements/analysis/*/record.json"))
    evaluated = set(results.glob("measurements/evaluation/*/record.json"))

    # a revision added to each Pythia run: one new checkpoint measured per run, nothing else
    overrides["suites"]["pythia"]["steps"] = [0, 1, 2]
    config = write_config(tmp_path / "suite.yaml", overrides)
    done = snakemake(tmp_path, "--configfile", str(config), timeout=900)
    ran = Counter(re.findall(r"^(?:local)?(?:rule|checkpoint) (\w+):$", done.stderr, re.M))
    assert ran["harvest_suite"] == ran["analyze_run"] == 2 and "fetch_tokenizer" not in ran
    # the scaling figure, not the data's dimensionality (no run trains on the corpus's text)
    assert ran["plot_figure"] == len(DRAWN_FIGURES) - 1 + 1 and "ngram_dimensionality" not in ran
    added = set(results.glob("measurements/analysis/*/record.json")) - analysed
    assert sorted(json.loads(r.read_text())["info"]["head_dim"] for r in added) == [16, 32]
    assert set(results.glob("measurements/evaluation/*/record.json")) == evaluated  # final: kept
    # pythia-31m's final checkpoint is the same: its sweep's job reruns (a new harvest), training
    # nothing; llama-tied's does not rerun
    assert ran["sweep_heads"] == 1
    assert set(results.glob("measurements/heads/*/record.json")) == trained_heads
    events = [json.loads(line) for log in results.glob("logs/analyze_run/*.jsonl")
              for line in log.read_text().splitlines()]  # fmt: skip
    assert sum(e["measured"] == ["analysis"] for e in events) == len(analysed) + 2

    def newest(stage: str) -> Path:  # the second config's (the first's stays)
        return max((results / stage).iterdir(), key=lambda p: p.stat().st_mtime_ns)

    tables = newest("tables")
    metrics = pd.read_parquet(tables / "metrics.parquet")
    loss = metrics[metrics.metric == "val_loss"].set_index(["run", "step"])["value"]
    assert loss["pythia-14m", 2] < loss["pythia-14m", 0]  # the fixture's revisions train
    assert loss["pythia-31m", 2] < loss["pythia-14m", 2]
    assert loss["gpt2-local", 100] == pytest.approx(loss["gpt2-tiny", 100])  # one model twice
    runs = pd.read_parquet(tables / "runs.parquet").set_index("run")
    assert runs.loc["pythia-31m", "source"] == "suite" and runs.loc["gpt2-tiny", "width"] == 24
    spectra = pd.read_parquet(tables / "spectra.parquet")
    assert spectra[spectra.run == "pythia-14m"]["rank"].max() == 16
    vocab = {json.loads(h.read_text())["vocab_size"] for h in results.glob("tokens/*/val.json")}
    info = [
        json.loads(r.read_text())["info"] for r in results.glob("measurements/analysis/*/*.json")
    ]
    assert len(vocab) == 1 and {i["head_rows"] for i in info} == vocab  # padded rows sliced
    assert padded_vocab(*vocab) > min(vocab)  # (Pythia's fixture heads have 304 rows for 300)
    manifests = {m.parent.name: m for m in results.glob("harvest/*/manifest.csv")}
    revisions = [json.loads((m.parent / "revisions.json").read_text()) for m in manifests.values()]
    commits = {r["commit"] for rec in revisions for r in rec["revisions"] if r["commit"]}
    assert hub_cache.revisions[PYTHIA_14M]["step1"] in commits
    assert all(len(read_manifest(m)) in (1, 2, 3) for m in manifests.values())
    fit = json.loads((newest("scaling") / "fit.json").read_text())
    assert len(fit["fitted_runs"]) == 5
    assert snakemake(tmp_path, "-n", "--configfile", str(config)).stdout.count("rule ") == 0


def test_a_missing_revision_offline_fails_before_any_job(hub_cache, tmp_path: Path) -> None:
    overrides = suite_config(hub_cache.cache_dir, hub_cache.local_model)
    overrides["suites"]["pythia"]["steps"] = [0, 4]  # the fixture has no step4
    config = write_config(tmp_path / "suite.yaml", overrides)
    done = snakemake(tmp_path, "--configfile", str(config), check=False)
    assert done.returncode != 0
    errors = [line for line in done.stderr.splitlines() if line.startswith("config error: ")]
    assert len(errors) == 1, done.stderr
    assert "EleutherAI/pythia-14m revision 'step4' is not in the HF cache" in errors[0]
    assert not (tmp_path / "results" / "corpus").exists()  # no job ran


def test_suite_errors_are_config_errors(hub_cache) -> None:
    with pytest.raises(ConfigError, match=r"suites.models\[0\].width: org/x is not in the HF"):
        make_plan(planned({"suites": {"cache_dir": str(hub_cache.cache_dir),
                                      "models": [{"name": "x", "hf": "org/x"}]}}))  # fmt: skip
