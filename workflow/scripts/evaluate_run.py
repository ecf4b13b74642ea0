"""Evaluate a run's selected checkpoints on every task (one process) into its benchmarks table."""

from pathlib import Path

import torch

from saturation.checkpoints import read_manifest
from saturation.evaluate.lmeval import evaluate_run
from saturation.logs import log_to_file
from saturation.plan.select import selected_steps
from saturation.runtime import resolve_device
from saturation.tables import run_benchmarks, write_csv

log_to_file(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
runtime = snakemake.config["runtime"]
recipe = snakemake.params.recipe  # the evaluate stage's recipe: what changes the numbers
# each local task's YAML folder is results/evaltasks/<its id>/tasks; the others are lm-eval's
folders = {Path(folder).parent.name: Path(folder) for folder in snakemake.input.tasks}
task_dirs = {task: folders[source] for task, source in recipe["tasks"].items() if source in folders}
harvested = [entry.step for entry in read_manifest(snakemake.input.manifest)]
analysis = snakemake.input.get("analysis")  # where "best" is selected
steps = selected_steps(recipe["checkpoints"], harvested, analysis)
records = evaluate_run(
    snakemake.input.manifest,
    steps,
    recipe,
    task_dirs,
    results=snakemake.config["results"],
    events=Path(snakemake.log[0]).with_suffix(".jsonl"),
    device=str(resolve_device(runtime["device"])),
    reuse="evaluation" not in runtime["remeasure"],
)
table = run_benchmarks(**snakemake.params.run, manifest=snakemake.input.manifest, results=records)
write_csv(table, snakemake.output.metrics)
