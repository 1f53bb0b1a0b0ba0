# PSFMASK retrieval: the override, or a CRDS lookup in a local cache. A local rule: it runs
# where Snakemake runs (compute nodes often have no network or no CRDS cache).


localrules:
    psfmask,


rule psfmask:
    input:
        science=science_file,
        override=psfmask_override,
    output:
        "results/psfmask/{stem}_psfmask.json",
    log:
        "logs/psfmask/{stem}.log",
    benchmark:
        "benchmarks/psfmask/{stem}.tsv"
    conda:
        CONDA_ENV
    params:
        options=psfmask_options,
    shell:
        "coronalign psfmask {input.science:q} -o {output:q} {params.options} 2> {log:q}"
