"""Train a byte-level BPE on the train split, or copy a configured pretrained tokenizer."""

from pathlib import Path

from saturation.logs import log_to_file
from saturation.tokenizer import (
    copy_pretrained_tokenizer,
    pretrained_tokenizer,
    train_bpe_tokenizer,
)

log_to_file(snakemake.log[0])
recipe = snakemake.params.recipe  # the tokenizer stage's recipe (saturation.plan)
out_dir = Path(snakemake.output.tokenizer)
if "pretrained" in recipe:  # the recipe hashes the folder's files; the config says where it is
    folder = pretrained_tokenizer(recipe, snakemake.config["tokenizer"]["pretrained"])
    copy_pretrained_tokenizer(folder, out_dir)
else:
    train_bpe_tokenizer(
        Path(snakemake.input.train),
        out_dir,
        vocab_size=recipe["vocab_size"],
        min_frequency=recipe["min_frequency"],
    )
