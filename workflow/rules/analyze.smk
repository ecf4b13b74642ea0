# Per harvested checkpoint: held-out loss, anisotropy and the LM-head spectrum; then one tidy
# table. One group per run (its id in the group name): profiles/slurm batches a run's checkpoints
# into one SLURM job (group-components). A group shared by all runs would grow when another run's
# harvest resolves, and Snakemake would then submit the running group job again.


rule analyze_checkpoint:
    input:
        manifest=lambda wildcards: manifest_of(run_of(wildcards)),
        weights=checkpoint_weights,
        val=heldout_tokens,
        val_header=lambda wildcards: run_of(wildcards).tokens.file("header", split="val"),
    output:
        metrics=PLAN.pattern("analyze", "metrics"),
        sigma=PLAN.pattern("analyze", "sigma"),
    log:
        job_log("analyze_checkpoint", "{analyze_id}-step{step}"),
    benchmark:
        job_benchmark("analyze_checkpoint", "{analyze_id}-step{step}")
    group:
        "analyze-{analyze_id}"
    conda:
        ENV
    params:
        recipe=lambda wildcards: stage_of(wildcards).recipe,
    script:
        "../scripts/analyze_checkpoint.py"


checkpoint collect_run:
    input:
        manifest=lambda wildcards: manifest_of(run_of(wildcards)),
        measurements=run_measurements,
    output:
        metrics=PLAN.pattern("analyze", "table"),
        spectra=PLAN.pattern("analyze", "spectra"),
    log:
        job_log("collect_run", "{analyze_id}"),
    benchmark:
        job_benchmark("collect_run", "{analyze_id}")
    conda:
        ENV
    params:
        run=collect_run_params,
    script:
        "../scripts/collect_run.py"


rule tidy_table:
    input:
        metrics=[run.analyze.file("table") for run in PLAN.runs.values()]
        + [run.benchmarks.file("table") for run in PLAN.runs.values() if run.evaluate],
        spectra=[run.analyze.file("spectra") for run in PLAN.runs.values()],
    output:
        **{
            f"{table}_{ext}": PLAN.tables.file("table", table=table, ext=ext)
            for table in TABLES
            for ext in ("csv", "parquet")
        },
    log:
        job_log("tidy_table", PLAN.tables.id),
    benchmark:
        job_benchmark("tidy_table", PLAN.tables.id)
    conda:
        ENV
    params:
        recipe=PLAN.tables.recipe,
    script:
        "../scripts/tidy_table.py"


# Its own stage (results/summary/<id>/): a change of the summary's settings reruns this job alone.
rule saturation_summary:
    input:
        metrics=rules.tidy_table.output.metrics_parquet,
    output:
        csv=report(
            PLAN.summary.file("table", table="summary", ext="csv"),
            caption="../report/summary.rst",
            category="Tables",
        ),
        markdown=PLAN.summary.file("table", table="summary", ext="md"),
        benchmarks=report(
            PLAN.summary.file("table", table="benchmarks", ext="csv"),
            caption="../report/benchmarks.rst",
            category="Tables",
        ),
        benchmarks_markdown=PLAN.summary.file("table", table="benchmarks", ext="md"),
    log:
        job_log("saturation_summary", PLAN.summary.id),
    benchmark:
        job_benchmark("saturation_summary", PLAN.summary.id)
    conda:
        ENV
    params:
        recipe=PLAN.summary.recipe,
    script:
        "../scripts/saturation_summary.py"
