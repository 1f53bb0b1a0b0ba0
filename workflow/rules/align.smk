# The alignment: one job per science exposure, run in parallel.


rule align:
    input:
        science=science_file,
        psfstack=stack_file,
        selection=rules.psfmask.output.selection,
        mask=psfmask_override,
        check=stack_check,
    output:
        product="results/psfalign/{stem}_psfalign.fits",
        shifts="results/shifts/{stem}_psfshifts.ecsv",
    log:
        "logs/align/{stem}.log",
    benchmark:
        "results/benchmarks/align/{stem}.tsv"
    conda:
        CONDA_ENV
    threads: align_threads
    resources:
        mem_mb=align_mem_mb,
    params:
        mode=MODE,
        median_box_length=MEDIAN_BOX_LENGTH,
        bad_bits=BAD_BITS,
        weighting=WEIGHTING,
        max_shift=MAX_SHIFT,
        options=ALIGN_OPTIONS,
    script:
        "../scripts/align.py"
