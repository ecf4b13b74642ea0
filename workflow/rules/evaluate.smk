# Zero-shot benchmarks through lm-evaluation-harness on a selection of a run's checkpoints: one
# job per run, every task, lm-eval's task objects built once. Each checkpoint × task result is a
# record in results/measurements/evaluation (see analyze.smk): a task added to the config, or a
# changed selection, evaluates only the new pairs.


rule build_eval_tasks:
    input:
        unpack(eval_task_inputs),
    output:
        tasks=directory(PLAN.pattern("evaltasks", "tasks")),
    log:
        job_log("build_eval_tasks", "{evaltasks_id}"),
    benchmark:
        job_benchmark("build_eval_tasks", "{evaltasks_id}")
    conda:
        ENV
    params:
        recipe=lambda wildcards: stage_of(wildcards).recipe,
    script:
        "../scripts/build_eval_tasks.py"


rule evaluate_run:
    input:
        unpack(evaluation_inputs),
    output:
        metrics=PLAN.pattern("evaluate", "table"),
    log:
        job_log("evaluate_run", "{evaluate_id}"),
    benchmark:
        job_benchmark("evaluate_run", "{evaluate_id}")
    conda:
        ENV
    resources:
        runtime=lambda wildcards: measurement_minutes(wildcards, "evaluation"),
    params:
        recipe=lambda wildcards: stage_of(wildcards).recipe,
        run=run_columns,
    script:
        "../scripts/evaluate_run.py"
