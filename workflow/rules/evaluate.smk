# Zero-shot benchmarks through lm-evaluation-harness on a subset of harvested checkpoints:
# one job per run × task × checkpoint, so a task added to the config runs only its own jobs.
# Grouped per run × task, as analyze_checkpoint is per run (see analyze.smk).


rule build_eval_tasks:
    input:
        unpack(eval_task_inputs),
    output:
        tasks=directory(f"{RESULTS}/evaltasks/{{evaltasks_id}}/tasks"),
    log:
        f"{LOGS}/build_eval_tasks/{{evaltasks_id}}.log",
    benchmark:
        f"{LOGS}/build_eval_tasks/{{evaltasks_id}}.benchmark.tsv"
    conda:
        ENV
    params:
        recipe=lambda wildcards: evaltask_stage(wildcards).recipe,
    script:
        "../scripts/build_eval_tasks.py"


rule evaluate_checkpoint:
    input:
        unpack(evaluation_inputs),
    output:
        results=f"{RESULTS}/evaluate/{{evaluate_id}}/step{{step}}.json",
    log:
        f"{LOGS}/evaluate_checkpoint/{{evaluate_id}}-step{{step}}.log",
    benchmark:
        f"{LOGS}/evaluate_checkpoint/{{evaluate_id}}-step{{step}}.benchmark.tsv"
    group:
        "evaluate-{evaluate_id}"
    conda:
        ENV
    params:
        recipe=lambda wildcards: evaluation_stage(wildcards).recipe,
    script:
        "../scripts/evaluate_checkpoint.py"


rule collect_benchmarks:
    input:
        manifest=lambda wildcards: manifest_of(run_of("benchmarks", wildcards)),
        results=lambda wildcards: list(benchmark_results(run_of("benchmarks", wildcards)).values()),
    output:
        metrics=f"{RESULTS}/benchmarks/{{benchmarks_id}}/metrics.csv",
    log:
        f"{LOGS}/collect_benchmarks/{{benchmarks_id}}.log",
    benchmark:
        f"{LOGS}/collect_benchmarks/{{benchmarks_id}}.benchmark.tsv"
    conda:
        ENV
    params:
        run=collect_benchmarks_params,
    script:
        "../scripts/collect_benchmarks.py"
