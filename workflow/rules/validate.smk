# Validation of every product: a product that fails a check fails this rule.


rule validate:
    input:
        product="results/psfalign/{stem}_psfalign.fits",
        shifts="results/shifts/{stem}_psfshifts.ecsv",
        science=science_file,
        psfstack=psfstack_file,
    output:
        "results/validation/{stem}_psfalign.json",
    log:
        "logs/validate/{stem}.log",
    benchmark:
        "benchmarks/validate/{stem}.tsv"
    conda:
        CONDA_ENV
    params:
        mode=MODE,
    shell:
        "coronalign validate {input.product:q} --shifts {input.shifts:q} "
        "--report {output:q} --mode {params.mode} "
        "--science {input.science:q} --psfstack {input.psfstack:q} 2> {log:q}"
