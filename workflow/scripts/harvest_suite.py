"""Resolve every revision of a suite run in the HF cache (downloading where allowed), hash its
weights, and list them in the manifest; revisions.json records each commit and file sha256."""

from pathlib import Path

from saturation.checkpoints import write_manifest
from saturation.hub import harvest_suite, write_revisions
from saturation.logs import log_to_file
from saturation.plan.suites import downloads_allowed

log_to_file(snakemake.log[0])
suites = snakemake.config["suites"]
harvested = harvest_suite(
    snakemake.params.recipe,
    suites["cache_dir"],
    downloads_allowed(snakemake.config),
    suites["download_workers"],
)
write_revisions(Path(snakemake.output.revisions), harvested)
write_manifest(Path(snakemake.output.manifest), [h.entry for h in harvested])
