"""Sweep rank-constrained heads on a run's selected checkpoints (one process) into its tables."""

from pathlib import Path

import torch

from saturation.checkpoints import read_manifest
from saturation.logs import log_to_file
from saturation.measure.head_sweep import sweep_run, sweep_tables
from saturation.plan.select import selected_steps
from saturation.runtime import resolve_device
from saturation.tables import write_csv

log_to_file(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
runtime = snakemake.config["runtime"]
recipe = snakemake.params.recipe  # the heads stage's recipe: what changes the numbers
harvested = [entry.step for entry in read_manifest(snakemake.input.manifest)]
selection = {"every_k": None, "last_n": None, "include": recipe["checkpoints"]}
steps = selected_steps(selection, harvested, snakemake.input.get("analysis"))
swept = sweep_run(
    snakemake.input.manifest,
    steps,
    recipe,
    snakemake.input.val,
    snakemake.input.train,
    results=snakemake.config["results"],
    events=Path(snakemake.log[0]).with_suffix(".jsonl"),
    device=str(resolve_device(runtime["device"])),
    remeasure=runtime["remeasure"],
)
heads, curves = sweep_tables(swept, snakemake.params.run)
write_csv(heads, snakemake.output.heads)
write_csv(curves, snakemake.output.curves)
