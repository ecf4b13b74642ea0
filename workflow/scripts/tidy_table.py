"""Gather every checkpoint's measurements into the tidy table (CSV + Parquet)."""

from saturation.logs import log_to_file
from saturation.tables import RunMeasurements, build_tidy_table, write_tidy_table

log_to_file(snakemake.log[0])
runs = [RunMeasurements(**run) for run in snakemake.params.runs]
write_tidy_table(build_tidy_table(runs), snakemake.output.csv, snakemake.output.parquet)
