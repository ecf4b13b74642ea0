# One pretraining job per run the workflow trains itself (width × seed). Checkpoints and resume
# state live beside the declared outputs, not inside them, so Snakemake's cleanup of a failed job
# never deletes them. `gpu` is what a cluster executor requests (runtime.train_gpus or the width's
# `gpus`); above one GPU the job trains data parallel with torchrun. Local runs do not count it,
# and as a resource (not a param) it is no rerun trigger: how many GPUs train a run is not part
# of its recipe.


rule pretrain:
    input:
        tokens=training_tokens("bin", "train"),
        header=training_tokens("header", "train"),
        val_header=training_tokens("header", "val"),
        tokenizer=tokenizer_folder,
    output:
        summary=PLAN.pattern("pretrain", "summary"),
        metrics=PLAN.pattern("pretrain", "metrics"),
    log:
        job_log("pretrain", "{pretrain_id}"),
    benchmark:
        job_benchmark("pretrain", "{pretrain_id}")
    conda:
        ENV
    threads: config["runtime"]["train_threads"]
    resources:
        gpu=lambda wildcards: run_of(wildcards).gpus,
    params:
        recipe=lambda wildcards: stage_of(wildcards).recipe,
        run_dir=lambda wildcards: stage_of(wildcards).dir,
    script:
        "../scripts/pretrain.py"
