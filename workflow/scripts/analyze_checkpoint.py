"""Held-out loss, anisotropy and LM-head spectrum of one harvested checkpoint."""

from pathlib import Path

import torch

from saturation.checkpoints import verified_checkpoint
from saturation.logs import log_to_file
from saturation.measure.analysis import analyze_checkpoint
from saturation.runtime import resolve_device

log_to_file(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
analyze_checkpoint(
    checkpoint_dir=verified_checkpoint(snakemake.input.manifest, int(snakemake.wildcards.step)),
    val_bin=Path(snakemake.input.val),
    seq_len=snakemake.params.recipe["seq_len"],  # the analyze stage's recipe
    val_tokens=snakemake.params.recipe["val_tokens"],
    batch_size=snakemake.params.recipe["batch_size"],
    metrics_out=Path(snakemake.output.metrics),
    sigma_out=Path(snakemake.output.sigma),
    device=str(resolve_device(snakemake.config["runtime"]["device"])),
)
