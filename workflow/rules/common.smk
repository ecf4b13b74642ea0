# Config → validated config → content-addressed plan, before any rule exists.
import sys
from pathlib import Path

from saturation.analysis import SIGMA_FILE
from saturation.config import ConfigError, validate_config
from saturation.corpus import CorpusError
from saturation.figures import FIGURES, WORD_PERPLEXITY_METRICS
from saturation.plan import make_plan, write_plan_records

try:
    validate_config(config, Path(workflow.basedir) / "workflow/schemas/config.schema.yaml")
    PLAN = make_plan(config)
except (ConfigError, CorpusError, FileNotFoundError) as err:  # missing paths are config errors
    print(f"config error: {err}", file=sys.stderr)
    sys.exit(1)

RESULTS = PLAN.results
LOGS = f"{RESULTS}/logs"
ENV = "../../envs/saturation.yaml"
TABLES = ["metrics", "spectra"]
# the benchmark figure needs a word-perplexity task among the evaluated ones
WORD_PERPLEXITY_TASKS = {metric.split("/")[0] for metric in WORD_PERPLEXITY_METRICS}
PLOTTED = [
    f
    for f in FIGURES
    if f != "benchmark_perplexity" or WORD_PERPLEXITY_TASKS & set(config["evaluation"]["tasks"])
]


wildcard_constraints:
    pretrain_id="|".join(r.pretrain.id for r in PLAN.runs.values()),
    harvest_id="|".join(r.harvest.id for r in PLAN.runs.values()),
    analyze_id="|".join(r.analyze.id for r in PLAN.runs.values()),
    evaluate_id="|".join(s.id for r in PLAN.runs.values() for s in r.evaluate.values()) or "-",
    benchmarks_id="|".join(r.benchmarks.id for r in PLAN.runs.values()),
    evaltasks_id="|".join(s.id for s in PLAN.evaltasks.values()) or "-",
    step=r"\d+",
    figure="|".join(PLOTTED),


onstart:
    write_plan_records(PLAN)


def corpus_local_files():
    """Local files behind text:/hf: sources, so Snakemake tracks them like any input."""
    return [path for source in PLAN.corpus.recipe["sources"] for path, _ in source.get("files", [])]


def run_of(stage, wildcards):
    """The RunPlan a per-run job belongs to, from the id in its path."""
    return PLAN.run_by(stage, getattr(wildcards, f"{stage}_id"))


def manifest_of(run):
    """The run's harvested manifest; asking for it makes the caller wait for the checkpoint."""
    return str(checkpoints.harvest.get(harvest_id=run.harvest.id).output.manifest)


def harvested_steps(run):
    from saturation.checkpoints import read_manifest

    return {entry.step: entry for entry in read_manifest(manifest_of(run))}


def analysis_outputs(run):
    steps = harvested_steps(run)
    return {s: run.analyze.path(f"step{s}", "metrics.json") for s in sorted(steps)}


def final_outputs():
    """Listing every split's tokens and every manifest up front lets all runs train in parallel
    (a checkpoint's input function would otherwise reveal them one at a time)."""
    tokens = [PLAN.tokens.path(f"{split}.bin") for split in ("train", "val", "test")]
    widest_first = sorted(PLAN.runs.values(), key=lambda run: -run.width)
    manifests = [run.harvest.path("manifest.csv") for run in widest_first]
    tables = [PLAN.tables.path(f"{kind}.{ext}") for kind in TABLES for ext in ("csv", "parquet")]
    tables += [
        PLAN.summary.path(f"{name}.{ext}")
        for name in ("summary", "benchmarks")
        for ext in ("csv", "md")
    ]
    return [*tokens, *manifests, *tables, *rules.figures.input]


def checkpoint_weights(wildcards, run=None):
    run = run or run_of("analyze", wildcards)
    entry = harvested_steps(run)[int(wildcards.step)]
    return f"{entry.path}/model.safetensors"


def run_measurements(wildcards):
    """One run's per-checkpoint records: waits for that run's harvest only, so a finished run
    is analysed while wider runs still train."""
    run = run_of("analyze", wildcards)
    metrics = list(analysis_outputs(run).values())
    return metrics + [str(Path(path).with_name(SIGMA_FILE)) for path in metrics]


def collect_run_params(wildcards):
    run = run_of("analyze", wildcards)
    return {
        "run": run.name,
        "width": run.width,
        "seed": run.seed,
        "manifest": manifest_of(run),
        "metrics": analysis_outputs(run),
    }


def evaltask_stage(wildcards):
    return next(s for s in PLAN.evaltasks.values() if s.id == wildcards.evaltasks_id)


def eval_task_inputs(wildcards):
    """Generated tasks read the held-out test split, and the train split to decontaminate it;
    local standard tasks their data files."""
    recipe = evaltask_stage(wildcards).recipe
    if "corpus" in recipe:
        return {
            "split": PLAN.corpus.path("test.jsonl"),
            "train": PLAN.corpus.path("train.jsonl"),
        }
    return {split: path for split, (path, _) in recipe["data_files"].items()}


def evaluation_stage(wildcards):
    run, task = PLAN.run_of_evaluation(wildcards.evaluate_id)
    return run.evaluate[task]


def evaluation_inputs(wildcards):
    run, task = PLAN.run_of_evaluation(wildcards.evaluate_id)
    inputs = {
        "manifest": manifest_of(run),
        "weights": checkpoint_weights(wildcards, run),
    }
    if task in PLAN.evaltasks:
        inputs["tasks"] = PLAN.evaltasks[task].path("tasks")
    return inputs


def lowest_loss_step(run):
    """The run's lowest held-out loss step, read from its collected table (a checkpoint rule)."""
    from saturation.summary import best_step
    from saturation.tables import read_tidy_table

    table = checkpoints.collect_run.get(analyze_id=run.analyze.id).output.metrics
    return best_step(read_tidy_table(str(table)))


def evaluated_steps(run):
    from saturation.evaluate import select_checkpoints

    selection = run.benchmarks.recipe["checkpoints"]
    best = lowest_loss_step(run) if "best" in selection["include"] else None
    return select_checkpoints(
        sorted(harvested_steps(run)),
        selection["every_k"],
        selection["last_n"],
        selection["include"],
        best_step=best,
    )


def benchmark_results(run):
    """(task, step) -> the evaluation file of every selected checkpoint of the run."""
    steps = evaluated_steps(run)
    return {
        (task, step): stage.path(f"step{step}.json")
        for task, stage in run.evaluate.items()
        for step in steps
    }


def collect_benchmarks_params(wildcards):
    run = run_of("benchmarks", wildcards)
    return {
        "run": run.name,
        "width": run.width,
        "seed": run.seed,
        "manifest": manifest_of(run),
        "results": list(benchmark_results(run).values()),
    }
