# The scaling-law extrapolation (paper Fig. 1b), when `scaling.enabled`: the law fitted on the
# large runs' final checkpoints, every run compared with it. N is counted from each run's final
# checkpoint, T and L come from the tidy table.


if PLAN.scaling is not None:

    rule fit_scaling:
        input:
            metrics=rules.tidy_table.output.metrics_parquet,
            weights=lambda wildcards: [
                f for run in PLAN.text_runs.values() for f in weights_of(run)
            ],
        output:
            csv=PLAN.scaling.file("table", ext="csv"),
            parquet=PLAN.scaling.file("table", ext="parquet"),
            fit=PLAN.scaling.file("fit"),
        log:
            job_log("fit_scaling", PLAN.scaling.id),
        benchmark:
            job_benchmark("fit_scaling", PLAN.scaling.id)
        conda:
            ENV
        params:
            recipe=PLAN.scaling.recipe,
            checkpoints=lambda wildcards: {
                run.name: str(Path(weights_of(run)[0]).parent) for run in PLAN.text_runs.values()
            },
        script:
            "../scripts/fit_scaling.py"
