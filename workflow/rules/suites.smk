# Published checkpoint series (`suites`: Pythia, any causal LM on the hub or on disk), measured by
# the same analyze / evaluate / tables / figures rules as the runs trained here. Each model's
# tokenizer is copied from its snapshot and tokenizes the corpus's held-out text (the shared
# `tokenize` rule); harvest resolves every revision in the HF cache (downloading it first when
# suites.download allows) and writes the one manifest format. Where the cache is and whether to
# download are how to run, not what is computed: read from the config by the job, never ids.


rule fetch_tokenizer:
    output:
        tokenizer=directory(PLAN.pattern("tokenizer", "tokenizer")),
    log:
        job_log("fetch_tokenizer", "{tokenizer_id}"),
    benchmark:
        job_benchmark("fetch_tokenizer", "{tokenizer_id}")
    wildcard_constraints:
        tokenizer_id=PLAN.ids("tokenizer", source="suite"),
    conda:
        ENV
    resources:
        hub_downloads=1,
    params:
        recipe=lambda wildcards: stage_of(wildcards).recipe,
    script:
        "../scripts/fetch_tokenizer.py"


checkpoint harvest_suite:
    input:
        weights=suite_folder_weights,
    output:
        manifest=PLAN.pattern("harvest", "manifest"),
        revisions=PLAN.pattern("harvest", "revisions"),
    log:
        job_log("harvest_suite", "{harvest_id}"),
    benchmark:
        job_benchmark("harvest_suite", "{harvest_id}")
    wildcard_constraints:
        harvest_id=PLAN.ids("harvest", source="suite"),
    conda:
        ENV
    resources:
        hub_downloads=1,
    params:
        recipe=lambda wildcards: stage_of(wildcards).recipe,
    script:
        "../scripts/harvest_suite.py"
