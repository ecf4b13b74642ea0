# The manifest of a run this workflow pretrained: every scheduled checkpoint, its tokens and
# verified sha256. A checkpoint rule, so the per-checkpoint jobs downstream are expanded from
# what it lists. Each source of runs has its own harvest rule (Run.harvest_rule) writing the
# same manifest format; this one is for runs of source "pretrain".


checkpoint harvest:
    input:
        summary=lambda wildcards: run_of(wildcards).pretrain.file("summary"),
    output:
        manifest=PLAN.pattern("harvest", "manifest"),
    log:
        job_log("harvest", "{harvest_id}"),
    benchmark:
        job_benchmark("harvest", "{harvest_id}")
    wildcard_constraints:
        harvest_id=PLAN.ids("harvest", source="pretrain"),
    conda:
        ENV
    params:
        checkpoints_dir=lambda wildcards: run_of(wildcards).pretrain.file("checkpoints"),
        steps=lambda wildcards: run_of(wildcards).checkpoint_steps,
    script:
        "../scripts/harvest.py"
