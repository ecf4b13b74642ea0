"""The workflow's plan: every stage of a config, its content-addressed id and folder, and the runs
(sources of checkpoints) that own the per-run stages. Computed when Snakemake parses the workflow,
so nothing here imports torch, transformers or lm-eval."""

from saturation.plan.build import Plan, make_plan
from saturation.plan.records import write_plan_records
from saturation.plan.runs import Run
from saturation.plan.stages import FORMAT_VERSIONS, ID_LENGTH, KINDS, Stage, stage_id

__all__ = [
    "FORMAT_VERSIONS", "ID_LENGTH", "KINDS", "Plan", "Run", "Stage", "make_plan", "stage_id",
    "write_plan_records",
]  # fmt: skip
