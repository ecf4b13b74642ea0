# Corpus → tokenizer → token files: one job each, shared by every run of the config.


rule build_corpus:
    input:
        local=corpus_local_files(),
    output:
        train=PLAN.corpus.path("train.jsonl"),
        val=PLAN.corpus.path("val.jsonl"),
        test=PLAN.corpus.path("test.jsonl"),
        stats=PLAN.corpus.path("stats.json"),
    log:
        f"{LOGS}/build_corpus/{PLAN.corpus.id}.log",
    benchmark:
        f"{LOGS}/build_corpus/{PLAN.corpus.id}.benchmark.tsv"
    conda:
        ENV
    params:
        corpus=config["corpus"],
    script:
        "../scripts/build_corpus.py"


rule train_tokenizer:
    input:
        train=rules.build_corpus.output.train,
    output:
        tokenizer=directory(PLAN.tokenizer.path("tokenizer")),
    log:
        f"{LOGS}/train_tokenizer/{PLAN.tokenizer.id}.log",
    benchmark:
        f"{LOGS}/train_tokenizer/{PLAN.tokenizer.id}.benchmark.tsv"
    conda:
        ENV
    params:
        tokenizer=config["tokenizer"],
    script:
        "../scripts/train_tokenizer.py"


rule tokenize:
    input:
        corpus=PLAN.corpus.path("{split}.jsonl"),
        tokenizer=rules.train_tokenizer.output.tokenizer,
    output:
        tokens=PLAN.tokens.path("{split}.bin"),
        header=PLAN.tokens.path("{split}.json"),
    log:
        f"{LOGS}/tokenize/{PLAN.tokens.id}-{{split}}.log",
    benchmark:
        f"{LOGS}/tokenize/{PLAN.tokens.id}-{{split}}.benchmark.tsv"
    wildcard_constraints:
        split="train|val|test",
    conda:
        ENV
    threads: workflow.cores
    script:
        "../scripts/tokenize.py"
