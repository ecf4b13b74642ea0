"""Encode one corpus split into a flat token file plus its JSON header."""

from pathlib import Path

from saturation.logs import log_to_file
from saturation.tokens import tokenize_split

log_to_file(snakemake.log[0])
tokenize_split(
    Path(snakemake.input.corpus),
    Path(snakemake.input.tokenizer),
    Path(snakemake.output.tokens),
    Path(snakemake.output.header),
    threads=snakemake.threads,
)
