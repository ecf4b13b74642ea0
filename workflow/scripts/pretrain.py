"""Train (or resume) one run; checkpoints and resume state stay beside the declared outputs."""

from pathlib import Path

from saturation.config import training_processes
from saturation.logs import log_to_file
from saturation.train import train_from_recipe

log_to_file(snakemake.log[0])
runtime = snakemake.config["runtime"]  # how to run only: never part of the recipe or the id
train_from_recipe(
    recipe=snakemake.params.recipe,
    run_dir=Path(snakemake.params.run_dir),
    tokens_bin=Path(snakemake.input.tokens),
    tokenizer_dir=Path(snakemake.input.tokenizer),
    device=runtime["device"],
    threads=snakemake.threads,
    log_every=runtime["log_every"],
    progress=runtime["progress"],
    metrics_out=Path(snakemake.output.metrics),
    summary_out=Path(snakemake.output.summary),
    processes=training_processes(snakemake.resources.gpu),
    activation_checkpointing=runtime["activation_checkpointing"],
)
