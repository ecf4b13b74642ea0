# Rank-constrained heads on frozen checkpoints (paper §5, Fig. 6, 8, 9): one job per swept run.
# Each checkpoint's hidden states are cached once in results/measurements/states, and every head
# of the grid is a record of its own in results/measurements/heads (saturation.measure.store): a
# rank or learning rate added to the grid trains only the new heads.


rule sweep_heads:
    input:
        unpack(head_sweep_inputs),
    output:
        heads=PLAN.pattern("heads", "table"),
        curves=PLAN.pattern("heads", "curves"),
    log:
        job_log("sweep_heads", "{heads_id}"),
    benchmark:
        job_benchmark("sweep_heads", "{heads_id}")
    conda:
        ENV
    resources:
        runtime=lambda wildcards: measurement_minutes(wildcards, "heads"),
    params:
        recipe=lambda wildcards: stage_of(wildcards).recipe,
        run=run_columns,
    script:
        "../scripts/sweep_heads.py"
