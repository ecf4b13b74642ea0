"""Train (or resume) one run; checkpoints and resume state stay beside the declared outputs."""

from pathlib import Path

from saturation.config import training_processes
from saturation.logs import log_to_file
from saturation.runtime import Runtime
from saturation.tokens import require_windows
from saturation.train.launch import train_from_recipe
from saturation.train.loop import RunFiles

log_to_file(snakemake.log[0])
# the held-out split must hold a window of the run's context, or every measurement would fail
require_windows(
    Path(snakemake.input.val_header),
    snakemake.params.recipe["train"]["seq_len"],
    "val",
    "lower train.seq_len or raise corpus.val_fraction",
)
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
