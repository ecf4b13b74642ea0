"""Per-run saturation summary and the benchmarks at best vs final (the paper's Table 1), from the
tidy table, each as CSV and as a Markdown table."""

from saturation.io import write_text_atomic
from saturation.logs import log_to_file
from saturation.summary import SummaryConfig, best_vs_final, saturation_summary, to_markdown
from saturation.tables import read_tidy_table, write_csv

log_to_file(snakemake.log[0])
metrics = read_tidy_table(snakemake.input.metrics)
summary = saturation_summary(metrics, SummaryConfig(**snakemake.params.recipe["summary"]))
write_csv(summary, snakemake.output.csv)
write_text_atomic(snakemake.output.markdown, to_markdown(summary))
benchmarks = best_vs_final(metrics)
write_csv(benchmarks, snakemake.output.benchmarks)
write_text_atomic(snakemake.output.benchmarks_markdown, to_markdown(benchmarks))
