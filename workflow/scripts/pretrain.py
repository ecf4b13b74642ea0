"""Train (or resume) one run; checkpoints and resume state stay beside the declared outputs."""

from pathlib import Path

from saturation.config import training_processes
from saturation.logs import log_to_file
from saturation.runtime import Runtime
from saturation.train.launch import train_from_recipe
from saturation.train.loop import RunFiles

log_to_file(snakemake.log[0])
files = RunFiles(
    run_dir=Path(snakemake.params.run_dir),
    tokens=Path(snakemake.input.tokens),
    tokenizer=Path(snakemake.input.tokenizer),
    metrics_out=Path(snakemake.output.metrics),
    summary_out=Path(snakemake.output.summary),
)
# how to run only: never part of the recipe or the id
runtime = Runtime.from_config(
    snakemake.config["runtime"],
    threads=snakemake.threads,
    processes=training_processes(snakemake.resources.gpu),
)
train_from_recipe(snakemake.params.recipe, files, runtime)
