# PSFMASK retrieval: the override, or the CRDS best reference, fetched from the CRDS server
# into a writable cache (or, with crds.offline, looked up in a read-only cache). A local
# rule: it runs where Snakemake runs (compute nodes often have no network). The choice is
# compared with its record (RECORDS/psfmask/): another file is said with its cause, or stops.


localrules:
    psfmask,


rule psfmask:
    input:
        science=science_file,
        override=psfmask_override,
    output:
        selection="results/psfmask/{stem}_psfmask.json",
    log:
        "logs/psfmask/{stem}.log",
    benchmark:
        "results/benchmarks/psfmask/{stem}.tsv"
    # first, with the stacks: every alignment waits for its lookup (a tenth of a second)
    priority: 3
    conda:
        CONDA_ENV
    params:
        override=config["psfmask"],
        crds=CRDS,
        record=f"{RECORDS}/psfmask/{{stem}}.json",
    script:
        "../scripts/psfmask.py"
