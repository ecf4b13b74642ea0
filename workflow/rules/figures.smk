# One figure per job, each drawn from the tidy table alone: restyling never recomputes anything.


rule plot_figure:
    input:
        table=figure_table,
    output:
        png=report(
            PLAN.figures.file("figure", ext="png"),
            caption="../report/figure.rst",
            category=figure_category,
            labels={"figure": "{figure}"},
        ),
        pdf=PLAN.figures.file("figure", ext="pdf"),
    log:
        job_log("plot_figure", f"{PLAN.figures.id}-{{figure}}"),
    benchmark:
        job_benchmark("plot_figure", f"{PLAN.figures.id}-{{figure}}")
    conda:
        ENV
    params:
        recipe=PLAN.figures.recipe,
    script:
        "../scripts/plot_figure.py"


rule figures:
    input:
        [PLAN.figures.file("figure", figure=f, ext=e) for f in PLOTTED for e in ("png", "pdf")],
