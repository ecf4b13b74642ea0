"""Gather one run's per-checkpoint measurements into its tidy tables."""

from saturation.logs import log_to_file
from saturation.tables import RunMeasurements, run_metrics, run_spectra, write_csv

log_to_file(snakemake.log[0])
run = RunMeasurements(**snakemake.params.run)
write_csv(run_metrics(run), snakemake.output.metrics)
write_csv(run_spectra(run), snakemake.output.spectra)
