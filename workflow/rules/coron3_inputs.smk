# Settings and input functions of the coron3 rules (coron3.smk).

#: A relative path is the repository's (the .venv-jwst of `make env`); a bare name is a
#: command on PATH (`python` of the conda environment).
JWST_PYTHON = config["jwst_python"]
if "/" in JWST_PYTHON and not os.path.isabs(JWST_PYTHON):
    JWST_PYTHON = os.path.join(workflow.basedir, JWST_PYTHON)
#: The scripts run in place (jwst's Python), with their shared module beside them.
CORON3_SCRIPTS = os.path.join(workflow.basedir, "workflow", "scripts")
JWST_ENV = "../../envs/jwst.yaml"

if config["coron3"] and MODE != "cube":
    raise WorkflowError(
        "coron3: true needs mode: cube (jwst's klip takes the 3D aligned cube)"
    )


def stack_stems(wildcards):
    """The stems of the science exposures aligned to the PSF stack ``wildcards.stack``."""
    return [
        stem
        for stem, found in inputs().exposures.items()
        if found.stack == wildcards.stack
    ]


def stack_psfsubs(wildcards):
    return expand(rules.coron3_klip.output.psfsub, stem=stack_stems(wildcards))


def coron3_outputs(wildcards):
    """The _i2d image of every association and its figure (with coron3: true), else
    nothing."""
    if not config["coron3"]:
        return []
    stacks = list(inputs().stacks)
    return expand(
        [rules.coron3_resample.output.i2d, rules.coron3_plot.output.figure],
        stack=stacks,
    )


def coron3_records(wildcards):
    """How every coron3 product was made (klip's, then resample's), for the manifest; none
    without coron3: true."""
    if not config["coron3"]:
        return []
    return [
        *every(rules.coron3_klip.output.record),
        *expand(rules.coron3_resample.output.record, stack=list(inputs().stacks)),
    ]
