"""The W-error curves of a token split's next-token distributions and logits (paper Fig. 7)."""

from saturation.io import write_json_atomic
from saturation.logs import log_to_file
from saturation.measure.ngram import dimensionality
from saturation.tables import write_tidy_table

log_to_file(snakemake.log[0])
recipe = snakemake.params.recipe
table, info = dimensionality(
    snakemake.input.tokens, recipe["n"], recipe["min_count"], recipe["smoothing"], recipe["dims"]
)
write_tidy_table(table, snakemake.output.csv, snakemake.output.parquet)
write_json_atomic(snakemake.output.info, info)
