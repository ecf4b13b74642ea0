"""The oracle table of a synthetic language: per d, the best loss any rank-d softmax head (and
the head GPT-NeoX trains) can reach against the known process, and the truncated-SVD bound."""

import pandas as pd
import torch

from saturation.logs import log_to_file
from saturation.synthetic.oracles import oracle_table
from saturation.synthetic.stream import language_of
from saturation.tables import write_csv

log_to_file(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
language = language_of(snakemake.params.language)
rows = oracle_table(language, snakemake.params.recipe["dims"])
write_csv(pd.DataFrame(rows), snakemake.output.table)
