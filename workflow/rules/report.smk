# The report figures (one job per PSF stack draws the figure of every exposure aligned to
# it, in one process, once its products passed validation: on Slurm the two are one
# submission, validate then plot) and the summary table of all exposures.


rule plot:
    input:
        products=of_stack(rules.align.output.product),
        shifts=of_stack(rules.align.output.shifts),
        science=stack_science,
        psfstack=stack_path,
        validation=rules.validate.output.reports,
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
