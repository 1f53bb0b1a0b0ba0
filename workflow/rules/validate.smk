# Validation of the products: one job per PSF stack validates the products of every
# exposure aligned to it (one process, so the start of Python and the imports are paid once
# per association, not per exposure). A product that fails a check fails this rule. Its
# priority: it runs as soon as the products of its stack exist, before the alignments still
# waiting, so the run does not end with every validation in a row.


rule validate:
    input:
        products=of_stack(rules.align.output.product),
        shifts=of_stack(rules.align.output.shifts),
        science=stack_science,
        psfstack=stack_path,
    output:
        reports=directory("results/validation/{stack}"),
    log:
        "logs/validate/{stack}.log",
    benchmark:
        "results/benchmarks/validate/{stack}.tsv"
    priority: 2
    conda:
        CONDA_ENV
    resources:
        mem_mb=validate_mem_mb,
    params:
        mode=MODE,
        offset_tolerance=config["offset_tolerance_mas"],
    script:
        "../scripts/validate.py"
