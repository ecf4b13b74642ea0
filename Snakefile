# saturation-lab: corpus → tokenizer → tokens → pretrain per width (or published suites) → harvest →
# analyze → tables → summary, figures.
# All target logic lives in workflow/rules/common.smk; every output path is content-addressed there.
from pathlib import Path

from snakemake.utils import min_version

min_version("9.0")


# The embedded default, found beside this Snakefile from any working directory;
# --configfile FILE is applied on top of it (mappings merge, lists replace).
configfile: Path(workflow.basedir) / "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/synthetic.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/harvest.smk"
include: "workflow/rules/suites.smk"
include: "workflow/rules/analyze.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/heads.smk"
include: "workflow/rules/scaling.smk"
include: "workflow/rules/ngram.smk"
include: "workflow/rules/figures.smk"


# Run by the Snakemake process itself, never submitted to a cluster: the targets.
localrules:
    all,
    figures,


rule all:
    default_target: True
    input:
        final_outputs(),
