# The dimensionality of the data (paper Fig. 7), when `ngram.enabled` and runs train on the
# corpus's text: the W-error of the split's next-token distributions and of their logits.


if PLAN.ngram is not None:

    rule ngram_dimensionality:
        input:
            tokens=PLAN.tokens.file("bin", split=PLAN.ngram.recipe["split"]),
            header=PLAN.tokens.file("header", split=PLAN.ngram.recipe["split"]),
        output:
            csv=PLAN.ngram.file("table", ext="csv"),
            parquet=PLAN.ngram.file("table", ext="parquet"),
            info=PLAN.ngram.file("info"),
        log:
            job_log("ngram_dimensionality", PLAN.ngram.id),
        benchmark:
            job_benchmark("ngram_dimensionality", PLAN.ngram.id)
        conda:
            ENV
        params:
            recipe=PLAN.ngram.recipe,
        script:
            "../scripts/ngram_dimensionality.py"
