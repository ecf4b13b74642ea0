"""From a validated config to content-addressed stage ids, before Snakemake builds its DAG.

A stage's id hashes its recipe: its own config slice (defaults applied), the ids of the stages it
reads and a format version bumped whenever the stage's output meaning changes. Equal recipes share
results; any change to a recipe gets a new folder, so nothing finished is ever overwritten.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from saturation.config import gpus_of, resolve_shape
from saturation.corpus import CorpusError, source_fingerprint
from saturation.schedule import checkpoint_steps

FORMAT_VERSIONS = {
    "corpus": 2,  # 2: a file has one id however its path is spelled; duplicate texts dropped
    "tokenizer": 1,
    "tokens": 2,  # 2: special-token strings in documents encoded as text, not as EOS/PAD ids
    # 2: the fused training step (fast_neox), auto compiles on CPU too;
    # 3: the fused loss's bf16 gradient for confident tokens fixed
    "pretrain": 3,
    "harvest": 1,
    "analyze": 3,  # 2: anisotropy per depth; 3: held-out windows, zero-row anisotropy edge cases
    "evaltasks": 1,
    "evaluate": 1,
    "benchmarks": 1,
    "tables": 4,  # 2: spectra beside metrics; 3: benchmarks, stderr; 4: summary to its own stage
    # 1 although the summary changed: a new stage (split from tables 3, whose folders held it),
    # starting with collapse step and anisotropy onset redefined
    "summary": 1,
    "figures": 3,  # 2: anisotropy and spectrum figures; 3: benchmark figure
}
ID_LENGTH = 12


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def stage_id(stage: str, recipe: dict[str, Any]) -> str:
    payload = {"stage": stage, "format_version": FORMAT_VERSIONS[stage], "recipe": recipe}
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()[:ID_LENGTH]


@dataclass(frozen=True)
class Stage:
    """One content-addressed output folder: results/<stage>/<id>/.

    The recipe is kept in canonical form (keys sorted, JSON types), so the rules that pass it to
    their jobs as a param see the same text exactly when the id is the same, whatever the order
    or spelling of the config it came from.
    """

    stage: str
    recipe: dict[str, Any]
    name: str
    results: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "recipe", json.loads(canonical_json(self.recipe)))

    @cached_property
    def id(self) -> str:
        """Hashed once: the workflow asks for ids per job, thousands of times in a sweep."""
        return stage_id(self.stage, self.recipe)

    @property
    def dir(self) -> str:
        return f"{self.results}/{self.stage}/{self.id}"

    def path(self, *parts: str) -> str:
        return "/".join([self.dir, *parts])

    def recipe_record(self) -> dict[str, Any]:
        """What recipe.json holds: enough to trace a folder back to the config that made it."""
        return {
            "stage": self.stage,
            "id": self.id,
            "name": self.name,
            "format_version": FORMAT_VERSIONS[self.stage],
            "recipe": self.recipe,
        }


@dataclass(frozen=True)
class RunPlan:
    """One pretraining run (width × seed) and the stages that follow it."""

    name: str
    width: int
    seed: int
    pretrain: Stage
    harvest: Stage
    analyze: Stage
    evaluate: dict[str, Stage]  # task -> its evaluation of this run's checkpoints
    benchmarks: Stage  # every task's results of the run, one table
    gpus: int = 1  # how the pretrain job runs (never in a recipe): GPUs, data-parallel above 1

    @property
    def checkpoint_steps(self) -> list[int]:
        return self.pretrain.recipe["train"]["checkpoint_steps"]

    @property
    def seq_len(self) -> int:
        return self.pretrain.recipe["train"]["seq_len"]


@dataclass(frozen=True)
class Plan:
    results: str
    corpus: Stage
    tokenizer: Stage
    tokens: Stage
    evaltasks: dict[str, Stage]  # task -> the folder of its YAML (generated tasks share one)
    runs: dict[str, RunPlan]
    tables: Stage
    summary: Stage
    figures: Stage

    def run_by(self, stage: str, stage_id_: str) -> RunPlan:
        for run in self.runs.values():
            if getattr(run, stage).id == stage_id_:
                return run
        raise KeyError(f"no run has {stage} id {stage_id_}")

    def run_of_evaluation(self, evaluate_id: str) -> tuple[RunPlan, str]:
        for run in self.runs.values():
            for task, stage in run.evaluate.items():
                if stage.id == evaluate_id:
                    return run, task
        raise KeyError(f"no run has evaluate id {evaluate_id}")

    def stages(self) -> list[Stage]:
        per_run = [
            stage
            for run in self.runs.values()
            for stage in (run.pretrain, run.harvest, run.analyze, *run.evaluate.values(),
                          run.benchmarks)
        ]  # fmt: skip
        evaltasks = {stage.id: stage for stage in self.evaltasks.values()}  # generated ones shared
        shared = [self.corpus, self.tokenizer, self.tokens, *evaltasks.values()]
        return [*shared, *per_run, self.tables, self.summary, self.figures]

    def index_rows(self) -> list[dict[str, str]]:
        return [
            {"stage": s.stage, "id": s.id, "name": s.name, "path": s.dir} for s in self.stages()
        ]


def _train_recipe(config: dict[str, Any], entry: dict[str, Any], seed: int) -> dict[str, Any]:
    train = config["train"]
    marks = train["checkpoints"]
    return {
        "seed": seed,
        "steps": train["steps"],
        "batch_size": train["batch_size"],
        "seq_len": train["seq_len"],
        "lr": entry.get("lr", train["lr"]),
        "min_lr_ratio": train["min_lr_ratio"],
        "warmup_steps": round(train["warmup_fraction"] * train["steps"]),
        "betas": train["betas"],
        "eps": train["eps"],
        "weight_decay": train["weight_decay"],
        "grad_clip": train["grad_clip"],
        "precision": train["precision"],
        "compile": train["compile"],
        "checkpoint_steps": checkpoint_steps(
            train["steps"], marks["log_until"], marks["every"], marks["steps"]
        ),
    }


def _evaltask_stages(config: dict[str, Any], corpus: Stage, results: str) -> dict[str, Stage]:
    """Where each evaluation task's YAML comes from: generated from the held-out split, local
    files in the hub's format, or (absent from the dict) lm-eval's built-in task on the hub."""
    from saturation.evaluate import CLOZE_TASK, HELDOUT_TASKS_VERSION, PERPLEXITY_TASK
    from saturation.io import sha256_file

    evaluation = config["evaluation"]
    generated = Stage(
        "evaltasks",
        {
            "corpus": corpus.id,
            "split": "test",
            "cloze_items": evaluation["cloze_items"],
            "perplexity_documents": evaluation["perplexity_documents"],
            "seed": evaluation["seed"],
            "version": HELDOUT_TASKS_VERSION,
        },
        name="heldout-tasks",
        results=results,
    )
    stages = {}
    for task in evaluation["tasks"]:
        if task in (CLOZE_TASK, PERPLEXITY_TASK):
            stages[task] = generated
        elif task in evaluation["local_data"]:
            files = {
                split: [path, sha256_file(path)]
                for split, path in sorted(evaluation["local_data"][task].items())
            }
            stages[task] = Stage(
                "evaltasks", {"task": task, "data_files": files}, name=task, results=results
            )
    return stages


def _fingerprint(index: int, source: dict[str, Any]) -> dict[str, Any]:
    """source_fingerprint, its error naming the config key (a pattern that matches no file)."""
    try:
        return source_fingerprint(source)
    except CorpusError as error:
        kind = next(iter(source), "")  # one key per source (the schema)
        raise CorpusError(f"corpus.sources[{index}].{kind}: {error}") from error


def make_plan(config: dict[str, Any]) -> Plan:
    """All stage ids of a validated config (see saturation.config.validate_config, which also
    makes every `number` of the schema a float, so `1` and `1.0` give one id)."""
    results = config["results"]
    corpus_cfg = config["corpus"]
    corpus = Stage(
        "corpus",
        {
            "sources": [_fingerprint(i, s) for i, s in enumerate(corpus_cfg["sources"])],
            "val_fraction": corpus_cfg["val_fraction"],
            "test_fraction": corpus_cfg["test_fraction"],
            "min_chars": corpus_cfg["min_chars"],
            "max_documents": corpus_cfg["max_documents"],
        },
        name="corpus",
        results=results,
    )
    tok_cfg = config["tokenizer"]
    if tok_cfg["pretrained"]:
        from saturation.tokenizer import tokenizer_fingerprint

        tokenizer_recipe = {"pretrained": tokenizer_fingerprint(tok_cfg["pretrained"])}
    else:
        tokenizer_recipe = {
            "corpus": corpus.id,
            "vocab_size": tok_cfg["vocab_size"],
            "min_frequency": tok_cfg["min_frequency"],
        }
    tokenizer = Stage("tokenizer", tokenizer_recipe, name="tokenizer", results=results)
    tokens = Stage(
        "tokens", {"corpus": corpus.id, "tokenizer": tokenizer.id}, name="tokens", results=results
    )

    evaltasks = _evaltask_stages(config, corpus, results)
    model_cfg = config["model"]
    runs: dict[str, RunPlan] = {}
    for entry in config["widths"]:
        shape = resolve_shape(entry, model_cfg)
        for seed in config["train"]["seeds"]:
            name = f"w{shape['width']}-s{seed}"
            pretrain = Stage(
                "pretrain",
                {
                    "tokens": tokens.id,
                    "tokenizer": tokenizer.id,
                    "model": shape
                    | {k: model_cfg[k] for k in ("rotary_pct", "mlp_ratio", "vocab_multiple")},
                    "train": _train_recipe(config, entry, seed),
                },
                name=name,
                results=results,
            )
            harvest = Stage("harvest", {"pretrain": pretrain.id}, name=name, results=results)
            analyze = Stage(
                "analyze",
                {"harvest": harvest.id, "tokens": tokens.id} | dict(config["analysis"]),
                name=name,
                results=results,
            )
            evaluation = config["evaluation"]
            evaluate = {
                task: Stage(
                    "evaluate",
                    {
                        "harvest": harvest.id,
                        "task": task,
                        "tasks": evaltasks[task].id if task in evaltasks else "hub",
                        "limit": evaluation["limit"],
                        "batch_size": evaluation["batch_size"],
                    },
                    name=f"{name}/{task}",
                    results=results,
                )
                for task in evaluation["tasks"]
            }
            benchmarks = Stage(
                "benchmarks",
                {
                    "analyze": analyze.id,
                    "evaluate": {task: stage.id for task, stage in evaluate.items()},
                    "checkpoints": dict(evaluation["checkpoints"]),
                },
                name=name,
                results=results,
            )
            runs[name] = RunPlan(
                name, shape["width"], seed, pretrain, harvest, analyze, evaluate, benchmarks,
                gpus=gpus_of(entry, config["runtime"]),
            )  # fmt: skip

    tables = Stage(
        "tables",
        {
            "runs": {
                n: {
                    "width": r.width,
                    "seed": r.seed,
                    "analyze": r.analyze.id,
                    "benchmarks": r.benchmarks.id,
                }
                for n, r in runs.items()
            },
        },
        name="tables",
        results=results,
    )
    summary = Stage(
        "summary",
        {"tables": tables.id, "summary": dict(config["summary"])},
        name="summary",
        results=results,
    )
    figures = Stage("figures", {"tables": tables.id}, name="figures", results=results)
    return Plan(results, corpus, tokenizer, tokens, evaltasks, runs, tables, summary, figures)


def corpus_sources(recipe: dict[str, Any]) -> list[dict[str, Any]]:
    """The sources a corpus recipe reads, back from their fingerprints: each fingerprint keeps its
    kind and options (defaults filled) beside the content hashes, so a job built from its recipe
    reads exactly what its id says."""
    kinds = ("builtin", "text", "hf")
    return [
        {kind: fingerprint[kind] for kind in kinds if kind in fingerprint}
        for fingerprint in recipe["sources"]
    ]


def pretrained_tokenizer(recipe: dict[str, Any], path: str) -> str:
    """The configured tokenizer folder (tokenizer.pretrained), if it still holds the files its
    recipe hashed: where it lies is no part of the id, what it holds is."""
    from saturation.tokenizer import tokenizer_fingerprint

    if tokenizer_fingerprint(path) != recipe["pretrained"]:
        raise ValueError(
            f"tokenizer.pretrained: the files of {path!r} changed after the workflow was planned; "
            "run it again to plan a new tokenizer id"
        )
    return path


INDEX_FIELDS = ("stage", "id", "name", "path")


def write_plan_records(plan: Plan) -> None:
    """Write each stage's recipe.json (once: its content is fixed by its id) and results/index.csv.

    The index keeps the rows of earlier configs too, so a result made by an old config stays
    findable by name after the config moved on.
    """
    import csv

    from saturation.io import write_json_atomic, write_text_atomic

    for stage in plan.stages():
        recipe = Path(stage.dir) / "recipe.json"
        if not recipe.exists():
            write_json_atomic(recipe, stage.recipe_record())
    index = Path(plan.results) / "index.csv"
    rows = {(r["stage"], r["id"], r["name"]): r for r in plan.index_rows()}
    if index.exists():
        with open(index, newline="") as handle:
            rows |= {(r["stage"], r["id"], r["name"]): r for r in csv.DictReader(handle)}
    lines = [",".join(INDEX_FIELDS)]
    lines += [",".join(row[f] for f in INDEX_FIELDS) for _, row in sorted(rows.items())]
    text = "\n".join(lines) + "\n"
    if not index.exists() or index.read_text() != text:
        write_text_atomic(index, text)
