# Corpus → tokenizer → token files: one job each, shared by every run of the config.
# Every rule's params are its stage's recipe from the plan, never a config section: params then
# change exactly when the id does, so a restated default or a reordered key reruns nothing.


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
        tokenizer=directory(PLAN.tokenizer.path("tokenizer")),
    log:
        f"{LOGS}/train_tokenizer/{PLAN.tokenizer.id}.log",
    benchmark:
        f"{LOGS}/train_tokenizer/{PLAN.tokenizer.id}.benchmark.tsv"
    conda:
        ENV
    params:
        recipe=PLAN.tokenizer.recipe,
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
