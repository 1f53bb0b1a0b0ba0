# The PSF stacks (stack_refs, one per association product) and the input check of each
# stack against its science exposures. A re-made stack must hold the values of its record
# (RECORDS/stack/), or say why (a member or the software changed); else the job stops.
# Both run first (priority): every alignment waits for its stack and check, and the last
# association must not start its alignments when the others are done.


rule stack_refs:
    input:
        psf_members,
    output:
        stack="results/stack/{stack}_psfstack.fits",
    log:
        "logs/stack_refs/{stack}.log",
    benchmark:
        "results/benchmarks/stack_refs/{stack}.tsv"
    priority: 3
    conda:
        CONDA_ENV
    params:
        record=f"{RECORDS}/stack/{{stack}}.json",
    script:
        "../scripts/stack_refs.py"


rule check_psfstack:
    input:
        unpack(checked_stack),
    output:
        report="results/check/{stack}_check.json",
    log:
        "logs/check_psfstack/{stack}.log",
    benchmark:
        "results/benchmarks/check_psfstack/{stack}.tsv"
    priority: 3
    conda:
        CONDA_ENV
    script:
        "../scripts/check_psfstack.py"
