"""Stack the runs' tidy tables into the workflow's tables, and list the runs (CSV + Parquet)."""

from saturation.logs import log_to_file
from saturation.tables import combine_run_tables, runs_table, write_tidy_table

log_to_file(snakemake.log[0])
for kind in ("metrics", "spectra", "windows"):
    table = combine_run_tables(snakemake.input[kind], kind)
    write_tidy_table(table, snakemake.output[f"{kind}_csv"], snakemake.output[f"{kind}_parquet"])
runs = runs_table(snakemake.params.recipe["runs"])
write_tidy_table(runs, snakemake.output.runs_csv, snakemake.output.runs_parquet)
