"""Analyse a run's checkpoints (one process) and write its metrics and spectra tables."""

from pathlib import Path

import torch

from saturation.logs import log_to_file
from saturation.measure.analysis import analyze_run
from saturation.runtime import resolve_device
from saturation.tables import RunMeasurements, run_metrics, run_spectra, run_windows, write_csv
from saturation.tokens import read_header

log_to_file(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
runtime = snakemake.config["runtime"]
# the train split the run trained on, where the recipe scores a sample of it: [bin, header]
train_bin, train_header = snakemake.input.train or (None, None)
records = analyze_run(
    snakemake.input.manifest,
    snakemake.input.val,
    snakemake.params.recipe,  # the analyze stage's recipe: what changes the numbers
    results=snakemake.config["results"],
    events=Path(snakemake.log[0]).with_suffix(".jsonl"),
    device=str(resolve_device(runtime["device"])),
    reuse="analysis" not in runtime["remeasure"],
    train_bin=train_bin,
)
run = RunMeasurements(
    **snakemake.params.run,
    manifest=snakemake.input.manifest,
    metrics=records,
    epoch_tokens=read_header(train_header).tokens if train_header else None,
)
write_csv(run_metrics(run), snakemake.output.metrics)
write_csv(run_spectra(run), snakemake.output.spectra)
write_csv(run_windows(run), snakemake.output.windows)
