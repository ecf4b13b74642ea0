"""Generate a synthetic language's tokenizer, token files and language.json."""

from pathlib import Path

from saturation.logs import log_to_file
from saturation.synthetic.stream import write_language

log_to_file(snakemake.log[0])
write_language(snakemake.params.recipe, Path(snakemake.output.info).parent)
