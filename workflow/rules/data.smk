# Corpus → tokenizer → token files: one job each, shared by every run of the config.
# Every rule's params are its stage's recipe from the plan, never a config section: params then
# change exactly when the id does, so a restated default or a reordered key reruns nothing.


rule build_corpus:
    input:
        local=corpus_local_files(),
    output:
        train=PLAN.corpus.file("split", split="train"),
        val=PLAN.corpus.file("split", split="val"),
        test=PLAN.corpus.file("split", split="test"),
        stats=PLAN.corpus.file("stats"),
    log:
        job_log("build_corpus", PLAN.corpus.id),
    benchmark:
        job_benchmark("build_corpus", PLAN.corpus.id)
    conda:
        ENV
    params:
        recipe=PLAN.corpus.recipe,
    script:
        "../scripts/build_corpus.py"


# A pretrained tokenizer reads no corpus (its id holds only the hash of its files): with the
# train split as input, a new corpus would rerun it in its own folder. Where the folder lies is
# read from the config, and checked against that hash, by the job.
rule train_tokenizer:
    input:
        train=[] if "pretrained" in PLAN.tokenizer.recipe else rules.build_corpus.output.train,
    output:
        tokenizer=directory(PLAN.tokenizer.file("tokenizer")),
    log:
        job_log("train_tokenizer", PLAN.tokenizer.id),
    benchmark:
        job_benchmark("train_tokenizer", PLAN.tokenizer.id)
    conda:
        ENV
    params:
        recipe=PLAN.tokenizer.recipe,
    script:
        "../scripts/train_tokenizer.py"


rule tokenize:
    input:
        corpus=PLAN.corpus.file("split"),
        tokenizer=tokenizer_folder,
    output:
        tokens=PLAN.pattern("tokens", "bin"),
        header=PLAN.pattern("tokens", "header"),
    log:
        job_log("tokenize", "{tokens_id}-{split}"),
    benchmark:
        job_benchmark("tokenize", "{tokens_id}-{split}")
    wildcard_constraints:
        split="train|val|test",
    conda:
        ENV
    threads: workflow.cores
    script:
        "../scripts/tokenize.py"
