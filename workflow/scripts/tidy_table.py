"""Stack the runs' tidy tables into the workflow's table (CSV + Parquet)."""

from saturation.logs import log_to_file
from saturation.tables import combine_run_tables, write_tidy_table

log_to_file(snakemake.log[0])
table = combine_run_tables(snakemake.input.runs)
write_tidy_table(table, snakemake.output.csv, snakemake.output.parquet)
