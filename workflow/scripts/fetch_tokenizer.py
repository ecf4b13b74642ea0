"""Copy a suite model's tokenizer from its snapshot (or local folder) into the results."""

from pathlib import Path

from saturation.hub import copy_tokenizer
from saturation.logs import log_to_file
from saturation.plan.suites import downloads_allowed

log_to_file(snakemake.log[0])
copy_tokenizer(
    snakemake.params.recipe,  # the tokenizer stage's recipe: {"hub": [repo, revision]} or folder
    Path(snakemake.output.tokenizer),
    snakemake.config["suites"]["cache_dir"],
    downloads_allowed(snakemake.config),
)
