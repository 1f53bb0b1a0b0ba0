# The run manifest: every product with its inputs (SHA-256), parameters, CRDS context,
# software versions and the digests of its values. `coronalign verify` re-runs it.
# It reads every product, so on a cluster it runs as a job, not on the login node.


rule manifest:
    input:
        products=manifest_products,
        validation=summary_validation,
    output:
        MANIFEST,
    log:
        "logs/manifest/manifest.log",
    conda:
        CONDA_ENV
    shell:
        "coronalign manifest {input.products:q} -o {output:q} 2> {log:q}"
