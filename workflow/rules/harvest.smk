# The manifest of a finished run: every scheduled checkpoint, its tokens and verified sha256.
# A checkpoint rule, so the per-checkpoint jobs downstream are expanded from what it lists.


checkpoint harvest:
    input:
        summary=lambda wildcards: run_of("harvest", wildcards).pretrain.path("train.json"),
    output:
        manifest=f"{RESULTS}/harvest/{{harvest_id}}/manifest.csv",
    log:
        f"{LOGS}/harvest/{{harvest_id}}.log",
    benchmark:
        f"{LOGS}/harvest/{{harvest_id}}.benchmark.tsv"
    conda:
        ENV
    params:
        checkpoints_dir=lambda wildcards: run_of("harvest", wildcards).pretrain.path("checkpoints"),
        steps=lambda wildcards: run_of("harvest", wildcards).checkpoint_steps,
    script:
        "../scripts/harvest.py"
