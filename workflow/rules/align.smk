# The alignment: one job per science exposure, run in parallel.


rule align:
    input:
        science=science_file,
        psfstack=psfstack_file,
        selection="results/psfmask/{stem}_psfmask.json",
        mask=psfmask_override,
        check=CHECK_REPORT,
    output:
        product="results/psfalign/{stem}_psfalign.fits",
        shifts="results/shifts/{stem}_psfshifts.ecsv",
    log:
        "logs/align/{stem}.log",
    benchmark:
        "benchmarks/align/{stem}.tsv"
    conda:
        CONDA_ENV
    threads: 2
    resources:
        mem_mb=align_mem_mb,
    params:
        mode=MODE,
        median_box_length=MEDIAN_BOX_LENGTH,
        bad_bits=BAD_BITS,
        weighting=WEIGHTING,
        max_shift=MAX_SHIFT,
    shell:
        "coronalign align {input.science:q} {input.psfstack:q} "
        "--psfmask-selection {input.selection:q} "
        "-o {output.product:q} --shifts {output.shifts:q} "
        "--mode {params.mode} --median-box-length {params.median_box_length} "
        "--bad-bits {params.bad_bits:q} --weighting {params.weighting} "
        "--max-shift {params.max_shift} --threads {threads} 2> {log:q}"
