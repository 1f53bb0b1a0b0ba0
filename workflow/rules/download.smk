# Inputs from MAST (the `mast:` section): associations, their science and psf members, and
# other exposures, by product file name, pinned by the inputs lock. A checkpoint: what the
# workflow processes is known only once the associations are here. A local rule: it runs
# where Snakemake runs (compute nodes often have no network).
# The inputs lock is a record, not an output: no rule owns it, so --forceall, --forcerun,
# --delete-all-output never delete or re-pin it. The checkpoint's output is only a stamp;
# the lock is a parameter, written once and only extended by files it does not pin yet.


localrules:
    download,


checkpoint download:
    output:
        done=f"{MAST['folder']}/download.done",
    log:
        "logs/download/download.log",
    benchmark:
        "results/benchmarks/download/download.tsv"
    conda:
        CONDA_ENV
    params:
        mast=MAST,
        lock=MAST_LOCK,
    script:
        "../scripts/download.py"
