"""Per-run saturation summary and the benchmarks at best vs final (the paper's Table 1), from the
tidy table, each as CSV and as a Markdown table."""

from saturation.io import write_text_atomic
from saturation.logs import log_to_file
from saturation.summary import (
    SummaryConfig,
    across_seeds,
    best_vs_final,
    saturation_summary,
    to_markdown,
)
from saturation.tables import read_tidy_table, write_csv

log_to_file(snakemake.log[0])
metrics = read_tidy_table(snakemake.input.metrics)
cfg = SummaryConfig(**snakemake.params.recipe["summary"])
summary = saturation_summary(metrics, cfg, read_tidy_table(snakemake.input.windows))
write_csv(summary, snakemake.output.csv)
write_text_atomic(snakemake.output.markdown, to_markdown(summary))
seeds = across_seeds(summary, cfg.confidence)
write_csv(seeds, snakemake.output.seeds)
write_text_atomic(snakemake.output.seeds_markdown, to_markdown(seeds))
benchmarks = best_vs_final(metrics)
write_csv(benchmarks, snakemake.output.benchmarks)
write_text_atomic(snakemake.output.benchmarks_markdown, to_markdown(benchmarks))
