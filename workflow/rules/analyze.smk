# Per harvested checkpoint: held-out loss and the LM-head spectrum; then one tidy table.
# One group per run (its id in the group name): profiles/slurm batches a run's checkpoints into
# one SLURM job (group-components). A group shared by all runs would grow when another run's
# harvest resolves, and Snakemake would then submit the running group job again.


rule analyze_checkpoint:
    input:
        manifest=lambda wildcards: manifest_of(run_of("analyze", wildcards)),
        weights=checkpoint_weights,
        val=PLAN.tokens.path("val.bin"),
        val_header=PLAN.tokens.path("val.json"),
    output:
        metrics=f"{RESULTS}/analyze/{{analyze_id}}/step{{step}}/metrics.json",
        sigma=f"{RESULTS}/analyze/{{analyze_id}}/step{{step}}/{SIGMA_FILE}",
    log:
        f"{LOGS}/analyze_checkpoint/{{analyze_id}}-step{{step}}.log",
    benchmark:
        f"{LOGS}/analyze_checkpoint/{{analyze_id}}-step{{step}}.benchmark.tsv"
    group:
        "analyze-{analyze_id}"
    conda:
        ENV
    params:
        seq_len=lambda wildcards: run_of("analyze", wildcards).seq_len,
        recipe=lambda wildcards: run_of("analyze", wildcards).analyze.recipe,
    script:
        "../scripts/analyze_checkpoint.py"


checkpoint collect_run:
    input:
        manifest=lambda wildcards: manifest_of(run_of("analyze", wildcards)),
        measurements=run_measurements,
    output:
        metrics=f"{RESULTS}/analyze/{{analyze_id}}/metrics.csv",
        spectra=f"{RESULTS}/analyze/{{analyze_id}}/spectra.csv",
    log:
        f"{LOGS}/collect_run/{{analyze_id}}.log",
    benchmark:
        f"{LOGS}/collect_run/{{analyze_id}}.benchmark.tsv"
    conda:
        ENV
    params:
        run=collect_run_params,
    script:
        "../scripts/collect_run.py"


rule tidy_table:
    input:
        metrics=[run.analyze.path("metrics.csv") for run in PLAN.runs.values()]
        + [run.benchmarks.path("metrics.csv") for run in PLAN.runs.values() if run.evaluate],
        spectra=[run.analyze.path("spectra.csv") for run in PLAN.runs.values()],
    output:
        metrics_csv=PLAN.tables.path("metrics.csv"),
        metrics_parquet=PLAN.tables.path("metrics.parquet"),
        spectra_csv=PLAN.tables.path("spectra.csv"),
        spectra_parquet=PLAN.tables.path("spectra.parquet"),
    log:
        f"{LOGS}/tidy_table/{PLAN.tables.id}.log",
    benchmark:
        f"{LOGS}/tidy_table/{PLAN.tables.id}.benchmark.tsv"
    conda:
        ENV
    script:
        "../scripts/tidy_table.py"


# Its own stage (results/summary/<id>/): a change of the summary's settings reruns this job alone.
rule saturation_summary:
    input:
        metrics=rules.tidy_table.output.metrics_parquet,
    output:
        csv=report(
            PLAN.summary.path("summary.csv"),
            caption="../report/summary.rst",
            category="Tables",
        ),
        markdown=PLAN.summary.path("summary.md"),
        benchmarks=report(
            PLAN.summary.path("benchmarks.csv"),
            caption="../report/benchmarks.rst",
            category="Tables",
        ),
        benchmarks_markdown=PLAN.summary.path("benchmarks.md"),
    log:
        f"{LOGS}/saturation_summary/{PLAN.summary.id}.log",
    benchmark:
        f"{LOGS}/saturation_summary/{PLAN.summary.id}.benchmark.tsv"
    conda:
        ENV
    params:
        recipe=PLAN.summary.recipe,
    script:
        "../scripts/saturation_summary.py"
