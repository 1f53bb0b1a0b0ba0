# The report figures (one job per PSF stack draws the figure of every exposure aligned to
# it, in one process; they do not wait for the validation, so a failed product has its
# figure too) and the summary table of all exposures.


rule plot:
    input:
        products=of_stack(rules.align.output.product),
        shifts=of_stack(rules.align.output.shifts),
        science=stack_science,
        psfstack=stack_path,
        selections=of_stack(rules.psfmask.output.selection),
    output:
        figures=report(
            directory("results/plots/psfalign/{stack}"),
            patterns=["{name}_psfalign.png"],
            caption="../report/plot.rst",
            category="Exposures",
            labels={"exposure": "{name}"},
        ),
    log:
        "logs/plot/{stack}.log",
    benchmark:
        "results/benchmarks/plot/{stack}.tsv"
    priority: 1
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
    params:
        reports=every_validation_report,
    script:
        "../scripts/summary.py"
