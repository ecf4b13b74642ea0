# One pretraining job per run (width × seed). Checkpoints and resume state live beside the
# declared outputs, not inside them, so Snakemake's cleanup of a failed job never deletes them.
# `gpu` is what a cluster executor requests (runtime.train_gpus or the width's `gpus`); above one
# GPU the job trains data parallel with torchrun. Local runs do not count it, and as a resource
# (not a param) it is no rerun trigger: how many GPUs train a run is not part of its recipe.


rule pretrain:
    input:
        tokens=PLAN.tokens.path("train.bin"),
        header=PLAN.tokens.path("train.json"),
        tokenizer=rules.train_tokenizer.output.tokenizer,
    output:
        summary=f"{RESULTS}/pretrain/{{pretrain_id}}/train.json",
        metrics=f"{RESULTS}/pretrain/{{pretrain_id}}/metrics.jsonl",
    log:
        f"{LOGS}/pretrain/{{pretrain_id}}.log",
    benchmark:
        f"{LOGS}/pretrain/{{pretrain_id}}.benchmark.tsv"
    conda:
        ENV
    threads: config["runtime"]["train_threads"]
    resources:
        gpu=lambda wildcards: run_of("pretrain", wildcards).gpus,
    params:
        recipe=lambda wildcards: run_of("pretrain", wildcards).pretrain.recipe,
        run_dir=lambda wildcards: run_of("pretrain", wildcards).pretrain.dir,
    script:
        "../scripts/pretrain.py"
