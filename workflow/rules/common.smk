# Config → validated config → content-addressed plan, before any rule exists. Every path comes
# from the plan: rules declare outputs with PLAN.pattern (the id a wildcard), input functions
# ask the same stage for a concrete file, and a job finds its stage and run from the id in its path.
import sys
from pathlib import Path

from saturation.config import ConfigError, validate_config
from saturation.corpus import CorpusError
from saturation.figures import FIGURES, WORD_PERPLEXITY_METRICS
from saturation.plan import make_plan, write_plan_records
from saturation.checkpoints import CorruptCheckpointError
from saturation.lock import ResultsLockedError, acquire, release
from saturation.tokens import open_tokens

try:
    validate_config(config, Path(workflow.basedir) / "workflow/schemas/config.schema.yaml")
    PLAN = make_plan(config)
except (ConfigError, CorpusError, FileNotFoundError) as err:  # missing paths are config errors
    print(f"config error: {err}", file=sys.stderr)
    sys.exit(1)

RESULTS = PLAN.results
ENV = "../../envs/saturation.yaml"
TABLES = ["metrics", "spectra", "windows", "runs", "bottleneck", "heads", "head_curves"]
WORD_PERPLEXITY_TASKS = {metric.split("/")[0] for metric in WORD_PERPLEXITY_METRICS}
# the figures this config can draw: the benchmark figure needs a word-perplexity task and a run
# evaluated on it (runs on a synthetic language are not), the scaling figure the scaling stage,
# the bottleneck figure a synthetic language, the head figures a swept run
EVALUATED = any(run.evaluate for run in PLAN.runs.values())
SWEPT = any(run.heads for run in PLAN.runs.values())
PLOTTED = [
    f
    for f in FIGURES
    if (
        f != "benchmark_perplexity"
        or (EVALUATED and WORD_PERPLEXITY_TASKS & set(config["evaluation"]["tasks"]))
    )
    and (FIGURES[f] != "scaling" or PLAN.scaling is not None)
    and (FIGURES[f] != "ngram" or PLAN.ngram is not None)
    and (FIGURES[f] != "bottleneck" or PLAN.tables.recipe["oracles"])
    and (FIGURES[f] != "heads" or SWEPT)
]


wildcard_constraints:
    pretrain_id=PLAN.ids("pretrain"),
    harvest_id=PLAN.ids("harvest"),
    analyze_id=PLAN.ids("analyze"),
    evaluate_id=PLAN.ids("evaluate"),
    evaltasks_id=PLAN.ids("evaltasks"),
    tokens_id=PLAN.ids("tokens"),
    language_id=PLAN.ids("language"),
    oracle_id=PLAN.ids("oracle"),
    heads_id=PLAN.ids("heads"),
    figure="|".join(PLOTTED),


onstart:
    refuse_missing_revisions()
    take_results_folder()
    write_plan_records(PLAN)


onsuccess:
    release(RESULTS)


onerror:
    release(RESULTS)


def take_results_folder():
    """One workflow at a time on a results folder (saturation.lock), wherever it was started."""
    try:
        acquire(RESULTS)
    except ResultsLockedError as error:
        print(f"lock error: {error}", file=sys.stderr)
        sys.exit(1)


def refuse_missing_revisions():
    """Reading the HF cache only (suites.download off, or HF_HUB_OFFLINE): a revision the cache
    lacks fails here, before any job, in one line. Not at parse time, so a dry run still lists
    what a config would do before anything is downloaded."""
    from saturation.plan.suites import downloads_allowed, missing_revisions

    if downloads_allowed(config):
        return
    missing = missing_revisions(PLAN.runs, config["suites"]["cache_dir"])
    if missing:
        repo, revision = missing[0]
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        print(
            f"config error: suites: {repo} revision {revision!r} is not in the HF cache "
            f"({config['suites']['cache_dir'] or 'default'}){more}; fill the cache or set "
            "suites.download: true",
            file=sys.stderr,
        )
        sys.exit(1)


def job_log(rule, job):
    """Each job's log: results/logs/<rule>/<job>.log, the job named after its stage's id."""
    return f"{RESULTS}/logs/{rule}/{job}.log"


def job_benchmark(rule, job):
    """Snakemake's measurements of each job, beside its log (benchmarks/stage_costs.py)."""
    return f"{RESULTS}/logs/{rule}/{job}.benchmark.tsv"


def job_owner(wildcards):
    """(the stage a job writes, its run or None), from the one `<kind>_id` wildcard in its path."""
    return PLAN.find(next(v for k, v in wildcards.items() if k.endswith("_id")))


def stage_of(wildcards):
    return job_owner(wildcards)[0]


def run_of(wildcards):
    return job_owner(wildcards)[1]


def corpus_local_files():
    """Local files behind text:/hf: sources, so Snakemake tracks them like any input."""
    return [path for source in PLAN.corpus.recipe["sources"] for path, _ in source.get("files", [])]


def manifest_of(run):
    """The run's harvested manifest; asking for it makes the caller wait for its source's
    harvest (a checkpoint rule)."""
    harvest = getattr(checkpoints, run.harvest_rule).get(harvest_id=run.harvest.id)
    return str(harvest.output.manifest)


def harvested_steps(run):
    from saturation.checkpoints import read_manifest

    return {entry.step: entry for entry in read_manifest(manifest_of(run))}


def token_files():
    """Every split of the token files a run trains on (the shared ones, a synthetic language's),
    and each suite tokenizer's held-out split."""
    files = set()
    for run in PLAN.runs.values():
        splits = ("train", "val", "test") if run.source == "pretrain" else ("val",)
        files |= {run.tokens.file("bin", split=split) for split in splits}
    return sorted(files)


def oracle_tables():
    """Each synthetic language's oracle table (its runs share it)."""
    return sorted(
        {run.oracle.file("table") for run in PLAN.runs.values() if hasattr(run, "oracle")}
    )


def final_outputs():
    """Listing every token file and every manifest up front lets all runs train in parallel
    (a checkpoint's input function would otherwise reveal them one at a time)."""
    tokens = token_files()
    widest_first = sorted(PLAN.runs.values(), key=lambda run: -run.attributes.get("width", 0))
    manifests = [run.harvest.file("manifest") for run in widest_first]
    tables = [PLAN.tables.file("table", table=t, ext=e) for t in TABLES for e in ("csv", "parquet")]
    summaries = [
        PLAN.summary.file("table", table=t, ext=e)
        for t in ("summary", "summary_seeds", "benchmarks")
        for e in ("csv", "md")
    ]
    scaling = [PLAN.scaling.file("fit")] if PLAN.scaling else []
    ngram = [PLAN.ngram.file("info")] if PLAN.ngram else []
    return [
        *tokens,
        *oracle_tables(),
        *manifests,
        *tables,
        *summaries,
        *scaling,
        *ngram,
        *rules.figures.input,
    ]


def weights_of(run, step=None):
    """The weight files of one of the run's harvested checkpoints (None: its last)."""
    from saturation.checkpoints import weight_files

    steps = harvested_steps(run)
    return [str(f) for f in weight_files(Path(steps[max(steps) if step is None else step].path))]


def suite_folder_weights(wildcards):
    """A local folder's weight files (a hub snapshot is found by the job, in the cache)."""
    run = run_of(wildcards)
    if run.path is None:
        return []
    return [f"{run.path}/{name}" for name, _, _ in run.harvest.recipe["folder"]["weights"]]


def tokenizer_folder(wildcards):
    """The tokenizer a token file is made with (the shared one, or a suite model's), or a run's
    (the shared one, or a synthetic language's)."""
    stage = stage_of(wildcards)
    return PLAN.find(stage.recipe["tokenizer"])[0].file("tokenizer")


def training_tokens(role, split):
    """An input function: the file `role` of `split` of the tokens a run trains on."""
    return lambda wildcards: run_of(wildcards).tokens.file(role, split=split)


def run_weights(wildcards):
    """The weight files of every checkpoint the run's analysis measures (see verified_weights)."""
    run = run_of(wildcards)
    return verified_weights(stage_of(wildcards), run, sorted(harvested_steps(run)))


def verified_weights(stage, run, steps):
    """The weight files of the run's checkpoints at `steps`; those newer than the stage's table
    verified first, as their measurement is about to be redone (see refuse_modified_inputs)."""
    from saturation.checkpoints import verify_entry, weight_files

    manifest, entries = manifest_of(run), harvested_steps(run)  # the manifest read once
    weights = []
    for step in steps:
        files = [str(f) for f in weight_files(Path(entries[step].path))]
        refuse_modified_inputs(
            stage, files, lambda entry=entries[step]: verify_entry(entry, manifest)
        )
        weights += files
    return weights


def heldout_tokens(wildcards):
    """The run's held-out token file; verified against its header's sha256 first where a
    finished measurement is about to be redone because it is newer."""
    stage, run = job_owner(wildcards)
    val = run.tokens.file("bin", split="val")
    refuse_modified_inputs(stage, [val], lambda: open_tokens(Path(val), verify=True))
    return val


def train_sample(wildcards):
    """The train split a run trained on, where its analysis scores a sample of it too
    (`analysis.train_tokens`; never for a published suite); verified as the held-out tokens."""
    stage, run = job_owner(wildcards)
    if not stage.recipe.get("train_tokens"):
        return []
    train = run.tokens.file("bin", split="train")
    refuse_modified_inputs(stage, [train], lambda: open_tokens(Path(train), verify=True))
    return [train, run.tokens.file("header", split="train")]


def refuse_modified_inputs(stage, inputs, verify):
    """Snakemake redoes a finished job whose inputs are newer than its output, deleting that
    output first. An input modified in place (a flipped byte, a copy over it) would then replace a
    good measurement with a wrong one. So where the stage's table exists and is older than its
    inputs, `verify` them now, while the DAG is built: a file that no longer matches its
    recorded sha256 stops the run before any job, naming the file, and every result stays."""
    output = Path(stage.file("table"))
    if not output.exists():
        return
    made = output.stat().st_mtime
    if any(Path(f).stat().st_mtime > made for f in inputs if Path(f).exists()):
        try:
            verify()
        except (CorruptCheckpointError, ValueError) as error:
            print(f"input error: {error}", file=sys.stderr)
            sys.exit(1)


def run_columns(wildcards):
    """What every row of a run's tables carries."""
    run = run_of(wildcards)
    return {"run": run.name, "width": run.width, "seed": run.seed}


# Minutes a run's measurement job asks of SLURM per checkpoint it may measure (a CPU-sized
# guess: profiles/slurm can replace the total with set-resources).
MINUTES_PER_CHECKPOINT = {"analysis": 5, "evaluation": 10}
MINUTES_PER_HEAD = 2  # a head of a sweep, on the cached states


def measurement_minutes(wildcards, kind):
    """10 minutes, and each checkpoint's the job may measure. From the plan, not the manifest:
    a resource cannot wait for a checkpoint rule."""
    from saturation.plan.select import planned_evaluations

    run = run_of(wildcards)
    steps = run.checkpoint_steps
    if kind == "heads":  # the states pass, and every head of the grid (its full-rank one too)
        from saturation.measure.rank_heads import sweep_configs

        recipe = run.heads.recipe
        heads = len(sweep_configs(recipe["ranks"], recipe["inits"], recipe["lrs"]))
        per_checkpoint = MINUTES_PER_CHECKPOINT["analysis"] + MINUTES_PER_HEAD * heads
        return 10 + per_checkpoint * len(recipe["checkpoints"])
    if kind == "evaluation":
        checkpoints = planned_evaluations(run.evaluate.recipe["checkpoints"], steps)
    else:
        checkpoints = len(steps)
    return 10 + MINUTES_PER_CHECKPOINT[kind] * checkpoints


def figure_table(wildcards):
    """The one table a figure is drawn from: a tidy table, or the scaling or ngram stage's."""
    table = FIGURES[wildcards.figure]
    if table == "scaling":
        return PLAN.scaling.file("table", ext="parquet")
    if table == "ngram":
        return PLAN.ngram.file("table", ext="parquet")
    return PLAN.tables.file("table", table=table, ext="parquet")


def figure_category(wildcards):
    """The figure's section of the report: the bottleneck figure has its own, which the report
    (sections ordered by name) shows first; every other figure is under Figures."""
    if wildcards.figure == "bottleneck":
        return "Bottleneck: a language of known logit rank"
    return "Figures"


def eval_task_inputs(wildcards):
    """Generated tasks read the held-out test split, and the train split to decontaminate it;
    local standard tasks their data files."""
    recipe = stage_of(wildcards).recipe
    if "corpus" in recipe:
        return {
            "split": PLAN.corpus.file("split", split="test"),
            "train": PLAN.corpus.file("split", split="train"),
        }
    return {split: path for split, (path, _) in recipe["data_files"].items()}


def evaluation_inputs(wildcards):
    """The run's manifest, the weights of its selected checkpoints, each local task's YAML
    folder, and its analysis where the selection includes the lowest-loss step."""
    stage, run = job_owner(wildcards)
    inputs = {
        "manifest": manifest_of(run),
        "weights": verified_weights(stage, run, evaluated_steps(run)),
        "tasks": sorted({PLAN.evaltasks[task].file("tasks")
                         for task in stage.recipe["tasks"] if task in PLAN.evaltasks}),  # fmt: skip
    }
    if "analyze" in stage.recipe:
        inputs["analysis"] = run.analyze.file("table")
    return inputs


def head_sweep_inputs(wildcards):
    """The run's manifest, the weights of the checkpoints its sweep selects, the samples' token
    files (val, train) and its analysis where the selection includes the lowest-loss step."""
    from saturation.plan.select import selected_steps

    stage, run = job_owner(wildcards)
    selection = {"every_k": None, "last_n": None, "include": stage.recipe["checkpoints"]}
    inputs = {"manifest": manifest_of(run)}
    table = None
    if "analyze" in stage.recipe:
        table = checkpoints.analyze_run.get(analyze_id=run.analyze.id).output.metrics
        inputs["analysis"] = table
    steps = selected_steps(selection, sorted(harvested_steps(run)), table)
    inputs["weights"] = verified_weights(stage, run, steps)
    for split in ("val", "train"):
        inputs[split] = run.tokens.file("bin", split=split)
        inputs[f"{split}_header"] = run.tokens.file("header", split=split)
    return inputs


def evaluated_steps(run):
    """The run's checkpoints its evaluation selects; with "best", after its analysis (a
    checkpoint rule) gave the lowest-loss step."""
    from saturation.plan.select import selected_steps

    table = None
    if "analyze" in run.evaluate.recipe:
        table = checkpoints.analyze_run.get(analyze_id=run.analyze.id).output.metrics
    return selected_steps(run.evaluate.recipe["checkpoints"], sorted(harvested_steps(run)), table)
