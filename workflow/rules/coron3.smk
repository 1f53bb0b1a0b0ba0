# Optional stage-3 completion (coron3: true): the official jwst steps on our products, run
# by the Python of the separate jwst environment (the coronalign package never imports jwst).
# klip takes the 3D cube of jwst >= 1.16: the alignment runs in cube mode (mode: cube).
# Each product has a JSON record of how it was made (jwst version, Python, script, arguments):
# the manifest carries them with the products' SHA-256, and `coronalign verify` re-runs them.


include: "coron3_inputs.smk"


rule coron3_klip:
    input:
        science=science_file,
        aligned=rules.align.output.product,
    output:
        psfsub="results/coron3/{stem}_psfsub.fits",
        record="results/coron3/{stem}_psfsub.json",
    log:
        "logs/coron3/klip/{stem}.log",
    conda:
        JWST_ENV
    params:
        python=JWST_PYTHON,
        script=os.path.join(CORON3_SCRIPTS, "coron3_klip.py"),
        crds_path=CRDS.get("path") or "",
        crds_context=CRDS.get("context") or "",
        offline="--crds-offline" if CRDS.get("offline") else "",
        median_box_length=MEDIAN_BOX_LENGTH,
        bad_bits=BAD_BITS,
    shell:
        "{params.python} {params.script} {input.science} {input.aligned} {output.psfsub}"
        " --median-box-length {params.median_box_length} --bad-bits {params.bad_bits:q}"
        " --crds-path={params.crds_path:q} --crds-context={params.crds_context:q} {params.offline}"
        " --record={output.record:q} > {log:q} 2>&1"


rule coron3_resample:
    input:
        psfsubs=stack_psfsubs,
    output:
        i2d="results/coron3/{stack}_i2d.fits",
        record="results/coron3/{stack}_i2d.json",
    log:
        "logs/coron3/resample/{stack}.log",
    conda:
        JWST_ENV
    params:
        python=JWST_PYTHON,
        script=os.path.join(CORON3_SCRIPTS, "coron3_resample.py"),
        crds_path=CRDS.get("path") or "",
        crds_context=CRDS.get("context") or "",
        offline="--crds-offline" if CRDS.get("offline") else "",
    shell:
        "{params.python} {params.script} {output.i2d} {input.psfsubs}"
        " --crds-path={params.crds_path:q} --crds-context={params.crds_context:q} {params.offline}"
        " --record={output.record:q} > {log:q} 2>&1"


rule coron3_plot:
    input:
        i2d=rules.coron3_resample.output.i2d,
    output:
        figure=report(
            "results/plots/{stack}_i2d.png",
            caption="../report/coron3_i2d.rst",
            category="Associations",
            labels={"association": "{stack}"},
        ),
    log:
        "logs/coron3/plot/{stack}.log",
    conda:
        CONDA_ENV
    script:
        "../scripts/coron3_i2d_plot.py"
