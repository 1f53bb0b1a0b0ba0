# The per-exposure report figures and the summary table of all exposures.


rule plot:
    input:
        product=rules.align.output.product,
        shifts=rules.align.output.shifts,
        science=science_file,
        psfstack=stack_file,
        validation=rules.validate.output.report,
        selection=rules.psfmask.output.selection,
    output:
        figure=report(
            "results/plots/{stem}_psfalign.png",
            caption="../report/plot.rst",
            category="Exposures",
            labels={"exposure": "{stem}"},
        ),
    log:
        "logs/plot/{stem}.log",
    benchmark:
        "results/benchmarks/plot/{stem}.tsv"
    conda:
        CONDA_ENV
    script:
        "../scripts/plot.py"


rule summary:
    input:
        validation=every_validation,
        shifts=every_shift_table,
    output:
        table=report(
            "results/summary/summary.tsv",
            caption="../report/summary.rst",
            category="Summary",
        ),
    log:
        "logs/summary/summary.log",
    benchmark:
        "results/benchmarks/summary/summary.tsv"
    conda:
        CONDA_ENV
    script:
        "../scripts/summary.py"
