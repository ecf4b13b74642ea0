# A run's checkpoints analysed in one job (held-out loss, anisotropy, LM-head spectrum), into the
# run's tables. Each checkpoint's record is stored by content in results/measurements/analysis
# (saturation.measure.store): a rerun of the job (a checkpoint added, --forcerun) measures only
# what no record holds. A checkpoint rule: evaluation may select the run's lowest-loss step.


checkpoint analyze_run:
    input:
        manifest=lambda wildcards: manifest_of(run_of(wildcards)),
        weights=run_weights,
        val=heldout_tokens,
        val_header=lambda wildcards: run_of(wildcards).tokens.file("header", split="val"),
        train=train_sample,
    output:
        metrics=PLAN.pattern("analyze", "table"),
        spectra=PLAN.pattern("analyze", "spectra"),
        windows=PLAN.pattern("analyze", "windows"),
    log:
        job_log("analyze_run", "{analyze_id}"),
    benchmark:
        job_benchmark("analyze_run", "{analyze_id}")
    conda:
        ENV
    resources:
        runtime=lambda wildcards: measurement_minutes(wildcards, "analysis"),
    params:
        recipe=lambda wildcards: stage_of(wildcards).recipe,
        run=run_columns,
    script:
        "../scripts/analyze_run.py"


rule tidy_table:
    input:
        metrics=[run.analyze.file("table") for run in PLAN.runs.values()]
        + [run.evaluate.file("table") for run in PLAN.runs.values() if run.evaluate],
        spectra=[run.analyze.file("spectra") for run in PLAN.runs.values()],
        windows=[run.analyze.file("windows") for run in PLAN.runs.values()],
        heads=[run.heads.file("table") for run in PLAN.runs.values() if run.heads],
        head_curves=[run.heads.file("curves") for run in PLAN.runs.values() if run.heads],
        oracles=oracle_tables(),
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
        oracles={
            language: {
                "table": PLAN.find(oracle["oracle"])[0].file("table"),
                "rank": oracle["rank"],
            }
            for language, oracle in PLAN.tables.recipe["oracles"].items()
        },
    script:
        "../scripts/tidy_table.py"


# Its own stage (results/summary/<id>/): a change of the summary's settings reruns this job alone.
rule saturation_summary:
    input:
        metrics=rules.tidy_table.output.metrics_parquet,
        windows=rules.tidy_table.output.windows_parquet,
    output:
        csv=report(
            PLAN.summary.file("table", table="summary", ext="csv"),
            caption="../report/summary.rst",
            category="Tables",
        ),
        markdown=PLAN.summary.file("table", table="summary", ext="md"),
        seeds=report(
            PLAN.summary.file("table", table="summary_seeds", ext="csv"),
            caption="../report/summary_seeds.rst",
            category="Tables",
        ),
        seeds_markdown=PLAN.summary.file("table", table="summary_seeds", ext="md"),
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
