"""Verify every scheduled checkpoint of a finished run and list it in the manifest."""

from pathlib import Path

from saturation.checkpoints import harvest, write_manifest
from saturation.logs import log_to_file

log_to_file(snakemake.log[0])
entries = harvest(Path(snakemake.params.checkpoints_dir), list(snakemake.params.steps))
write_manifest(Path(snakemake.output.manifest), entries)
