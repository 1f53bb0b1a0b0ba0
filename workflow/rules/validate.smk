# Validation of every product: a product that fails a check fails this rule.


rule validate:
    input:
        product=rules.align.output.product,
        shifts=rules.align.output.shifts,
        science=science_file,
        psfstack=stack_file,
    output:
        report="results/validation/{stem}_psfalign.json",
    log:
        "logs/validate/{stem}.log",
    benchmark:
        "results/benchmarks/validate/{stem}.tsv"
    conda:
        CONDA_ENV
    resources:
        mem_mb=validate_mem_mb,
    params:
        mode=MODE,
        offset_tolerance=config["offset_tolerance_mas"],
    script:
        "../scripts/validate.py"
