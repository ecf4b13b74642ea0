"""The scaling-law extrapolation (paper Fig. 1b) over every run's final and best checkpoint."""

from saturation.io import write_json_atomic
from saturation.logs import log_to_file
from saturation.scaling import extrapolate_workflow, law_columns
from saturation.tables import read_tidy_table, write_tidy_table

log_to_file(snakemake.log[0])
result = extrapolate_workflow(
    read_tidy_table(snakemake.input.metrics),
    snakemake.params.checkpoints,
    snakemake.params.recipe["scaling"],  # the scaling stage's recipe
)
write_tidy_table(law_columns(result), snakemake.output.csv, snakemake.output.parquet)
write_json_atomic(snakemake.output.fit, result.record())
