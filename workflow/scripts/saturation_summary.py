"""Per-run saturation summary from the tidy table, as CSV and as a Markdown table."""

from saturation.io import write_text_atomic
from saturation.logs import log_to_file
from saturation.summary import SummaryConfig, saturation_summary, to_markdown
from saturation.tables import read_tidy_table, write_csv

log_to_file(snakemake.log[0])
summary = saturation_summary(
    read_tidy_table(snakemake.input.metrics), SummaryConfig(**snakemake.params.summary)
)
write_csv(summary, snakemake.output.csv)
write_text_atomic(snakemake.output.markdown, to_markdown(summary))
