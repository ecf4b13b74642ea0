# Zero-shot benchmarks through lm-evaluation-harness on a subset of harvested checkpoints:
# one job per run × task × checkpoint, so a task added to the config runs only its own jobs.
# Grouped per run × task, as analyze_checkpoint is per run (see analyze.smk).


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


rule evaluate_checkpoint:
    input:
        unpack(evaluation_inputs),
    output:
        results=PLAN.pattern("evaluate", "results"),
    log:
        job_log("evaluate_checkpoint", "{evaluate_id}-step{step}"),
    benchmark:
        job_benchmark("evaluate_checkpoint", "{evaluate_id}-step{step}")
    group:
        "evaluate-{evaluate_id}"
    conda:
        ENV
    params:
        recipe=lambda wildcards: stage_of(wildcards).recipe,
    script:
        "../scripts/evaluate_checkpoint.py"


rule collect_benchmarks:
    input:
        manifest=lambda wildcards: manifest_of(run_of(wildcards)),
        results=benchmark_results,
    output:
        metrics=PLAN.pattern("benchmarks", "table"),
    log:
        job_log("collect_benchmarks", "{benchmarks_id}"),
    benchmark:
        job_benchmark("collect_benchmarks", "{benchmarks_id}")
    conda:
        ENV
    params:
        run=collect_benchmarks_params,
    script:
        "../scripts/collect_benchmarks.py"
