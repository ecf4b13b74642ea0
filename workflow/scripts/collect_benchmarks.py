"""Gather one run's benchmark results (every task × selected checkpoint) into a tidy table."""

from saturation.logs import log_to_file
from saturation.tables import run_benchmarks, write_csv

log_to_file(snakemake.log[0])
write_csv(run_benchmarks(**snakemake.params.run), snakemake.output.metrics)
