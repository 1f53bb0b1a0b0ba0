# The run manifest: every product with its inputs (SHA-256), parameters, CRDS context,
# software versions and the digests of its values. `coronalign verify` re-runs it.
# It reads every product, so on a cluster it runs as a job, not on the login node. The
# products' values are compared with their record (RECORDS/products.json): a change is said
# with its cause (inputs, parameters, CRDS, software), or stops the job.


rule manifest:
    input:
        products=every_product,
        validation=every_validation,
        inputs_lock=inputs_lock,
        coron3=lambda wildcards: coron3_records(wildcards),  # coron3_inputs.smk
    output:
        manifest="results/manifest.json",
    log:
        "logs/manifest/manifest.log",
    benchmark:
        "results/benchmarks/manifest/manifest.tsv"
    conda:
        CONDA_ENV
    threads: 2  # the digests of the products, read two at a time
    params:
        record=f"{RECORDS}/products.json",
    script:
        "../scripts/manifest.py"
