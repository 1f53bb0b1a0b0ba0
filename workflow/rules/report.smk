# The summary table of all exposures and the per-exposure report figures.


rule summary:
    input:
        validation=summary_validation,
        shifts=summary_shifts,
    output:
        report(
            SUMMARY,
            caption="../report/summary.rst",
            category="Summary",
        ),
    log:
        "logs/summary/summary.log",
    benchmark:
        "benchmarks/summary/summary.tsv"
    conda:
        CONDA_ENV
    shell:
        "coronalign summarize {input.validation:q} --shifts {input.shifts:q} "
        "-o {output:q} 2> {log:q}"


rule plot:
    input:
        product="results/psfalign/{stem}_psfalign.fits",
        shifts="results/shifts/{stem}_psfshifts.ecsv",
        science=science_file,
        validation="results/validation/{stem}_psfalign.json",
    output:
        report(
            "results/plots/{stem}_psfalign.png",
            caption="../report/plot.rst",
            category="Exposures",
            labels={"exposure": "{stem}"},
        ),
    log:
        "logs/plot/{stem}.log",
    benchmark:
        "benchmarks/plot/{stem}.tsv"
    conda:
        CONDA_ENV
    shell:
        "coronalign plot {input.product:q} --science {input.science:q} "
        "--shifts {input.shifts:q} -o {output:q} 2> {log:q}"
