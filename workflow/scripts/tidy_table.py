"""Stack the runs' tidy tables into the workflow's tables, list the runs, and set each synthetic
language's runs beside its oracle (the bottleneck table); CSV + Parquet each."""

from saturation.logs import log_to_file
from saturation.tables import bottleneck_table, combine_run_tables, runs_table, write_tidy_table

log_to_file(snakemake.log[0])
tables = {}
for kind in ("metrics", "spectra", "windows", "heads", "head_curves"):
    tables[kind] = combine_run_tables(snakemake.input[kind], kind)
tables["runs"] = runs_table(snakemake.params.recipe["runs"])
tables["bottleneck"] = bottleneck_table(tables["metrics"], tables["runs"], snakemake.params.oracles)
for kind, table in tables.items():
    write_tidy_table(table, snakemake.output[f"{kind}_csv"], snakemake.output[f"{kind}_parquet"])
