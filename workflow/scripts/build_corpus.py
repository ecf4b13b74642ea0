"""Build the train/val/test corpus from the configured sources."""

from pathlib import Path

from saturation.corpus import build_corpus
from saturation.io import write_json_atomic
from saturation.logs import log_to_file

log_to_file(snakemake.log[0])
corpus = snakemake.params.corpus
stats = build_corpus(
    corpus["sources"],
    Path(snakemake.output.train).parent,
    val_fraction=corpus["val_fraction"],
    test_fraction=corpus["test_fraction"],
    min_chars=corpus["min_chars"],
    max_documents=corpus["max_documents"],
)
write_json_atomic(snakemake.output.stats, stats)
