"""Draw one paper figure from the tidy table."""

import importlib

from saturation.figures import FigureOptions
from saturation.logs import log_to_file
from saturation.tables import read_tidy_table

log_to_file(snakemake.log[0])
figure = importlib.import_module(f"saturation.figures.{snakemake.wildcards.figure}")
options = FigureOptions(**snakemake.params.recipe["options"])
figure.plot(
    read_tidy_table(snakemake.input.table), snakemake.output.png, snakemake.output.pdf, options
)
