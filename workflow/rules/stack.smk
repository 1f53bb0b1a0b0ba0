# The PSF stack (stack_refs) and the input check of the stack against the science.


rule stack_refs:
    input:
        psf_members,
    output:
        "results/stack/{name}_psfstack.fits",
    log:
        "logs/stack_refs/{name}.log",
    benchmark:
        "benchmarks/stack_refs/{name}.tsv"
    conda:
        CONDA_ENV
    shell:
        "coronalign stack {input:q} -o {output:q} 2> {log:q}"


rule check_psfstack:
    input:
        psfstack=psfstack_file,
        science=all_science,
    output:
        CHECK_REPORT,
    log:
        "logs/check_psfstack/psfstack_check.log",
    benchmark:
        "benchmarks/check_psfstack/psfstack_check.tsv"
    conda:
        CONDA_ENV
    shell:
        "coronalign check-psfstack {input.psfstack:q} {input.science:q} "
        "--report {output:q} 2> {log:q}"
