# One figure per job, each drawn from the tidy table alone: restyling never recomputes anything.


rule plot_figure:
    input:
        table=rules.tidy_table.output.parquet,
    output:
        png=PLAN.figures.path("{figure}.png"),
        pdf=PLAN.figures.path("{figure}.pdf"),
    log:
        f"{LOGS}/plot_figure/{PLAN.figures.id}-{{figure}}.log",
    conda:
        ENV
    script:
        "../scripts/plot_figure.py"
