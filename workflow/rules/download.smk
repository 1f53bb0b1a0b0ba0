# Inputs from MAST (the `mast:` section): associations, their science and psf members, and
# other exposures, by product file name, pinned by the inputs lock. A checkpoint: what the
# workflow processes is known only once the associations are here. A local rule: it runs
# where Snakemake runs (compute nodes often have no network).


localrules:
    download,


checkpoint download:
    output:
        lock=MAST_LOCK,
    log:
        "logs/download/download.log",
    benchmark:
        "results/benchmarks/download/download.tsv"
    conda:
        CONDA_ENV
    params:
        mast=MAST,
    script:
        "../scripts/download.py"
