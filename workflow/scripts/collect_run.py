"""Gather one run's per-checkpoint measurements into its tidy table."""

from saturation.io import atomic_path
from saturation.logs import log_to_file
from saturation.tables import RunMeasurements, run_table

log_to_file(snakemake.log[0])
with atomic_path(snakemake.output.table) as tmp:
    run_table(RunMeasurements(**snakemake.params.run)).to_csv(tmp, index=False)
