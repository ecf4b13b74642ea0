"""Evaluate one checkpoint on one task through lm-evaluation-harness."""

from pathlib import Path

import torch

from saturation.checkpoints import verified_checkpoint
from saturation.evaluate.lmeval import evaluate_checkpoint
from saturation.io import write_json_atomic
from saturation.logs import log_to_file
from saturation.runtime import resolve_device

log_to_file(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
recipe = snakemake.params.recipe  # only what changes the numbers: other config edits rerun nothing
task = recipe["task"]
local = hasattr(snakemake.input, "tasks")  # else lm-eval's built-in task, data from the hub
results = evaluate_checkpoint(
    verified_checkpoint(snakemake.input.manifest, int(snakemake.wildcards.step)),
    [Path(snakemake.input.tasks)] if local else [],
    [task],
    include_defaults=not local,
    batch_size=recipe["batch_size"],
    limit=recipe["limit"],
    device=str(resolve_device(snakemake.config["runtime"]["device"])),
)
step = int(snakemake.wildcards.step)
write_json_atomic(snakemake.output.results, {"task": task, "step": step, "results": results})
