"""Train a byte-level BPE on the train split, or copy a configured pretrained tokenizer."""

from pathlib import Path

from saturation.logs import log_to_file
from saturation.tokenizer import copy_pretrained_tokenizer, train_bpe_tokenizer

log_to_file(snakemake.log[0])
options = snakemake.params.tokenizer
out_dir = Path(snakemake.output.tokenizer)
if options["pretrained"]:
    copy_pretrained_tokenizer(options["pretrained"], out_dir)
else:
    train_bpe_tokenizer(
        Path(snakemake.input.train),
        out_dir,
        vocab_size=options["vocab_size"],
        min_frequency=options["min_frequency"],
    )
