# One figure per job, each drawn from the tidy table alone: restyling never recomputes anything.


rule plot_figure:
    input:
        table=lambda wildcards: PLAN.tables.path(f"{FIGURES[wildcards.figure]}.parquet"),
    output:
        png=report(
            PLAN.figures.path("{figure}.png"),
            caption="../report/figure.rst",
            category="Figures",
            labels={"figure": "{figure}"},
        ),
        pdf=PLAN.figures.path("{figure}.pdf"),
    log:
        f"{LOGS}/plot_figure/{PLAN.figures.id}-{{figure}}.log",
    benchmark:
        f"{LOGS}/plot_figure/{PLAN.figures.id}-{{figure}}.benchmark.tsv"
    conda:
        ENV
    script:
        "../scripts/plot_figure.py"


rule figures:
    input:
        [PLAN.figures.path(f"{figure}.{ext}") for figure in PLOTTED for ext in ("png", "pdf")],
