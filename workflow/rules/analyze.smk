# Per harvested checkpoint: held-out loss and the LM-head spectrum; then one tidy table.


rule analyze_checkpoint:
    input:
        manifest=lambda wildcards: manifest_of(run_of("analyze", wildcards)),
        weights=checkpoint_weights,
        val=PLAN.tokens.path("val.bin"),
        val_header=PLAN.tokens.path("val.json"),
    output:
        metrics=f"{RESULTS}/analyze/{{analyze_id}}/step{{step}}/metrics.json",
        sigma=f"{RESULTS}/analyze/{{analyze_id}}/step{{step}}/singular_values.npy",
    log:
        f"{LOGS}/analyze_checkpoint/{{analyze_id}}-step{{step}}.log",
    group:
        "analyze"
    conda:
        ENV
    params:
        seq_len=lambda wildcards: run_of("analyze", wildcards).seq_len,
        analysis=config["analysis"],
    script:
        "../scripts/analyze_checkpoint.py"


rule collect_run:
    input:
        manifest=lambda wildcards: manifest_of(run_of("analyze", wildcards)),
        metrics=run_measurements,
    output:
        table=f"{RESULTS}/analyze/{{analyze_id}}/metrics.csv",
    log:
        f"{LOGS}/collect_run/{{analyze_id}}.log",
    conda:
        ENV
    params:
        run=collect_run_params,
    script:
        "../scripts/collect_run.py"


rule tidy_table:
    input:
        runs=[run.analyze.path("metrics.csv") for run in PLAN.runs.values()],
    output:
        csv=PLAN.tables.path("metrics.csv"),
        parquet=PLAN.tables.path("metrics.parquet"),
    log:
        f"{LOGS}/tidy_table/{PLAN.tables.id}.log",
    conda:
        ENV
    script:
        "../scripts/tidy_table.py"
