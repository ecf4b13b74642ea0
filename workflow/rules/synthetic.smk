# Synthetic languages (saturation.synthetic): each language's tokenizer and fresh token streams in
# one job, laid out as the text pipeline's so its runs train and are analysed alike; its oracle
# (the best loss of a rank-d head against the known process) in another, so a new d grid never
# regenerates the tokens.


rule synthetic_language:
    output:
        **{
            f"{role}_{split}": PLAN.pattern("language", role, split=split)
            for role in ("bin", "header")
            for split in ("train", "val", "test")
        },
        tokenizer=directory(PLAN.pattern("language", "tokenizer")),
        info=PLAN.pattern("language", "info"),
    log:
        job_log("synthetic_language", "{language_id}"),
    benchmark:
        job_benchmark("synthetic_language", "{language_id}")
    conda:
        ENV
    params:
        recipe=lambda wildcards: stage_of(wildcards).recipe,
    script:
        "../scripts/synthetic_language.py"


rule synthetic_oracle:
    input:
        info=lambda wildcards: PLAN.find(stage_of(wildcards).recipe["language"])[0].file("info"),
    output:
        table=PLAN.pattern("oracle", "table"),
    log:
        job_log("synthetic_oracle", "{oracle_id}"),
    benchmark:
        job_benchmark("synthetic_oracle", "{oracle_id}")
    conda:
        ENV
    threads: config["runtime"]["train_threads"]
    params:
        recipe=lambda wildcards: stage_of(wildcards).recipe,
        language=lambda wildcards: PLAN.find(stage_of(wildcards).recipe["language"])[0].recipe,
    script:
        "../scripts/synthetic_oracle.py"
