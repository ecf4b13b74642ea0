"""Build the train/val/test corpus from the configured sources."""

from pathlib import Path

from saturation.corpus import build_corpus, sources_from_fingerprints
from saturation.io import write_json_atomic
from saturation.logs import log_to_file

log_to_file(snakemake.log[0])
recipe = snakemake.params.recipe  # the corpus stage's recipe (saturation.plan)
stats = build_corpus(
    sources_from_fingerprints(recipe["sources"]),
    Path(snakemake.output.train).parent,
    val_fraction=recipe["val_fraction"],
    test_fraction=recipe["test_fraction"],
    min_chars=recipe["min_chars"],
    max_documents=recipe["max_documents"],
    decontaminate_words=recipe["decontaminate_words"],
)
write_json_atomic(snakemake.output.stats, stats)
